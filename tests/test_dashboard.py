"""The Grafana dashboard's queries on a real Prometheus holding a back-filled planner history,
and the back-fill itself (``sla-planner exporter --backfill``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_server import require_prometheus

from planner_core.cli import main
from planner_core.metrics.backfill import finished_runs
from planner_core.metrics.dashboard import legend, load_panels
from planner_core.stack import Stack, backfill_prometheus, start_prometheus
from planner_core.store import Store

FRONTEND_PANEL = "Frontend (Dynamo) request rate and mean TTFT, for comparison"


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[str, Path]:
    """Two replays (two deployments) of 10 minutes in one store, and their back-fill file."""
    tmp = tmp_path_factory.mktemp("backfill")
    url = f"sqlite:///{tmp / 'planner.db'}"
    for seed in ("1", "2"):
        argv = ["replay", "--duration-s", "600", "--db-url", url, "--compare", "default", "--seed", seed]
        assert main([*argv, "--load-predictor", "constant"]) == 0
    out = tmp / "history.om"
    assert main(["exporter", "--db-url", url, "--backfill", str(out)]) == 0
    return url, out


def test_backfill_stamps_each_run_with_its_own_deployments_series(history):
    url, out = history
    families = {f.name: f for f in text_string_to_metric_families(out.read_text())}  # a strict OpenMetrics parser
    with Store(url) as store:
        runs = finished_runs(store)
    assert len(runs) >= 20 and len({r[1] for r in runs}) == 2
    desired = [s for s in families["planner_desired_replicas"].samples if s.labels["pool"] == "prefill"]
    # one sample per run, at the run's end, for the run's own deployment only
    assert sorted(float(s.timestamp) for s in desired) == sorted(r[2].timestamp() for r in runs)
    assert len({s.labels["deployment"] for s in desired}) == 2
    cycles = families["planner_cycles"].samples
    last_counts = {}
    for s in sorted(cycles, key=lambda s: float(s.timestamp)):
        if s.name == "planner_cycles_total":
            last_counts[(s.labels["deployment"], s.labels["reason"])] = s.value
    assert sum(last_counts.values()) == len(runs)  # the counters end at each deployment's cycle count


def test_every_dashboard_panel_query_returns_the_history(history, tmp_path):
    require_prometheus()
    url, out = history
    with Store(url) as store:
        runs = finished_runs(store)
    start, end = runs[0][2].timestamp(), runs[-1][2].timestamp()
    with Stack(tmp_path / "stack") as stack:
        backfill_prometheus(stack, out)
        prometheus = start_prometheus(stack, [], retention="100y")
        for panel in load_panels():
            for query in panel.queries:
                r = requests.get(
                    f"{prometheus}/api/v1/query_range",
                    params={"query": query.expr, "start": start, "end": end, "step": 60},
                    timeout=30,
                )
                assert r.status_code == 200, (panel.title, query.expr, r.text)
                result = r.json()["data"]["result"]
                if panel.title == FRONTEND_PANEL:
                    assert result == []  # the frontend's own metrics are not in the planner's store
                else:
                    assert result, f"{panel.title}: {query.expr} returned no series"
                    assert legend(query.legend, result[0]["metric"])


def test_backfill_needs_an_existing_store_and_a_writable_file(tmp_path, capsys):
    assert main(["exporter", "--db-url", f"sqlite:///{tmp_path / 'none.db'}", "--backfill", "-"]) == 2
    assert "none.db" in capsys.readouterr().err
    assert main(["exporter", "--since", "1d"]) == 2
    assert "--since applies to --backfill only" in capsys.readouterr().err
