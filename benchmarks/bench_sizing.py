"""Decisions per second of the pure sizing function (target: >= 10,000/s on one core).

    .venv/bin/python benchmarks/bench_sizing.py [--seconds 3]

Interpolation tables are built once per profile (load_profile caches them); the loop below
sizes a different load every call, alternating policies, so nothing is memoised.
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
    results = {}
    for policy in (Policy.DEFAULT, Policy.DYNAMO):
        config = make_config(policy=policy, max_gpu_budget=64, adjustment_interval_s=60)
        count = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            for k in range(1000):
                size(loads[(count + k) % n], profile, config, corrections[(count + k) % n])
            count += 1000
        elapsed = time.perf_counter() - t0
        results[policy.value] = count / elapsed
        print(
            f"policy={policy.value:8s} {count:>8,d} decisions in {elapsed:5.2f} s -> "
            f"{count / elapsed:>10,.0f} decisions/s ({elapsed / count * 1e6:.1f} us each)"
        )
    print(f"profile tables built in {build_s * 1000:.0f} ms (once per profile)")
    ok = min(results.values()) >= 10_000
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
