"""Replay report: three PNG plots and an HTML page that embeds them with the result table."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt

from planner_core.sim.frontier import FrontierReport, pareto
from planner_core.sim.replay import ReplayResult

COLUMNS = (
    ("policy", "policy", "{}"),
    ("predictor", "predictor", "{}"),
    ("requests", "requests", "{:,}"),
    ("sla_attainment", "SLA met", "{:.2%}"),
    ("feasible_sla_attainment", "feasible met", "{:.2%}"),
    ("infeasible_requests", "infeasible", "{:,}"),
    ("ttft_attainment", "TTFT met", "{:.2%}"),
    ("itl_attainment", "ITL met", "{:.2%}"),
    ("p99_ttft_ms", "p99 TTFT ms", "{:,.0f}"),
    ("p99_itl_ms", "p99 ITL ms", "{:.1f}"),
    ("gpu_hours", "GPU-h", "{:.2f}"),
    ("gpu_hours_vs_oracle", "x oracle", "{:.2f}"),
    ("scaling_actions", "actions", "{}"),
    ("preemptions", "preempted", "{:,}"),
    ("wall_s", "wall s", "{:.1f}"),
)
# shown only when a result has one (the hindsight baselines' chosen knob)
SETTING_COLUMN = ("setting", "setting", "{}")


def _columns(results: Sequence[ReplayResult]) -> tuple[tuple[str, str, str], ...]:
    if any(r.setting for r in results):
        return (*COLUMNS[:2], SETTING_COLUMN, *COLUMNS[2:])
    return COLUMNS


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def table_rows(results: Sequence[ReplayResult]) -> list[list[str]]:
    rows = []
    columns = _columns(results)
    for r in results:
        s = r.summary()
        rows.append([_fmt(s.get(key), pattern) for key, _, pattern in columns])
    return rows


def format_table(results: Sequence[ReplayResult]) -> str:
    header = [title for _, title, _ in _columns(results)]
    rows = table_rows(results)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _series(values: Sequence[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


FRONTIER_PNG = "frontier.png"


# The frontier plot's vertical axis: the share missed on a log scale (99 % and 99.9 % apart), up is better.
_MISSED_FLOOR_PCT = 0.005  # where 100 % attainment is drawn
_ATTAINMENT_TICKS_PCT = (50.0, 90.0, 99.0, 99.9, 99.99)


def _missed_pct(attainment: float) -> float:
    return max(100.0 * (1.0 - attainment), _MISSED_FLOOR_PCT)


def plot_frontier(frontier: FrontierReport, path: Path, title: str = "") -> Path:
    """SLA attainment (feasible share) against GPU-hours: each knob policy's points and frontier
    (the points no other setting beats; the others faint), the one-point policies, the oracle,
    the target attainments and the lower bound on GPU-hours at the config's attainment."""
    fig, ax = plt.subplots(figsize=(9.5, 5))
    markers = iter("osD^v<>p*h")
    shown_x: list[float] = []
    colours = iter(f"C{i}" for i in range(100))  # one per policy, knob or not
    for policy, points in frontier.points.items():
        marker = next(markers, "o")
        front = pareto(points)
        shown_x += [p.gpu_hours for p in front]
        line = ax.plot(
            [p.gpu_hours for p in front],
            [_missed_pct(p.attainment) for p in front],
            marker=marker,
            label=policy,
            color=next(colours),
        )[0]
        others = [p for p in points if p not in front]
        ax.scatter(
            [p.gpu_hours for p in others],
            [_missed_pct(p.attainment) for p in others],
            marker=marker,
            color=line.get_color(),
            alpha=0.3,
            s=18,
        )
    for p in frontier.singles:
        shown_x.append(p.gpu_hours)
        ax.scatter(
            [p.gpu_hours],
            [_missed_pct(p.attainment)],
            marker=next(markers, "x"),
            s=50,
            label=p.setting,
            color=next(colours),
        )
    if frontier.oracle is not None:
        o = frontier.oracle
        shown_x.append(o.gpu_hours)
        ax.scatter([o.gpu_hours], [_missed_pct(o.attainment)], marker="*", s=160, color="black", label="oracle")
    if frontier.lower_bound_gpu_hours is not None:
        shown_x.append(frontier.lower_bound_gpu_hours)
        ax.axvline(
            frontier.lower_bound_gpu_hours,
            color="red",
            linestyle=":",
            label=f"lower bound for {frontier.lower_bound_attainment:.0%}",
        )
    for t in frontier.targets:
        ax.axhline(_missed_pct(t), color="grey", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(100.0, _MISSED_FLOOR_PCT / 2)  # inverted: up is better
    ax.set_yticks([100.0 - t for t in _ATTAINMENT_TICKS_PCT], [f"{t:g} %" for t in _ATTAINMENT_TICKS_PCT])
    ax.minorticks_off()
    if shown_x:
        ax.set_xlim(0.9 * min(shown_x), 1.1 * max(shown_x))
    ax.set_xlabel("GPU-hours")
    ax.set_ylabel("SLA met, feasible requests (log scale of the share missed)")
    ax.set_title(title or "SLA attainment against GPU-hours", fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    results: Sequence[ReplayResult],
    out_dir: Path,
    title: str,
    ttft_sla_ms: float,
    itl_sla_ms: float,
    frontier: FrontierReport | None = None,
) -> Path:
    """Write load.png, replicas.png, latency.png (and frontier.png) and index.html into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    closed_loop = [r for r in results if r.timeline.get("start_s")]
    minutes = {r.policy: [t / 60 for t in r.timeline["start_s"]] for r in closed_loop}

    fig, ax = plt.subplots(figsize=(10, 3.5))
    if closed_loop:
        base = closed_loop[0]
        ax.step(
            minutes[base.policy],
            _series(base.timeline["num_req"]),
            where="post",
            color="black",
            label="observed requests",
        )
    for r in closed_loop:
        if any(v is not None for v in r.timeline["predicted_num_req"]):
            ax.step(
                minutes[r.policy],
                _series(r.timeline["predicted_num_req"]),
                where="post",
                label=f"predicted ({r.policy}, {r.predictor})",
                alpha=0.8,
            )
    ax.set_xlabel("minutes")
    ax.set_ylabel("requests per interval")
    ax.set_title("Requests per interval and the forecast made for it")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "load.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for pool, ax in zip(("prefill", "decode"), axes, strict=True):
        for r in closed_loop:
            if r.policy != "oracle":
                ax.step(minutes[r.policy], _series(r.timeline[f"{pool}_target"]), where="post", label=r.policy)
        if closed_loop:
            base = closed_loop[0]
            ax.step(
                minutes[base.policy],
                _series(base.timeline[f"oracle_{pool}"]),
                where="post",
                label="oracle",
                color="black",
                linestyle="--",
            )
        ax.set_ylabel(f"{pool} replicas")
        ax.legend(loc="upper left", fontsize=8, ncol=4)
    axes[-1].set_xlabel("minutes")
    axes[0].set_title("Replicas per pool against the oracle")
    fig.tight_layout()
    fig.savefig(out_dir / "replicas.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for key, sla, ax in (("ttft_ms", ttft_sla_ms, axes[0]), ("itl_ms", itl_sla_ms, axes[1])):
        for r in closed_loop:
            ax.step(minutes[r.policy], _series(r.timeline[key]), where="post", label=r.policy)
        ax.axhline(sla, color="red", linestyle=":", label="SLA")
        ax.set_ylabel(f"mean {key.replace('_ms', '')} (ms)")
        ax.set_yscale("log")
        ax.legend(loc="upper left", fontsize=8, ncol=5)
    axes[-1].set_xlabel("minutes")
    axes[0].set_title("Interval-mean latency against the SLA")
    fig.tight_layout()
    fig.savefig(out_dir / "latency.png", dpi=110)
    plt.close(fig)

    frontier_html = ""
    if frontier is not None:
        plot_frontier(frontier, out_dir / FRONTIER_PNG, f"{title}: attainment against GPU-hours")
        frontier_html = (
            "<h2>Frontier: GPU-hours at matched attainment</h2>"
            f'<img src="{FRONTIER_PNG}" alt="attainment against GPU-hours"><pre>{html.escape(frontier.table())}</pre>'
        )
    header = "".join(f"<th>{html.escape(t)}</th>" for _, t, _ in _columns(results))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(results))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>SLA: TTFT &le; {ttft_sla_ms:g} ms and mean ITL &le; {itl_sla_ms:g} ms per request. <i>SLA met</i> is
over all requests; <i>feasible met</i> over the requests whose latency alone on idle engines meets the
SLA (the <i>infeasible</i> ones cannot meet it with any number of replicas).</p>
<table><tr>{header}</tr>{body}</table>
{frontier_html}
<h2>Load</h2><img src="load.png" alt="load and forecast">
<h2>Replicas</h2><img src="replicas.png" alt="replicas per pool">
<h2>Latency</h2><img src="latency.png" alt="TTFT and ITL">
<h2>Raw results</h2><pre>{html.escape(json.dumps([r.summary() for r in results], indent=2, default=str))}</pre>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    return index
