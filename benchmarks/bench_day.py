"""Day-long diurnal replays: one full day of ServeGen's deepseek-r1 and m-mid rate curves.

    .venv/bin/python benchmarks/bench_day.py [--traces deepseek-r1,m-mid] [--scales deepseek-r1=1,m-mid=0.02]
        [--policies default,clairvoyant,dynamo,static,static-best,oracle] [--jobs 2] [--duration-s 86400]

Each trace is the shared ServeGen aggregate rate curve (``servegen/aggregated/``; 10-minute
windows, t = 0 is midnight) replayed from midnight over ``--duration-s`` seconds (a day) at real
time: Poisson arrivals at the curve's rate times the scale (the superposition of independent
users), with (ISL, OSL) pairs drawn from the bundled Azure conversation trace and rescaled per
window to ServeGen's mean lengths (ServeGen's per-client length histograms are not in the shared
data; :func:`planner_core.traces.requests_from_rate_curve`). SLA 500 ms / 50 ms, 60 s interval,
60 s start-up, ``max_num_seqs`` 256, arrival resolution 5 s: the replay's defaults.

The oracle runs first (its intervals split over ``--jobs`` processes), then every policy in a
pool of ``--jobs`` processes (forked: they share the workload). ``static-best`` is the cheapest
fixed pair reaching 99 % of feasible requests, searched in hindsight
(:class:`planner_core.sim.baselines.StaticSearch`, every pair tried is one day-long replay,
stopped once it has missed more than 1 % of the day's feasible requests);
``dynamo-tuned`` (18 day-long replays) is left out unless listed. ``dynamo`` searches its ARIMA
order every 60 intervals (hourly) instead of every interval (seconds a search; the parameters are still
re-filtered every interval).

Prints a table per trace, the issue-15 targets for the day-long traces (``default`` >= 99 % of
feasible requests, or within 1 point of ``clairvoyant``; GPU-hours <= 0.75 x ``static-best``'s;
a scale whose busiest interval needs 8 or more GPUs per pool by the oracle's plan, which the
default scales do not reach: docs/baselines.md, "Day-long traces"),
the wall time and peak memory, and one JSON line at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

from planner_core.config import PlannerConfig, make_config
from planner_core.profiles import Profile, load_profile
from planner_core.records import Replicas
from planner_core.sim.baselines import StaticSearch, pick_in_hindsight, replay_runner, sweep_dynamo_tuned
from planner_core.sim.oracle import oracle_replicas
from planner_core.sim.replay import ReplayResult, Workload, load_workload, run_policy
from planner_core.sim.report import format_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "servegen" / "aggregated"
TRACES = {
    "deepseek-r1": SHARED / "reason_deepseek-r1_aggregate.csv",
    "m-mid": SHARED / "language_m-mid_aggregate.csv",
}
# Scales that fit the 15-minute budget on the shared 2-core machine. Issue 15 asks for a peak of
# 8 or more GPUs in each pool; the oracle needs that only from about deepseek-r1=10 and
# m-mid=0.25 (13.8 and 28.9 million requests a day), where the oracle's plan and one replay of
# each trace alone take about an hour of CPU (the budget is 30 CPU-minutes) and an m-mid replay
# more memory than the machine has: docs/baselines.md, "Day-long traces", has the numbers.
# The table prints the oracle's peak per pool and the check.
DEFAULT_SCALES = {"deepseek-r1": 1.0, "m-mid": 0.02}
DAY_S = 86_400.0
DYNAMO_REFIT_EVERY = 60
DAY_TARGET_VS_STATIC_BEST = 0.75
# issue 15: the day is replayed at a scale whose busiest interval needs this many GPUs in each pool
PEAK_GPUS_PER_POOL = 8

# Set in the parent before the pool forks; the workers read them (copy-on-write, not pickled).
_RUN: dict[str, Any] = {}


def _oracle_part(part: tuple[int, int]) -> list[Replicas]:
    first, count = part
    workload: Workload = _RUN["workload"]
    config: PlannerConfig = _RUN["config"]
    interval = float(config.adjustment_interval_s)
    return oracle_replicas(
        _RUN["profile"],
        workload.arrival_s,
        workload.isl,
        workload.osl,
        interval_s=interval,
        ttft_ms=config.ttft_ms,
        itl_ms=config.itl_ms,
        start_s=first * interval,
        num_intervals=count,
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
    )


# Task order in the pool: the longest first (unlisted ones after these).
_LONGEST = {
    ("m-mid", "dynamo"): 0,
    ("deepseek-r1", "static-best"): 1,
    ("deepseek-r1", "dynamo"): 2,
    ("m-mid", "static-best"): 3,
    ("deepseek-r1", "dynamo-tuned"): 4,
    ("m-mid", "dynamo-tuned"): 5,
}


def _run_task(task: tuple[str, str]) -> tuple[ReplayResult, float, int, int]:
    """One (trace, policy) of the pool; the trace's workload and oracle plan were prepared (and
    inherited through the fork)."""
    trace, policy = task
    prepared = _RUN["prepared"][trace]
    return _run(policy, prepared["workload"], prepared["plan"])


def _run(policy: str, workload: Workload, plan: list[Replicas]) -> tuple[ReplayResult, float, int, int]:
    """One policy's day (static-best and dynamo-tuned: their search in hindsight); with its wall
    seconds, the number of day-long replays it took and how many of those stopped early."""
    config: PlannerConfig = _RUN["config"]
    profile: Profile = _RUN["profile"]
    started = time.perf_counter()
    stopped = 0
    if policy == "static-best":
        # A pair that has missed more than the target allows stops there: the search only needs
        # to know it fails, and the table shows only the pair picked, which never stops.
        search = StaticSearch(replay_runner(workload, profile, plan, stop_failing_static=True), config, plan)
        result, runs = search.best(config.sla_attainment), len(search.tried)
        stopped = sum(1 for r in search.tried.values() if r.unfinished)
        if result.unfinished:  # not even the largest pair reaches the target: replay it in full
            full = replay_runner(workload, profile, plan)(config, "static", Replicas(*search_top(search)))
            result = dataclasses.replace(full, policy=result.policy, setting=result.setting)
            runs += 1
    elif policy == "dynamo-tuned":
        grid = sweep_dynamo_tuned(replay_runner(workload, profile, plan), config)
        result, runs = pick_in_hindsight(grid, config.sla_attainment), len(grid)
    else:
        result = run_policy(
            workload, config, policy, oracle_plan=plan, profile=profile, dynamo_refit_every=DYNAMO_REFIT_EVERY
        )
        runs = 1
    return result, time.perf_counter() - started, runs, stopped


def search_top(search: StaticSearch) -> tuple[int, int]:
    """The largest pair static-best searches (its answer when no pair reaches the target)."""
    return search.prefill_range[1], search.decode_range[1]


def _peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory (MiB) of this process and of the largest worker process."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def parse_scales(text: str) -> dict[str, float]:
    scales = dict(DEFAULT_SCALES)
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, value = item.partition("=")
        if name not in TRACES or not value:
            raise SystemExit(f"--scales: expected trace=scale with a trace of {', '.join(TRACES)}, got {item!r}")
        scales[name] = float(value)
    return scales


def day_targets(by: dict[str, ReplayResult], peak_gpus: tuple[int, int] | None = None) -> dict[str, bool]:
    """Issue 15's targets for a day-long trace, for the policies that ran; ``peak_gpus``: the
    oracle's busiest interval per pool in GPUs (prefill, decode), checked against the scale the
    issue asks for."""
    checks: dict[str, bool] = {}
    d = by.get("default")
    if d is not None:
        att = d.feasible_sla_attainment
        if "clairvoyant" in by:
            clair = by["clairvoyant"].feasible_sla_attainment
            checks["feasible>=99% (or within 1 pt of clairvoyant below 99%)"] = att >= 0.99 or (
                clair < 0.99 and att >= clair - 0.01
            )
        else:
            checks["feasible>=99%"] = att >= 0.99
        if "static-best" in by:
            checks[f"gpu_hours<={DAY_TARGET_VS_STATIC_BEST}x_static-best"] = (
                d.gpu_hours <= DAY_TARGET_VS_STATIC_BEST * by["static-best"].gpu_hours
            )
    if peak_gpus is not None:
        checks[f"oracle_peak>={PEAK_GPUS_PER_POOL}_gpus_per_pool"] = min(peak_gpus) >= PEAK_GPUS_PER_POOL
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument(
        "--scales",
        default="",
        help="trace=scale,... (default " + ", ".join(f"{k}={v:g}" for k, v in DEFAULT_SCALES.items()) + ")",
    )
    parser.add_argument("--policies", default="default,clairvoyant,dynamo,static,static-best,oracle")
    parser.add_argument("--duration-s", type=float, default=DAY_S, help="replay this many seconds from midnight")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scales = parse_scales(args.scales)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    config = make_config(adjustment_interval_s=60, max_gpu_budget=1024, load_predictor="auto")
    profile = load_profile(config.profile_dir())
    context = multiprocessing.get_context("fork")
    bench_started = time.perf_counter()
    runs = []
    traces = [t.strip() for t in args.traces.split(",") if t.strip()]
    prepared: dict[str, dict[str, Any]] = {}
    for trace in traces:
        t0 = time.perf_counter()
        workload = load_workload(TRACES[trace], load_scale=scales[trace], seed=args.seed, duration_s=args.duration_s)
        load_s = time.perf_counter() - t0
        n_intervals = max(1, -(-int(workload.duration_s) // int(config.adjustment_interval_s)))
        _RUN.update(workload=workload, config=config, profile=profile)
        t0 = time.perf_counter()
        step = -(-n_intervals // args.jobs)
        parts = [(i, min(step, n_intervals - i)) for i in range(0, n_intervals, step)]
        with context.Pool(args.jobs) as pool:
            plan = [r for chunk in pool.map(_oracle_part, parts) for r in chunk]
        prepared[trace] = {
            "workload": workload,
            "plan": plan,
            "load_s": load_s,
            "oracle_plan_s": time.perf_counter() - t0,
        }
    _RUN["prepared"] = prepared
    # One pool over every trace's policies, the longest first, so that the workers end together
    # (dynamo's ARIMA on m-mid and static-best's search are the long ones).
    tasks = sorted(((t, p) for t in traces for p in policies), key=lambda tp: _LONGEST.get(tp, 9))
    t0 = time.perf_counter()
    with context.Pool(args.jobs) as pool:
        done = dict(zip(tasks, pool.map(_run_task, tasks, chunksize=1), strict=True))
    policies_s = time.perf_counter() - t0
    for trace in traces:
        workload, plan = prepared[trace]["workload"], prepared[trace]["plan"]
        results = [done[(trace, p)][0] for p in policies]
        by = {p: done[(trace, p)][0] for p in policies}
        peak_p = max((r.prefill or 0) for r in plan) * config.prefill_engine_num_gpu
        peak_d = max((r.decode or 0) for r in plan) * config.decode_engine_num_gpu
        print(
            f"\n== servegen {trace}, one day from midnight ({workload.duration_s / 3600:.1f} h), "
            f"scale {scales[trace]:g}: {len(workload):,} requests, mean ISL {workload.isl.mean():.0f}, "
            f"OSL {workload.osl.mean():.0f}; the oracle's busiest interval needs {peak_p} prefill and "
            f"{peak_d} decode GPUs"
        )
        print(format_table(results))
        for p in policies:
            result, wall, n, stopped = done[(trace, p)]
            cut = f", {stopped} of them stopped once they could no longer reach the target" if stopped else ""
            extra = f" ({n} day-long replays{cut}, picked {result.setting})" if n > 1 else ""
            print(f"  {p}: {wall:.0f} s{extra}")
        checks = day_targets(by, (peak_p, peak_d))
        if checks:
            print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in checks.items()))
        print(f"wall: load {prepared[trace]['load_s']:.1f} s, oracle plan {prepared[trace]['oracle_plan_s']:.1f} s")
        runs.append(
            {
                "trace": trace,
                "scale": scales[trace],
                "duration_s": workload.duration_s,
                "requests": len(workload),
                "oracle_peak_gpus": {"prefill": peak_p, "decode": peak_d},
                "results": [r.summary() for r in results],
                "wall_s": {
                    "load": prepared[trace]["load_s"],
                    "oracle_plan": prepared[trace]["oracle_plan_s"],
                    **{p: done[(trace, p)][1] for p in policies},
                },
                "day_long_replays": {p: done[(trace, p)][2] for p in policies},
                "stopped_early": {p: done[(trace, p)][3] for p in policies},
                "targets": checks,
            }
        )
    total_s = time.perf_counter() - bench_started
    own, child = _peak_rss_mib()
    cpu = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = sum(r.ru_utime + r.ru_stime for r in cpu)
    print(
        f"\ntotal wall {total_s:.0f} s ({total_s / 60:.1f} min; budget 15 min), policies {policies_s:.0f} s in "
        f"{args.jobs} processes, CPU {cpu_s:.0f} s; peak RSS {own:.0f} MiB (this process), "
        f"{child:.0f} MiB (largest worker)"
    )
    print(
        json.dumps(
            {
                "benchmark": "day",
                "jobs": args.jobs,
                "total_wall_s": total_s,
                "policies_wall_s": policies_s,
                "cpu_s": cpu_s,
                "peak_rss_mib": {"main": own, "largest_worker": child},
                "runs": runs,
            },
            default=str,
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
