"""Metrics faults against a real Prometheus: stopped, slower than the timeout, empty vectors,
NaN, +Inf, a counter reset, a frontend no longer scraped, and the planner's clock jumping
forward and back. Each runs a whole planning cycle (real Prometheus source, the Kubernetes
connector on the API stand-in, a SQLite store) and checks: the outcome is recorded, replicas
are never reduced, never above the budget, no row half-written, and the next cycle recovers."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fault_world import (
    START,
    ShiftedClock,
    SlowProxy,
    World,
    assert_audit_complete,
    assert_held,
    assert_recovered,
    assert_within_budget,
    cluster_replicas,
    patches,
    rows,
    source,
)
from prometheus_server import PrometheusServer, free_port

pytestmark = pytest.mark.prometheus


def _check_held(world: World, result, quality: str, says: str) -> None:
    assert result.status in ("error", "held"), (result.status, result.error)
    assert result.observation is not None and result.observation.quality == quality, result.observation
    assert result.observation.num_req is None, "missing data read as a number"
    assert says in (result.observation.error or ""), result.observation.error
    assert patches(world.kube) == [], "the cluster was patched on bad data"
    assert_held(START, cluster_replicas(world.kube))
    stored = rows(world.db_url, "SELECT quality, num_req, error FROM observations ORDER BY id DESC LIMIT 1")[0]
    assert stored["quality"] == quality and stored["num_req"] is None and says in stored["error"]
    run = rows(world.db_url, "SELECT status, error FROM planner_runs ORDER BY id DESC LIMIT 1")[0]
    assert run["status"] == result.status
    if result.status == "held":
        decision = rows(world.db_url, "SELECT action, prefill_replicas, decode_replicas FROM decisions")[-1]
        assert (decision["action"], decision["prefill_replicas"], decision["decode_replicas"]) == ("hold", 4, 4)


def _recovers(world: World, runs: int) -> None:
    assert_recovered(world.cycle("steady"), world.kube)
    assert_audit_complete(world.db_url, runs)


def test_prometheus_stopped(world, tmp_path):
    stopped = PrometheusServer(tmp_path / "stopped", []).start()
    url = stopped.url
    stopped.stop()
    result = world.cycle(metrics_source=source(url, "steady"))
    _check_held(world, result, "error", "cannot reach Prometheus")
    assert "metrics unavailable" in (result.error or "")
    _recovers(world, 2)


def test_prometheus_slower_than_the_timeout(world):
    proxy = SlowProxy(world.metrics.url, delay_s=1.5)
    try:
        started = time.monotonic()
        result = world.cycle(metrics_source=source(proxy.url, "steady", timeout_s=0.5))
        assert time.monotonic() - started < 5, "the cycle waited past the timeout"
    finally:
        proxy.stop()
    _check_held(world, result, "error", "timeout after 0.5 s")
    _recovers(world, 2)


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("no-such-model", "no dynamo_frontend_requests_started_total series"),  # empty vectors
        ("nan", "is NaN"),
        ("inf", "is +Inf"),
        ("reset", "counter reset"),
    ],
)
def test_bad_request_counter_holds(world, model, says):
    result = world.cycle(model)
    _check_held(world, result, "no_data", says)
    assert result.decision is not None and result.decision.action == "hold"
    _recovers(world, 2)


@pytest.mark.parametrize(("model", "mean", "says"), [("nan-ttft", "ttft_ms", "is NaN"), ("inf-itl", "itl_ms", "+Inf")])
def test_bad_latency_sum_drops_the_mean_not_the_count(world, model, mean, says):
    """The request count stands (a valid measurement); the broken mean is None and no
    correction factor is computed from it."""
    result = world.cycle(model)
    obs = result.observation
    assert obs is not None and obs.quality == "partial" and getattr(obs, mean) is None and says in (obs.error or "")
    assert obs.num_req is not None and obs.num_req > 0
    assert result.corrections is not None and result.corrections.source == "no_data"
    assert result.status == "ok" and result.decision is not None
    assert_within_budget(cluster_replicas(world.kube))
    assert cluster_replicas(world.kube).prefill >= 2, "more than the per-cycle bound"
    assert_audit_complete(world.db_url, 1)


def test_frontend_no_longer_scraped_is_stale(world):
    """The frontend's target goes down: Prometheus marks its series stale, the window's tail is
    gone (read naively it would be a quiet window). The cycle holds."""
    world.metrics.doomed.stop()
    time.sleep(2.5)  # two scrapes fail: the series are marked stale
    result = world.cycle(metrics_source=source(world.metrics.url, "steady", namespace="doomed"))
    _check_held(world, result, "stale", "no longer scraped")
    _recovers(world, 2)


@pytest.mark.parametrize(
    ("jump_s", "quality", "says"),
    [
        (12, "stale", "jumped forward"),  # inside Prometheus's 5 min lookback: flat, zero-traffic steps
        (-12, "stale", "clock is behind"),  # an old window of real traffic
        (3600, "no_data", "no dynamo_frontend_requests"),  # beyond the lookback: nothing at all
        (-3600, "no_data", "no dynamo_frontend_requests"),  # before the server's data
    ],
)
def test_clock_jump_holds_then_recovers(world, jump_s, quality, says):
    """Two intervals are 8 s here: a 12 s jump either way is beyond them."""
    if quality == "stale" and jump_s < 0:  # the shifted window must lie inside the data Prometheus holds
        world.metrics.wait_for_history(-jump_s + 4)
    result = world.cycle(clock=ShiftedClock(timedelta(seconds=jump_s)))
    _check_held(world, result, quality, says)
    if quality == "stale":
        assert result.decision is not None and result.decision.metrics_age_s is not None
        assert abs(result.decision.metrics_age_s - jump_s) < 5
        assert result.decision.max_metrics_age_s == 8.0
        stored = rows(world.db_url, "SELECT metrics_age_s, max_metrics_age_s, reason FROM decisions")[-1]
        assert stored["max_metrics_age_s"] == 8.0 and stored["reason"].startswith("stale metrics")
    _recovers(world, 2)


def test_wrong_port_is_the_same_as_stopped(world):
    result = world.cycle(metrics_source=source(f"http://127.0.0.1:{free_port()}", "steady"))
    _check_held(world, result, "error", "cannot reach Prometheus")
    _recovers(world, 2)
