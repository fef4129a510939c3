"""The simulated Dynamo frontend exporter, and the replay through exporter -> scrape -> query."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from planner_core.config import make_config
from planner_core.metrics import promql
from planner_core.metrics.exporter import (
    BUCKETS,
    FrontendRecorder,
    SimFrontendServer,
    exposition,
    log_buckets,
    round_sig,
)
from planner_core.metrics.simulated import frontend_window
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim.cluster import ClusterSimulator
from planner_core.sim.replay import Workload, run_policy

PROFILE = load_profile(make_config().profile_dir())


def test_bucket_bounds_are_the_frontends_defaults():
    assert BUCKETS[promql.TTFT] == (
        0.0, 0.0022, 0.0047, 0.01, 0.022, 0.047, 0.1, 0.22, 0.47, 1.0, 2.2, 4.7, 10.0, 22.0, 48.0, 100.0, 220.0, 480.0,
    )  # fmt: skip
    assert BUCKETS[promql.ITL] == (
        0.0, 0.0019, 0.0035, 0.0067, 0.013, 0.024, 0.045, 0.084, 0.16, 0.3, 0.56, 1.1, 2.0,
    )  # fmt: skip
    assert BUCKETS[promql.REQUEST_DURATION] == (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 130.0, 260.0, 510.0)
    assert BUCKETS[promql.ISL][:4] == (0.0, 100.0, 210.0, 430.0) and BUCKETS[promql.ISL][-1] == 130000.0
    assert BUCKETS[promql.OSL][-1] == 32000.0
    # halves round away from zero
    assert round_sig(125.0) == 130.0 and round_sig(0.25, 1) == 0.3 and round_sig(-0.0451) == -0.045
    assert log_buckets(1.0, 1.01, 5) == (0.0, 1.0)  # rounding duplicates removed


def _sim(n: int = 200, rate: float = 10.0, replicas: Replicas = Replicas(2, 2)) -> ClusterSimulator:  # noqa: B008
    arrival = np.arange(n) / rate
    return ClusterSimulator(PROFILE, arrival, np.full(n, 3000.0), np.full(n, 150.0), initial=replicas)


def test_exposition_has_the_frontends_names_types_and_labels():
    sim = _sim()
    sim.advance_to(12.0)
    recorder = FrontendRecorder(sim.event_log(), model='a"}or vector(1)#')
    recorder.advance(12.0)
    families = {f.name: f for f in text_string_to_metric_families(exposition(recorder))}
    types = {name: f.type for name, f in families.items()}
    assert types == {
        "dynamo_frontend_requests_started": "counter",
        "dynamo_frontend_requests": "counter",
        "dynamo_frontend_inflight_requests": "gauge",
        "dynamo_frontend_queued_requests": "gauge",
        "dynamo_frontend_disconnected_clients": "gauge",
        "dynamo_frontend_output_tokens": "counter",
        "dynamo_frontend_request_duration_seconds": "histogram",
        "dynamo_frontend_input_sequence_tokens": "histogram",
        "dynamo_frontend_output_sequence_tokens": "histogram",
        "dynamo_frontend_time_to_first_token_seconds": "histogram",
        "dynamo_frontend_inter_token_latency_seconds": "histogram",
    }
    started = families["dynamo_frontend_requests_started"].samples[0]
    assert started.name == "dynamo_frontend_requests_started_total" and started.value == 120
    assert started.labels == {"model": 'a"}or vector(1)#', "endpoint": "chat_completions", "request_type": "stream"}
    finished = families["dynamo_frontend_requests"].samples[0]
    assert finished.labels["status"] == "success" and finished.labels["error_type"] == ""
    ttft = families["dynamo_frontend_time_to_first_token_seconds"]
    bounds = [float(s.labels["le"]) for s in ttft.samples if s.name.endswith("_bucket")]
    assert bounds[:-1] == list(BUCKETS[promql.TTFT]) and bounds[-1] == float("inf")
    # the window values the direct path reads are the exporter's sums over counts
    window = frontend_window(sim.event_log(), 0.0, 12.0)
    count = next(s.value for s in ttft.samples if s.name.endswith("_count"))
    total = next(s.value for s in ttft.samples if s.name.endswith("_sum"))
    assert total / count * 1000.0 == pytest.approx(window["ttft_ms"])
    itl = families["dynamo_frontend_inter_token_latency_seconds"]
    itl_count = next(s.value for s in itl.samples if s.name.endswith("_count"))
    assert itl_count == 150 * recorder.finished  # one observation per output token


def test_recorder_counts_only_events_before_its_time():
    sim = _sim()
    sim.advance_to(5.0)
    recorder = FrontendRecorder(sim.event_log())
    recorder.advance(5.0)
    assert recorder.started == 50  # arrivals at 0.0 .. 4.9; the one at exactly 5.0 is the next window's
    with pytest.raises(ValueError, match="back in time"):
        recorder.advance(4.0)


def test_sim_frontend_server_serves_metrics_and_takes_targets_from_another_thread():
    with SimFrontendServer(_sim(), port=0, speed=50.0, tick_s=0.02) as server:
        assert server.port > 0 and server.url.endswith(f":{server.port}/metrics")
        mover = threading.Thread(target=server.set_targets, args=(Replicas(3, 1),))
        mover.start()
        mover.join()
        deadline = 200
        while server.sim_time_s < 2.0 and deadline:
            threading.Event().wait(0.02)
            deadline -= 1
        body = requests.get(server.url, timeout=5).text
        assert "dynamo_frontend_requests_started_total" in body
        replicas = server.replicas()
        assert replicas["prefill"]["target"] == 3 and replicas["decode"]["target"] == 1


def _workload(seconds: float = 900.0, seed: int = 3) -> Workload:
    rng = np.random.default_rng(seed)
    # traffic that swings between 4 and 16 requests per second, in steps about six minutes apart:
    # enough for the planner to move both ways within the 15 minutes
    t = np.sort(rng.uniform(0, seconds, int(seconds * 16)))
    keep = rng.uniform(size=t.size) < (0.25 + 0.75 * (np.sin(t / 120.0) > 0))
    arrival = t[keep]
    isl = rng.integers(500, 6000, arrival.size).astype(float)
    osl = rng.integers(20, 400, arrival.size).astype(float)
    return Workload(arrival, isl, osl, "synthetic")


@pytest.mark.parametrize("resolution_s", [5.0, 15.0])
def test_replay_through_exporter_and_queries_decides_as_the_direct_path(resolution_s):
    config = make_config(
        adjustment_interval_s=60, max_gpu_budget=64, load_predictor="constant", arrival_resolution_s=resolution_s
    )
    workload = _workload()
    direct = run_policy(workload, config, "default", profile=PROFILE, frontend="direct")
    through = run_policy(workload, config, "default", profile=PROFILE, frontend="exporter")
    for key in ("prefill_target", "decode_target", "num_req", "predicted_num_req"):
        assert through.timeline[key] == direct.timeline[key], key
    for key in ("ttft_ms", "itl_ms"):
        assert through.timeline[key] == pytest.approx(direct.timeline[key], rel=1e-9), key
    assert (through.sla_attainment, through.gpu_hours) == (direct.sla_attainment, direct.gpu_hours)
    assert len(set(direct.timeline["prefill_target"])) > 1  # the traffic made the planner move


def test_unknown_replay_frontend_is_refused():
    config = make_config(adjustment_interval_s=60)
    with pytest.raises(ValueError, match="frontend"):
        run_policy(_workload(120.0), config, "default", profile=PROFILE, frontend="carrier-pigeon")


def test_sim_frontend_command_prints_its_url_and_serves_metrics(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(f'{{"timestamp": {i * 100}, "input_length": 3000, "output_length": 150}}\n' for i in range(600))
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "planner_core.cli", "sim-frontend", "--trace", str(trace), "--speed", "20",
         "--port", "0", "--model-name", "llama", "--exit-after-s", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/metrics", banner)
        assert url, banner
        time.sleep(1.0)
        body = requests.get(url.group(0), timeout=5).text
        assert 'dynamo_frontend_requests_started_total{endpoint="chat_completions",model="llama"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_isl_histogram_through_the_exporter_equals_the_direct_frontends():
    """Long prompts (beyond the TTFT SLA's limit) reach the planner the same way on both paths:
    the input_sequence_tokens buckets' increases over each window."""
    rng = np.random.default_rng(3)
    arrival = np.sort(rng.uniform(0, 180, 400))
    isl = np.where(rng.uniform(size=400) < 0.2, rng.uniform(31_000, 100_000, 400), rng.uniform(100, 3000, 400))
    osl = np.full(400, 50.0)
    for a, b in _observed_on_both_paths(arrival, isl, osl, Replicas(8, 2)):
        assert a.isl_histogram is not None and a.isl_histogram == b.isl_histogram
        bounds = [le for le, _ in a.isl_histogram]
        assert bounds == [*BUCKETS[promql.ISL], float("inf")]
        long_ones = a.isl_histogram[-1][1] - dict(a.isl_histogram)[31_000.0]
        assert long_ones > 0  # the 20 % above 31k tokens are visible


def test_simulated_frontend_reports_requests_waiting_for_a_first_token():
    from planner_core.metrics.simulated import waiting_for_first_token
    from planner_core.sim.cluster import EventLog

    log = EventLog([1.0, 2.0, 3.0, 4.0], [], [1.5, 3.5], [], [], [], [], [], [])
    # at 3.0: arrivals at 1 and 2 (3.0 belongs to the next window), one first token at 1.5
    assert [waiting_for_first_token(log, t) for t in (0.5, 3.0, 3.6, 10.0)] == [0, 1, 1, 2]


def test_simulated_frontend_reports_requests_in_flight():
    from planner_core.metrics.simulated import in_flight
    from planner_core.sim.cluster import EventLog

    log = EventLog([1.0, 2.0, 3.0, 4.0], [], [], [], [], [2.5, 3.5], [], [], [])
    # at 3.0: arrivals at 1 and 2 (3.0 belongs to the next window), one finished at 2.5
    assert [in_flight(log, t) for t in (0.5, 3.0, 3.6, 10.0)] == [0, 1, 1, 2]


def test_inflight_through_the_exporter_equals_the_direct_frontends():
    """The in-flight gauge reaches the planner the same on both paths: the simulated frontend
    reads the event log, the exporter path scrapes dynamo_frontend_inflight_requests through the
    Prometheus source's instant query."""
    arrival = np.arange(0, 180, 0.1)
    isl, osl = np.full(arrival.size, 1000.0), np.full(arrival.size, 2000.0)
    for a, b in _observed_on_both_paths(arrival, isl, osl, Replicas(2, 2)):
        assert a.inflight_requests is not None and a.inflight_requests == b.inflight_requests
        assert a.inflight_requests > 0  # 10 req/s of 2,000 output tokens stay for many seconds


def _observed_on_both_paths(arrival, isl, osl, initial):
    """Three 60 s windows of the same requests, observed by the simulated frontend directly and
    through the exporter, a scrape and the Prometheus source's queries: (direct, through) each."""
    from datetime import UTC, datetime, timedelta

    from planner_core.metrics.exporter import ExporterFrontend
    from planner_core.metrics.simulated import SimulatedFrontend

    epoch = datetime(2026, 1, 1, tzinfo=UTC)

    def sim():
        return ClusterSimulator(PROFILE, arrival, isl, osl, initial=initial, startup_s=0.0)

    direct = SimulatedFrontend(sim(), epoch, arrival, 5.0)
    through = ExporterFrontend(sim(), epoch, 5.0)
    windows = [(epoch + timedelta(seconds=60 * k), epoch + timedelta(seconds=60 * (k + 1))) for k in range(3)]
    return [(direct.observe(start, end), through.observe(start, end)) for start, end in windows]
