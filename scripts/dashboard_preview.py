"""A picture of the Grafana dashboard over a replay's history, drawn without Grafana (for the docs).

Grafana cannot run here (AGPL, not packaged for this machine), so this draws what the dashboard
would show: it replays an hour of the bundled trace into a scratch SQLite store, back-fills the
planner's metrics history into a real Prometheus (``sla-planner exporter --backfill`` and
``promtool``), evaluates every panel's own PromQL from ``deploy/grafana/sla-planner-dashboard.json``
on it, and lays the panels out on the dashboard's grid with matplotlib. The last panel plots the
Dynamo frontend's metrics, which the planner's store does not hold; it is drawn empty.

Usage: .venv/bin/python scripts/dashboard_preview.py [--out docs/img/grafana-dashboard-preview.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner_core.cli import main as cli  # noqa: E402
from planner_core.metrics.backfill import finished_runs, write_openmetrics  # noqa: E402
from planner_core.metrics.dashboard import Panel, legend, load_panels  # noqa: E402
from planner_core.stack import Stack, backfill_prometheus, start_prometheus  # noqa: E402
from planner_core.store import Store  # noqa: E402

ROW_HEIGHT_IN = 0.42  # one Grafana grid row, in inches


def query_range(prometheus: str, expr: str, start: float, end: float, step_s: float) -> list[dict]:
    r = httpx.get(
        f"{prometheus}/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": step_s},
        timeout=30,
    )
    r.raise_for_status()
    return list(r.json()["data"]["result"])


def draw(panels: list[Panel], prometheus: str, start: float, end: float, out: Path) -> None:
    rows = max(p.grid[1] + p.grid[3] for p in panels)
    height_in = rows * ROW_HEIGHT_IN + 0.6
    fig = plt.figure(figsize=(16, height_in))
    top = 1 - 0.6 / height_in  # room for the figure's title
    row = top / rows
    title, xlabel = 0.3 / height_in, 0.35 / height_in  # a panel's title and axis labels, in figure fractions
    for p in panels:
        x, y, w, h = p.grid
        bottom = top - (y + h) * row
        ax = fig.add_axes((x / 24 + 0.035, bottom + xlabel, w / 24 - 0.045, h * row - xlabel - title))
        ax.set_title(p.title, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        series = [(q, s) for q in p.queries for s in query_range(prometheus, q.expr, start, end, 60.0)]
        if p.kind == "stat":
            ax.axis("off")
            text = "no data"
            if series:
                value = float(series[0][1]["values"][-1][1])
                text = f"{value:,.2f}" + {"s": " s"}.get(p.unit, "")
            ax.text(0.5, 0.3, text, ha="center", va="center", fontsize=20)
            continue
        if not series:
            ax.text(0.5, 0.5, "no data in the planner's store (the frontend's own metrics)", ha="center", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for q, s in series:
            minutes = [(float(t) - start) / 60.0 for t, _ in s["values"]]
            values = [float(v) for _, v in s["values"]]
            label = legend(q.legend, s["metric"]).replace("(dynamo/", "(").split(" (replay-")[0]
            ax.step(minutes, values, where="post", label=label, linewidth=1.2)
        ax.set_xlabel("minutes into the replay", fontsize=7)
        ax.legend(fontsize=6, loc="upper left", ncol=2)
        ax.grid(alpha=0.3)
    fig.suptitle(
        "sla-planner dashboard (deploy/grafana): its queries on Prometheus, over an hour's replay "
        "(simulated time: cycle durations and ages read 0)",
        fontsize=11,
        y=1 - 0.15 / height_in,
    )
    fig.savefig(out, dpi=80)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "grafana-dashboard-preview.png")
    parser.add_argument("--duration-s", type=int, default=3600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp) / "stack") as stack:
        url = f"sqlite:///{tmp}/planner.db"
        if cli(["replay", "--duration-s", str(args.duration_s), "--db-url", url, "--compare", "default"]) != 0:
            return 1
        history = Path(tmp) / "history.om"
        with Store(url) as store, history.open("w") as out:
            write_openmetrics(store, out)
            runs = finished_runs(store)
        backfill_prometheus(stack, history)
        prometheus = start_prometheus(stack, [], retention="100y")
        start, end = runs[0][2].timestamp(), runs[-1][2].timestamp()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        draw(load_panels(), prometheus, start, end, args.out)
    print(f"wrote {args.out} ({datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} UTC, {len(runs)} cycles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
