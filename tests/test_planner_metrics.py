"""The planner's own metrics: in-process publish(), and the store-backed exporter for Prefect runs."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_server import PrometheusServer, free_port

from planner_core.config import make_config
from planner_core.connectors import NoOperationConnector
from planner_core.cycle import PlanningCycle
from planner_core.metrics.planner_metrics import FAMILIES, PlannerMetrics, cycle_reason, serve_if_configured
from planner_core.metrics.simulated import SimulatedFrontend
from planner_core.metrics.store_exporter import StoreCollector
from planner_core.ports import SimulatedClock
from planner_core.predictors import LoadPredictor
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim.cluster import ClusterSimulator
from planner_core.sim.replay import DEFAULT_EPOCH
from planner_core.store import Store

DEPLOYMENT = "dynamo/llama"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def cycles(sqlite_url):
    """Eight cycles of a planner on a simulated cluster, written to a SQLite store and published."""
    config = make_config(adjustment_interval_s=60, model_name="llama", load_predictor="constant", max_gpu_budget=32)
    rng = np.random.default_rng(1)
    n = 4000
    arrival = np.sort(rng.uniform(0, 480, n))
    sim = ClusterSimulator(load_profile(config.profile_dir()), arrival, np.full(n, 3000.0), np.full(n, 150.0))
    store = Store(sqlite_url)
    dep_id = store.ensure_deployment("llama", "dynamo", "llama", "vllm", "disagg")
    clock = SimulatedClock(DEFAULT_EPOCH)
    cycle = PlanningCycle(
        config=config,
        profile=load_profile(config.profile_dir()),
        metrics=SimulatedFrontend(sim, DEFAULT_EPOCH, arrival, config.arrival_resolution_s),
        connector=NoOperationConnector(current=Replicas(2, 2)),
        clock=clock,
        predictor=LoadPredictor(config, synchronous_refit=True),
        store=store,
        deployment_id=dep_id,
    )
    published = PlannerMetrics()
    results = []
    for k in range(8):
        clock.set(DEFAULT_EPOCH + timedelta(seconds=60 * (k + 1)))
        result = cycle.run()
        published.publish(result, config, DEPLOYMENT, duration_s=0.0)
        results.append(result)
    yield store, published, results
    store.close()


def test_published_and_store_exported_metrics_agree(cycles):
    store, published, results = cycles
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    from_store = _samples(generate_latest(registry).decode())
    live = _samples(generate_latest(published.registry).decode())
    assert set(from_store) == set(live)
    for key, value in live.items():
        assert from_store[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    names = {name for name, _ in live}
    for family, (kind, _, _) in FAMILIES.items():
        assert (family + "_total" if kind == "counter" else family) in names, family
    labels = dict(next(k for k in live if k[0] == "planner_desired_replicas")[1])
    assert labels["deployment"] == DEPLOYMENT and labels["model"] == "llama"
    last = results[-1]
    assert live[("planner_observed_requests", (("deployment", DEPLOYMENT), ("model", "llama")))] == (
        last.observation.num_req
    )
    gpu_hours = sum(
        ((r.observation.current.prefill or 0) + (r.observation.current.decode or 0)) / 60.0 for r in results
    )
    assert live[("planner_gpu_hours_total", (("deployment", DEPLOYMENT), ("model", "llama")))] == pytest.approx(
        gpu_hours
    )
    cycles_total = sum(v for (name, _), v in live.items() if name == "planner_cycles_total")
    assert cycles_total == 8


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(
        (Path(__file__).parents[1] / "deploy" / "grafana" / "sla-planner-dashboard.json").read_text()
    )
    return [
        t["expr"].replace("$deployment", ".*").replace("$model", ".*")
        for panel in dashboard["panels"]
        for t in panel["targets"]
    ]


def test_dashboard_plots_only_families_the_planner_exports():
    known = {name + ("_total" if kind == "counter" else "") for name, (kind, _, _) in FAMILIES.items()}
    used = {m for expr in _dashboard_queries() for m in re.findall(r"\bplanner_[a-z_]+", expr)}
    assert used == known, (used - known, known - used)


def test_cycle_reasons_are_bounded():
    assert cycle_reason("ok", "ok", "applied") == "applied"
    assert cycle_reason("held", "no_data", None) == "no_data"
    assert cycle_reason("held", "ok", None) == "hold"
    assert cycle_reason("no_operation", "ok", None) == "dry_run"
    assert cycle_reason("error", "error", None) == "error"
    assert cycle_reason("ok", "ok", "error") == "error"
    assert cycle_reason("skipped_locked", None, None) == "locked"


def test_port_zero_serves_nothing_and_a_port_serves_on_loopback():
    assert serve_if_configured(make_config()) is None
    metrics = PlannerMetrics()
    port = metrics.serve(0)
    try:
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "# TYPE planner_desired_replicas gauge" in body
    finally:
        metrics.stop()
    config = make_config(metric_reporting_prometheus_port=free_port())
    assert config.metric_reporting_prometheus_address == "127.0.0.1"


@pytest.mark.prometheus
def test_exporter_command_serves_the_store_to_a_real_prometheus(cycles, sqlite_url, tmp_path):
    port = free_port()
    env = {**os.environ, "PLANNER_PROMETHEUS_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner_core.cli", "exporter", "--db-url", sqlite_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    prom = None
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"127.0.0.1:{port}/metrics" in banner, banner
        prom = PrometheusServer(tmp_path / "prom", [(f"127.0.0.1:{port}", {})]).start()
        prom.wait_for_scrapes()
        deadline = time.monotonic() + 30
        value = math.nan
        while time.monotonic() < deadline:
            answer = requests.get(
                prom.url + "/api/v1/query", params={"query": 'planner_gpu_hours_total{deployment="dynamo/llama"}'}
            ).json()
            if answer["data"]["result"]:
                value = float(answer["data"]["result"][0]["value"][1])
                break
            time.sleep(0.5)
        _, published, _ = cycles
        expected = _samples(generate_latest(published.registry).decode())[
            ("planner_gpu_hours_total", (("deployment", DEPLOYMENT), ("model", "llama")))
        ]
        assert value == pytest.approx(expected)
        # every query of the Grafana dashboard is valid PromQL and finds planner data
        for expr in _dashboard_queries():
            answer = requests.get(prom.url + "/api/v1/query", params={"query": expr}).json()
            assert answer["status"] == "success", (expr, answer)
            if "planner_" in expr and "rate(" not in expr and "increase(" not in expr:
                assert answer["data"]["result"], expr
    finally:
        if prom is not None:
            prom.stop()
        proc.terminate()
        proc.wait(timeout=10)
