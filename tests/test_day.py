"""Day-long diurnal traces: the shared ServeGen day loads, and a shortened day replays through
``benchmarks/bench_day.py`` (the full day is a benchmark, not a test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from planner_core.sim.replay import load_workload
from planner_core.traces import expected_requests, read_rate_curve

ROOT = Path(__file__).resolve().parents[1]
CURVES = ROOT.parent / "shared" / "data" / "traces" / "servegen" / "aggregated"
DEEPSEEK = CURVES / "reason_deepseek-r1_aggregate.csv"


@pytest.fixture
def deepseek() -> Path:
    if not DEEPSEEK.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{DEEPSEEK} missing: CI lays ../shared beside the clone")
        pytest.skip("../shared not present")
    return DEEPSEEK


def test_day_long_curve_loads_at_scale_with_servegen_lengths(deepseek):
    curve = read_rate_curve(deepseek)
    assert len(curve) == 144 and float(curve.window_start_s[-1] + curve.window_s[-1]) == 86_400
    assert curve.rate_rps.max() / curve.rate_rps.min() > 5  # the day swings several-fold
    # the first two hours at scale 0.5: Poisson at half the rate, lengths rescaled per window
    w = load_workload(deepseek, load_scale=0.5, seed=1, duration_s=7200)
    assert len(w) == pytest.approx(0.5 * expected_requests(curve, 0, 7200), rel=0.03)
    assert w.duration_s <= 7200 and np.all(np.diff(w.arrival_s) >= 0)
    window = (w.arrival_s // 600).astype(int)
    for k in (0, 5, 11):
        assert w.isl[window == k].mean() == pytest.approx(curve.mean_isl[k], rel=0.1)
        assert w.osl[window == k].mean() == pytest.approx(curve.mean_osl[k], rel=0.1)


def test_bench_day_replays_a_shortened_day(deepseek):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_day.py"),
            "--traces",
            "deepseek-r1",
            "--scales",
            "deepseek-r1=0.5",
            "--duration-s",
            "600",
            "--policies",
            "default,static-best,oracle",
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    assert "servegen deepseek-r1" in out and "static-best" in out
    report = json.loads(out.strip().splitlines()[-1])
    (run,) = report["runs"]
    assert run["requests"] > 3_000 and run["duration_s"] <= 600
    by = {r["policy"]: r for r in run["results"]}
    assert set(by) == {"default", "static-best", "oracle"}
    assert by["static-best"]["feasible_sla_attainment"] >= 0.99  # the search's own target
    assert by["default"]["gpu_hours"] > 0 and "feasible>=99%" in next(iter(run["targets"]))
