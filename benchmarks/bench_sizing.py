"""Decisions per second of the pure sizing function (target: >= 10,000/s on one core).

    .venv/bin/python benchmarks/bench_sizing.py [--seconds 3]

Interpolation tables are built once per profile (load_profile caches them); the loop below
sizes a different load every call, so nothing is memoised. The target applies to the sizing
math on a forecast (``default``, ``dynamo``); ``default+bursts`` adds the fluid-queue replay of
four intervals of per-second arrival counts that the replay's cycle passes, which costs more and
is reported for information (a planning cycle needs one decision per interval).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from planner_core.config import BUNDLED_PROFILE_DIR, Policy, make_config
from planner_core.profiles import load_profile
from planner_core.records import Corrections, LoadForecast
from planner_core.sizing import size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    started = time.perf_counter()
    profile = load_profile(BUNDLED_PROFILE_DIR)
    build_s = time.perf_counter() - started

    rng = np.random.default_rng(0)
    n = 20_000
    loads = [
        LoadForecast(float(r), float(i), float(o))
        for r, i, o in zip(
            rng.uniform(0, 50_000, n), rng.uniform(100, 16_000, n), rng.uniform(10, 2_000, n), strict=True
        )
    ]
    corrections = [
        Corrections(float(p), float(d)) for p, d in zip(rng.uniform(0.5, 2, n), rng.uniform(0.5, 2, n), strict=True)
    ]
    # The replay's default policy also carries four intervals of per-second arrival counts.
    patterns = tuple(tuple(int(c) for c in rng.poisson(rng.uniform(5, 500), 60)) for _ in range(4))
    bursty = [LoadForecast(f.num_req, f.isl, f.osl, burst_patterns=patterns) for f in loads[:2000]]
    results = {}
    cases = (
        ("default", Policy.DEFAULT, loads),
        ("dynamo", Policy.DYNAMO, loads),
        ("default+bursts", Policy.DEFAULT, bursty),
    )
    for label, policy, inputs in cases:
        config = make_config(policy=policy, max_gpu_budget=64, adjustment_interval_s=60)
        count = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            for k in range(100):
                size(inputs[(count + k) % len(inputs)], profile, config, corrections[(count + k) % n])
            count += 100
        elapsed = time.perf_counter() - t0
        results[label] = count / elapsed
        print(
            f"policy={label:15s} {count:>8,d} decisions in {elapsed:5.2f} s -> "
            f"{count / elapsed:>10,.0f} decisions/s ({elapsed / count * 1e6:.1f} us each)"
        )
    print(f"profile tables built in {build_s * 1000:.0f} ms (once per profile)")
    ok = min(results["default"], results["dynamo"]) >= 10_000
    print(f"target >= 10,000 decisions/s: {'met' if ok else 'MISSED'}")
    print(
        json.dumps(
            {
                "benchmark": "sizing",
                "decisions_per_s": results,
                "profile_build_ms": build_s * 1000,
                "target_decisions_per_s": 10_000,
                "target_met": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
