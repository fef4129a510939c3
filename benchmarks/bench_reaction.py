"""How early must a planner react to a burst? The bound behind issue 15's code x10 target.

    .venv/bin/python benchmarks/bench_reaction.py [--trace code] [--scale 10] [--prefill 10]
        [--at-s 188,203,213,223,233,243,253]

Azure code x10 opens with 2,113 requests in minute 0 (3 prefill engines serve it with no miss),
282 in minute 1, none in minute 2, then its two busiest minutes yet (2,510 and 3,647 requests,
5 engines each by the oracle). Engines take a minute to start, so every request of minute 4
that arrives before extra engines are ready waits behind a growing queue.

This replays ``default`` on the trace, and again once per ``--at-s`` time with one intervention
no planner can make: at that second (from the trace start) an operator who knows what is coming
asks for ``--prefill`` engines through the queue check's audited path (so the stabiliser holds
them like any target). It does so by standing in for the check's rule (``queue_check``) for that
one call: a measuring instrument, not a policy anyone could run. The attainment each run reaches
is the most *any* planner reacting at that moment could reach with that many engines;
``clairvoyant`` (which knows each next interval's load) sets issue 15's target (1 point below it).

It also prints what the frontend showed at every queue check (every 5 s, the last 10 s of
arrivals and the requests waiting for a first token) between the burst's first arrival and the
latest reaction time that still meets the target, beside the heaviest such reading of minute 0,
which 3 engines served with no miss. If none is heavier, no rule on the frontend's current
readings can react in time without also scaling in minute 0: only a forecast of the burst could.

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench_replay import TRACES

import planner_core.cycle as cycle_module
from planner_core.config import make_config
from planner_core.profiles import load_profile
from planner_core.sim.replay import compute_oracle, load_workload, run_policy
from planner_core.surge import QueueCheck


@dataclass
class Reading:
    """One queue check's view of the frontend."""

    t_s: float
    arrivals_per_s: float
    queued: float


@contextmanager
def watched_checks(start: Any, at_s: float | None, prefill: int, readings: list[Reading]) -> Iterator[None]:
    """Record every queue check's readings; at the first check at or after ``at_s`` (None: never),
    answer it with ``prefill`` engines instead of the rule's own answer."""
    rule = cycle_module.queue_check
    run_check = cycle_module.PlanningCycle.check_queue
    now: list[Any] = [None]
    done = [at_s is None]

    def check_queue(self: Any, when: Any = None) -> Any:
        now[0] = when or self.clock.now()
        return run_check(self, when)

    def queue_check(**kw: Any) -> QueueCheck:
        t_s = (now[0] - start).total_seconds()
        window_s = kw["window_s"]
        readings.append(Reading(t_s, (kw["num_req"] or 0.0) / window_s, kw["queued_requests"] or 0.0))
        if not done[0] and at_s is not None and t_s >= at_s - 1e-9:
            done[0] = True
            return QueueCheck(prefill, f"hindsight: {prefill} prefill engines at {t_s:.0f} s", {})
        return rule(**kw)

    cycle_module.PlanningCycle.check_queue = check_queue  # type: ignore[method-assign,assignment]
    cycle_module.queue_check = queue_check
    try:
        yield
    finally:
        cycle_module.PlanningCycle.check_queue = run_check  # type: ignore[method-assign]
        cycle_module.queue_check = rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", default="code", choices=sorted(TRACES))
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--prefill", type=int, default=10, help="engines the hindsight operator asks for")
    parser.add_argument("--at-s", default="188,203,213,223,233,243,253", help="reaction times, s from the start")
    parser.add_argument("--calm-minute", type=int, default=0, help="the minute whose readings are the reference")
    args = parser.parse_args()
    t0 = time.perf_counter()
    config = make_config(adjustment_interval_s=60, max_gpu_budget=256, load_predictor="auto")
    profile = load_profile(config.profile_dir())
    workload = load_workload(TRACES[args.trace], load_scale=args.scale, seed=0, copy_jitter_s=60.0)
    plan = compute_oracle(workload, profile, config)
    start = workload.start

    def replay(policy: str, at_s: float | None = None) -> tuple[Any, list[Reading]]:
        readings: list[Reading] = []
        with watched_checks(start, at_s, args.prefill, readings):
            result = run_policy(workload, config, policy, oracle_plan=plan, profile=profile)
        return result, readings

    default, readings = replay("default")
    clairvoyant, _ = replay("clairvoyant")
    target = min(0.99, clairvoyant.feasible_sla_attainment - 0.01)
    print(f"{args.trace} x{args.scale:g}: default {default.feasible_sla_attainment:.2%} at {default.gpu_hours:.2f} "
          f"GPU-h, clairvoyant {clairvoyant.feasible_sla_attainment:.2%} at {clairvoyant.gpu_hours:.2f}; "
          f"target {target:.2%}")
    print(f"{'react at s':>10}  {'SLA met':>8}  {'GPU-h':>6}  target")
    rows = []
    for at_s in (float(x) for x in args.at_s.split(",")):
        result, _ = replay("default", at_s)
        met = result.feasible_sla_attainment >= target
        rows.append({"at_s": at_s, "feasible_sla_attainment": result.feasible_sla_attainment,
                     "gpu_hours": result.gpu_hours, "meets_target": met})
        print(f"{at_s:>10g}  {result.feasible_sla_attainment:>8.2%}  {result.gpu_hours:>6.2f}  {'met' if met else '-'}")
    latest = max((r["at_s"] for r in rows if r["meets_target"]), default=None)
    interval = float(config.adjustment_interval_s)
    calm = [r for r in readings if args.calm_minute * interval < r.t_s <= (args.calm_minute + 1) * interval]
    calm_rate = max((r.arrivals_per_s for r in calm), default=0.0)
    calm_queue = max((r.queued for r in calm), default=0.0)
    print(f"minute {args.calm_minute} (no miss): heaviest reading {calm_rate:.1f} req/s, {calm_queue:.0f} waiting")
    heavier = []
    if latest is not None:
        # the burst starts at the first arrival after the last silent reading before it
        silent = [r.t_s for r in readings if r.t_s < latest and r.arrivals_per_s == 0]
        burst_from = max(silent, default=0.0)
        window = [r for r in readings if burst_from < r.t_s <= latest]
        heavier = [r for r in window if r.arrivals_per_s > calm_rate or r.queued > calm_queue]
        print(f"latest reaction meeting the target: {latest:g} s; the {len(window)} readings from the burst's "
              f"start ({burst_from:g} s) to then: at most {max(r.arrivals_per_s for r in window):.1f} req/s, "
              f"{max(r.queued for r in window):.0f} waiting; heavier than minute {args.calm_minute}: {len(heavier)}")
    wall_s = time.perf_counter() - t0
    print(f"wall {wall_s:.0f} s")
    print(json.dumps({
        "benchmark": "reaction", "trace": args.trace, "load_scale": args.scale, "prefill": args.prefill,
        "default": default.feasible_sla_attainment, "clairvoyant": clairvoyant.feasible_sla_attainment,
        "target": target, "reactions": rows, "latest_reaction_meeting_target_s": latest,
        "calm_minute_max_rate_per_s": calm_rate, "calm_minute_max_queued": calm_queue,
        "readings_heavier_than_calm_before_latest": len(heavier), "wall_s": wall_s,
    }))


if __name__ == "__main__":
    main()
