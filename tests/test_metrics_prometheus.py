"""The Prometheus source against a real Prometheus (1 s scrape) scraping the simulated frontend.

A known request stream (10 requests/s, fixed ISL/OSL cycles) runs through the simulator in
real time; the source's count, TTFT, ITL, ISL and OSL for a window must match the stream
within 5 %. Each failure mode gives its documented missing value and reason, never 0.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_server import PrometheusServer, ScriptedExporter, free_port

from planner_core.config import make_config
from planner_core.metrics.exporter import SimFrontendServer
from planner_core.metrics.prometheus import PrometheusHTTP, PrometheusSettings, PrometheusSource
from planner_core.metrics.simulated import frontend_window
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim.cluster import ClusterSimulator

pytestmark = pytest.mark.prometheus

HOSTILE_MODEL = 'a"}or vector(1)#'
RATE = 10.0
STREAM_S = 600.0
HIST = (
    "dynamo_frontend_time_to_first_token_seconds",
    "dynamo_frontend_inter_token_latency_seconds",
    "dynamo_frontend_request_duration_seconds",
    "dynamo_frontend_input_sequence_tokens",
    "dynamo_frontend_output_sequence_tokens",
)


def _scripted(t: float) -> str:
    """Three models: ``nan-model`` (TTFT sum NaN), ``inf-model`` (duration sum +Inf) and
    ``reset-model``, whose request counter restarts from 0 after 6 s (a frontend restart)."""
    lines = ["# TYPE dynamo_frontend_requests_started_total counter"]
    n = 10 * int(t)
    resets = 10 * int(t - 6) if t >= 6 else n
    for model, count in (("nan-model", n), ("inf-model", n), ("reset-model", resets)):
        lines.append(f'dynamo_frontend_requests_started_total{{model="{model}"}} {count}')
    for base in HIST:
        lines.append(f"# TYPE {base} histogram")
        for model in ("nan-model", "inf-model", "reset-model"):
            total = f"{n * 0.5}"
            if model == "nan-model" and base.endswith("first_token_seconds"):
                total = "NaN"
            if model == "inf-model" and base.endswith("duration_seconds"):
                total = "+Inf"
            lines += [
                f'{base}_bucket{{model="{model}",le="+Inf"}} {n}',
                f'{base}_sum{{model="{model}"}} {total}',
                f'{base}_count{{model="{model}"}} {n}',
            ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    n = int(STREAM_S * RATE)
    arrival = np.arange(n) / RATE
    isl = np.tile([1000.0, 3000.0, 5000.0], n // 3 + 1)[:n]
    osl = np.tile([100.0, 200.0], n // 2 + 1)[:n]
    sim = ClusterSimulator(load_profile(make_config().profile_dir()), arrival, isl, osl, initial=Replicas(4, 4))
    scripted = ScriptedExporter(_scripted)
    frontend_port = free_port()
    prom = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        [
            (f"127.0.0.1:{frontend_port}", {"dynamo_namespace": "sim"}),
            (f"127.0.0.1:{scripted.port}", {"dynamo_namespace": "scripted"}),
        ],
    )
    frontend = SimFrontendServer(sim, model=HOSTILE_MODEL, port=frontend_port, speed=1.0, tick_s=0.05)
    try:
        prom.start().wait_for_scrapes()  # first, so that it scrapes the stream from its first second
        frontend.start()
        scripted.started_at_unix = frontend.started_at_unix  # one clock for both
        yield prom, frontend
    finally:
        prom.stop()
        frontend.stop()
        scripted.stop()


def _source(url: str, model: str | None, namespace: str, resolution_s: float = 1.0) -> PrometheusSource:
    settings = PrometheusSettings.from_env(url, {}, timeout_s=3.0, retries=0)
    return PrometheusSource(PrometheusHTTP(settings), model, namespace, resolution_s)


def _wait_until(frontend: SimFrontendServer, sim_s: float) -> None:
    while time.time() - frontend.started_at_unix < sim_s:
        time.sleep(0.2)


def _window(frontend: SimFrontendServer, start_s: float, end_s: float) -> tuple[datetime, datetime]:
    return (
        datetime.fromtimestamp(frontend.started_at_unix + start_s, UTC).replace(microsecond=0),
        datetime.fromtimestamp(frontend.started_at_unix + end_s, UTC).replace(microsecond=0),
    )


def test_source_matches_the_known_stream_within_5_percent(stack):
    prom, frontend = stack
    _wait_until(frontend, 27.0)
    start, end = _window(frontend, 4.0, 24.0)
    obs = _source(prom.url, HOSTILE_MODEL, "sim").observe(start, end)
    assert obs.quality == "ok", obs.error
    truth = frontend_window(
        frontend.sim.event_log(),
        (start.timestamp() - frontend.started_at_unix),
        end.timestamp() - frontend.started_at_unix,
    )
    assert truth["num_req"] == pytest.approx(RATE * 20, rel=0.01)
    for key in ("num_req", "ttft_ms", "itl_ms", "isl", "osl", "request_duration_s"):
        assert getattr(obs, key) == pytest.approx(truth[key], rel=0.05), key
    assert obs.isl == pytest.approx(3000.0, rel=0.05) and obs.osl == pytest.approx(150.0, rel=0.05)
    assert len(obs.arrival_counts) == 20 and sum(obs.arrival_counts) == obs.num_req
    assert obs.queued_requests is not None and obs.queued_requests >= 0
    # the in-flight gauge, read at the window end (the newest scrape at most one step earlier)
    assert obs.inflight_requests is not None and obs.inflight_requests >= obs.queued_requests


def test_source_honours_the_endpoint_setting(stack, monkeypatch):
    prom, frontend = stack
    _wait_until(frontend, 10.0)
    config = make_config(
        metric_pulling_prometheus_endpoint=prom.url,
        model_name=HOSTILE_MODEL,
        namespace="sim",
        adjustment_interval_s=5,
        arrival_resolution_s=1,
    )
    start, end = _window(frontend, 3.0, 8.0)
    obs = PrometheusSource.from_config(config, environ={}).observe(start, end)
    assert obs.quality == "ok" and obs.num_req == pytest.approx(50, abs=2)


def test_unknown_model_and_empty_window_say_no_data(stack):
    prom, frontend = stack
    _wait_until(frontend, 8.0)
    start, end = _window(frontend, 2.0, 7.0)
    unknown = _source(prom.url, "no-such-model", "sim").observe(start, end)
    assert unknown.num_req is None and unknown.quality == "no_data" and "model=no-such-model" in unknown.error
    before = _source(prom.url, HOSTILE_MODEL, "sim").observe(start - timedelta(hours=2), end - timedelta(hours=2))
    assert before.num_req is None and before.quality == "no_data" and "no dynamo_frontend_requests" in before.error


def test_nan_and_inf_means_are_missing_with_the_reason(stack):
    prom, frontend = stack
    _wait_until(frontend, 8.0)
    start, end = _window(frontend, 2.0, 7.0)
    nan = _source(prom.url, "nan-model", "scripted").observe(start, end)
    assert nan.quality == "partial" and nan.ttft_ms is None and "NaN" in nan.error
    assert nan.num_req is not None and nan.itl_ms == pytest.approx(500.0)
    inf = _source(prom.url, "inf-model", "scripted").observe(start, end)
    assert inf.quality == "partial" and inf.request_duration_s is None and "+Inf" in inf.error


def test_counter_reset_is_missing_not_a_small_count(stack):
    prom, frontend = stack
    _wait_until(frontend, 12.0)
    start, end = _window(frontend, 3.0, 11.0)
    obs = _source(prom.url, "reset-model", "scripted").observe(start, end)
    assert obs.num_req is None and "counter reset" in obs.error


def test_wrong_port_stopped_server_and_not_prometheus_are_errors(stack, tmp_path):
    _, frontend = stack
    start, end = _window(frontend, 0.0, 5.0)
    wrong = _source(f"http://127.0.0.1:{free_port()}", HOSTILE_MODEL, "sim").observe(start, end)
    assert wrong.quality == "error" and wrong.num_req is None and "cannot reach Prometheus" in wrong.error
    exporter = _source(f"http://127.0.0.1:{frontend.port}", HOSTILE_MODEL, "sim").observe(start, end)
    assert exporter.quality == "error" and "not JSON" in exporter.error
    other = PrometheusServer(tmp_path / "p2", []).start()
    url = other.url
    other.stop()
    stopped = _source(url, HOSTILE_MODEL, "sim").observe(start, end)
    assert stopped.quality == "error" and stopped.num_req is None and "cannot reach" in stopped.error
    assert not any(isinstance(v, float) and v == 0.0 and not math.isnan(v) for v in (stopped.ttft_ms, stopped.itl_ms))
