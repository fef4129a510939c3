"""What Prefect adds to a planning cycle.

Runs 30 cycles of one deployment over the simulated deployment (``planner_core.sim.world``,
SQLite store, the default ``arima`` predictor in the plan flow's mode: order searches deferred to
the refit flow) twice:

* bare: what ``sla-planner run-once`` does per cycle (open the store's deployment, resume the
  predictor from its saved state, run the cycle under the lock), timed without the metric fetch
  (the simulator advancing) and with it;
* flow: the ``plan`` flow called under a local Prefect test server (flow run, task runs, state
  changes and the decision artifact through the API), timed per call.

Targets (issue 11): bare cycle p95 under 100 ms excluding the metric fetch; Prefect's addition
(flow p95 minus bare p95 with the fetch) under 1 s.

Usage: .venv/bin/python benchmarks/bench_flow.py [--cycles 30]
Prints a table and, last, one JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from planner_core.config import PlannerConfig, make_config  # noqa: E402
from planner_core.records import Observation  # noqa: E402
from planner_core.runtime import Ports, open_cycle, using_ports  # noqa: E402
from planner_core.sim.world import SimWorld  # noqa: E402
from planner_core.store import Store  # noqa: E402

INTERVAL_S = 60
DEPLOYMENT = "bench-llama"


class TimedFrontend:
    """The simulated frontend, with the time spent in each fetch recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last_s = 0.0

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        t0 = time.perf_counter()
        try:
            return self.inner.observe(window_start, window_end)
        finally:
            self.last_s = time.perf_counter() - t0


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)), "max_ms": float(a.max())}


def bare(config: PlannerConfig, cycles: int, url: str) -> dict[str, dict[str, float]]:
    world = SimWorld(config, rate_per_s=8.0, duration_s=(cycles + 1) * INTERVAL_S)
    frontend = TimedFrontend(world.frontend)
    ports = Ports(metrics=frontend, connector=world.connector, clock=world.clock)
    total, without_fetch = [], []
    with Store(url) as store:
        for k in range(cycles):
            end = world.window_end(k, INTERVAL_S)
            world.clock.set(end)
            t0 = time.perf_counter()
            result = open_cycle(config, DEPLOYMENT, store, ports=ports).run(window_end=end)
            elapsed = time.perf_counter() - t0
            assert result.status in ("ok", "held"), result.error
            total.append(elapsed)
            without_fetch.append(elapsed - frontend.last_s)
    return {"with_fetch": _pct(total), "without_fetch": _pct(without_fetch)}


def flow(config: PlannerConfig, cycles: int, url: str) -> dict[str, float]:
    from prefect.testing.utilities import prefect_test_harness

    from flows.plan import plan

    world = SimWorld(config, rate_per_s=8.0, duration_s=(cycles + 1) * INTERVAL_S)
    times = []
    with prefect_test_harness(server_startup_timeout=120), using_ports(world.ports):
        for k in range(cycles):
            end = world.window_end(k, INTERVAL_S)
            world.clock.set(end)
            t0 = time.perf_counter()
            state = plan(deployment=DEPLOYMENT, settings=config, db_url=url, window_end=end, return_state=True)
            times.append(time.perf_counter() - t0)
            assert state.is_completed(), state.message
    return _pct(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    config = make_config(environment="virtual", adjustment_interval_s=INTERVAL_S, max_gpu_budget=32)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PREFECT_HOME"] = str(Path(tmp) / "prefect-home")
        b = bare(config, args.cycles, f"sqlite:///{tmp}/bare.db")
        f = flow(config, args.cycles, f"sqlite:///{tmp}/flow.db")
    added = {k: f[k] - b["with_fetch"][k] for k in ("p50_ms", "p95_ms")}
    print(f"{args.cycles} cycles, interval {INTERVAL_S} s, predictor {config.load_predictor} (refits deferred), SQLite")
    print(f"{'':28s} {'p50 ms':>9s} {'p95 ms':>9s} {'max ms':>9s}")
    for label, row in (
        ("bare cycle, without fetch", b["without_fetch"]),
        ("bare cycle, with fetch", b["with_fetch"]),
        ("plan flow run", f),
    ):
        print(f"{label:28s} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f} {row['max_ms']:9.1f}")
    print(f"{'Prefect adds':28s} {added['p50_ms']:9.1f} {added['p95_ms']:9.1f}")
    bare_ok = b["without_fetch"]["p95_ms"] < 100.0
    added_ok = added["p95_ms"] < 1000.0
    print(f"target bare p95 < 100 ms (without fetch): {'met' if bare_ok else 'MISSED'}")
    print(f"target Prefect adds p95 < 1000 ms: {'met' if added_ok else 'MISSED'}")
    print(
        json.dumps(
            {
                "bench": "flow",
                "cycles": args.cycles,
                "bare_without_fetch": b["without_fetch"],
                "bare_with_fetch": b["with_fetch"],
                "flow": f,
                "prefect_adds": added,
                "targets_met": {"bare_p95_under_100ms": bare_ok, "prefect_adds_p95_under_1s": added_ok},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
