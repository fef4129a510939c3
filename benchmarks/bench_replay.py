"""Closed-loop replay of the shared Azure traces: default vs Dynamo vs static vs oracle.

    .venv/bin/python benchmarks/bench_replay.py [--scales 10,30] [--traces code,conv] [--policies ...]
        [--resolutions 1,5,15]

For each trace and load scale it runs ``sla-planner replay --compare default,dynamo,static,oracle``
(same code path, no store) and prints the table, the targets, and one JSON line at the end.
Targets (issue 5): ``default`` reaches >= 99 % SLA attainment with GPU-hours <= 1.15 x the
oracle's and beats ``dynamo`` on attainment at no more than its GPU-hours; replaying one hour of
the conversation trace at scale 30 (about 580,000 requests) takes < 60 s of wall time.

The policies run at ``--arrival-resolution-s`` 5 (the default: the frontend's scrape interval);
then the ``default`` policy runs again at every ``--resolutions`` step (the arrival pattern read
from the request counter every 1, 5 and 15 s) and a resolution table prints its SLA attainment
and GPU-hours at each.
``--frontier`` compares at matched attainment instead (issue 15): it sweeps each policy's one knob
(our ``--sla-attainment``, dynamo-tuned's prefill throughput factor and decode target factor,
static-best's replica counts; ``planner_core/sim/baselines.py``), prints each policy's GPU-hours
at the target attainment (99 %) and at the attainment ``default`` reached (interpolated on each
frontier; static-best at a step), the singles (``dynamo`` as shipped, ``clairvoyant``, ...), the
oracle and the 99 % lower bound, the wall time of each part, and ``--plot-dir`` gets one
``frontier-<trace>-x<scale>.png`` per run. Defaults in that mode: scale 10, no resolution table,
policies ``default,dynamo-tuned,static-best,static,oracle`` (add ``dynamo``, whose ARIMA refits take
1-7 minutes a trace, with ``--policies``); on the mocker ``dynamo-1.6-sla,dynamo-1.6-throughput``
instead of ``static``.
``--engine mocker`` runs the same on Dynamo 1.6.1's mocker (the ``mocker`` extra; docs/mocker.md):
by default ``default``, ``dynamo``, ``dynamo-1.6-sla``, ``dynamo-1.6-throughput`` and ``oracle``
at scale 10, and no targets (the mocker is a cross-check, not the instrument they were set on).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

from planner_core.config import PlannerConfig, make_config
from planner_core.profiles import Profile, load_profile
from planner_core.records import Replicas
from planner_core.sim.baselines import (
    HINDSIGHT,
    TUNED_DECODE_FACTORS,
    TUNED_PREFILL_FACTORS,
    Runner,
    TunedGrid,
    frontier_report,
    lower_bound_gpu_hours,
    replay_runner,
    run_compared,
)
from planner_core.sim.mocker import (
    ROUTER_MODES,
    MockerEngine,
    MockerInputs,
    mocker_available,
    mocker_inputs,
    run_mocker_policy,
)
from planner_core.sim.replay import ReplayResult, Workload, compute_oracle, load_workload, run_policy
from planner_core.sim.report import format_table, plot_frontier

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "azure_llm_2023"
TRACES = {
    "code": SHARED / "AzureLLMInferenceTrace_code.csv",
    "conv": SHARED / "AzureLLMInferenceTrace_conv.csv",
    "mooncake": SHARED.parent / "mooncake_fast25" / "synthetic_trace.jsonl",
}
# A trace's own load scales, where --scales' defaults do not fit it: the Mooncake synthetic trace
# (FAST'25, 3,993 requests over 17.6 min, 40 % of prompts beyond the profile) at x8 keeps about
# 20-40 prefill engines busy, as the Azure traces at x10-x30 do.
OWN_SCALES = {"mooncake": "8"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("ours", "mocker"), default="ours")
    parser.add_argument("--scales", default=None, help="default 10,30 (ours), 10 (mocker)")
    parser.add_argument("--traces", default="code,conv")
    parser.add_argument("--policies", default=None)
    parser.add_argument("--predictor", default="auto", help="predictor of the default policy")
    parser.add_argument("--resolutions", default="1,5,15", help="arrival resolutions (s) of the default policy")
    parser.add_argument(
        "--max-num-seqs", type=int, default=None, help="engines' running-sequence cap (default: the planner's, 256)"
    )
    parser.add_argument("--duration-s", type=float, default=None, help="replay only the first N seconds")
    parser.add_argument(
        "--copy-jitter-s",
        type=float,
        default=None,
        help="load scaling's copies arrive within this many seconds (default: the interval, 60; 1 = burst stress)",
    )
    parser.add_argument("--speed-up", type=float, default=1.0, help="time compression instead of (or with) copies")
    parser.add_argument(
        "--mocker-router", choices=ROUTER_MODES, default=MockerEngine.router_mode, help="the mocker's router"
    )
    parser.add_argument(
        "--tuned-grid",
        default=None,
        help="dynamo-tuned's grid as PREFILL_FACTORS/DECODE_FACTORS, e.g. 0.5,0.7,1/0.6,1 "
        f"(default {','.join(map(str, TUNED_PREFILL_FACTORS))}/{','.join(map(str, TUNED_DECODE_FACTORS))}; "
        "a smaller grid where each replay takes minutes, as on the mocker)",
    )
    parser.add_argument("--frontier", action="store_true", help="compare at matched attainment (see above)")
    parser.add_argument("--plot-dir", type=Path, default=None, help="--frontier: write the frontier plots here")
    args = parser.parse_args()
    tuned_grid: TunedGrid = (TUNED_PREFILL_FACTORS, TUNED_DECODE_FACTORS)
    if args.tuned_grid is not None:
        try:
            prefill_part, decode_part = args.tuned_grid.split("/")
            tuned_grid = (
                tuple(float(x) for x in prefill_part.split(",")),
                tuple(float(x) for x in decode_part.split(",")),
            )
        except ValueError:
            parser.error(f"--tuned-grid: {args.tuned_grid!r} is not PREFILL_FACTORS/DECODE_FACTORS; e.g. 0.5,1/0.6,1")
    mocker = args.engine == "mocker"
    if mocker and not mocker_available():
        parser.error("--engine mocker: install the optional extra: pip install -e '.[mocker]'")
    args.scales_given = args.scales is not None
    args.scales = args.scales or ("10" if mocker or args.frontier else "10,30")
    if args.frontier:
        args.resolutions = ""
    if args.policies is None:
        if args.frontier:
            # not `dynamo` (ARIMA refitted every interval: 1-7 minutes a trace on the shared machine,
            # and a point far below the others: README); add it with --policies
            args.policies = "default,dynamo-tuned,static-best," + (
                "dynamo-1.6-sla,dynamo-1.6-throughput,oracle" if mocker else "static,oracle"
            )
        else:
            args.policies = (
                "default,dynamo,dynamo-1.6-sla,dynamo-1.6-throughput,oracle"
                if mocker
                else "default,clairvoyant,dynamo,static,oracle"
            )
    bench_t0 = time.perf_counter()

    config = make_config(
        adjustment_interval_s=60,
        max_gpu_budget=256,
        load_predictor=args.predictor,
        **({} if args.max_num_seqs is None else {"max_num_seqs": args.max_num_seqs}),
    )
    profile = load_profile(config.profile_dir())
    summary = []
    for trace in args.traces.split(","):
        if trace not in TRACES:
            parser.error(f"--traces: unknown trace {trace!r}; choose from {', '.join(TRACES)}")
        scales = args.scales if args.scales_given or trace not in OWN_SCALES else OWN_SCALES[trace]
        for scale in (float(s) for s in scales.split(",")):
            t0 = time.perf_counter()
            jitter_s = args.copy_jitter_s if args.copy_jitter_s is not None else float(config.adjustment_interval_s)
            workload = load_workload(
                TRACES[trace],
                load_scale=scale,
                seed=0,
                duration_s=args.duration_s,
                copy_jitter_s=jitter_s,
                speed_up=args.speed_up,
            )
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            plan = compute_oracle(workload, profile, config)
            oracle_s = time.perf_counter() - t0
            policies = args.policies.split(",")
            t0 = time.perf_counter()
            frontier = None
            if mocker:
                engine = MockerEngine(
                    max_num_seqs=config.max_num_seqs,
                    max_num_batched_tokens=config.max_num_batched_tokens,
                    router_mode=args.mocker_router,
                )
                with mocker_inputs(workload, profile, engine) as inputs:
                    on_mocker = partial(mocker_run, workload, plan, profile, inputs)
                    results, swept = compare(on_mocker, policies, config, plan, args.frontier, tuned_grid)
            else:
                results, swept = compare(
                    replay_runner(workload, profile, plan), policies, config, plan, args.frontier, tuned_grid
                )
            runs_s = time.perf_counter() - t0
            by = {r.policy: r for r in results}
            engine_note = f", {'mocker' if mocker else 'our'} engine, max_num_seqs {config.max_num_seqs}"
            if mocker:
                engine_note += f", router {args.mocker_router}"
            print(f"\n== {trace} x{scale:g} (copies within {jitter_s:g} s, speed-up {args.speed_up:g}): "
                  f"{len(workload):,} requests "
                  f"(trace load {load_s:.1f} s, oracle {oracle_s:.1f} s{engine_note})")
            print(format_table(results))
            if args.frontier:
                t0 = time.perf_counter()
                frontier = frontier_report(results, swept, workload, profile, config, plan)
                bound_s = time.perf_counter() - t0
                print(frontier.table())
                runs = sum(len(v) for v in swept.values()) + sum(p not in swept for p in policies)
                print(f"wall: {runs} replays in {runs_s:.1f} s, oracle {oracle_s:.1f} s, lower bound {bound_s:.1f} s")
                if args.plot_dir is not None:
                    args.plot_dir.mkdir(parents=True, exist_ok=True)
                    engine_name = "mocker" if mocker else "our"
                    path = args.plot_dir / f"frontier-{trace}-x{scale:g}{'-mocker' if mocker else ''}.png"
                    plot_frontier(frontier, path, f"azure {trace} x{scale:g}, {engine_name} engine: "
                                  "SLA attainment against GPU-hours")
                    print(f"plot: {path}")
            # What reaching 99 % of all requests costs any policy at all (docs/oracle.md).
            bound_gpu_h = (
                frontier.lower_bound_gpu_hours
                if frontier is not None and frontier.lower_bound_gpu_hours is not None
                else lower_bound_gpu_hours(workload, profile, config, plan)
            )
            print(f"any policy with >= {config.sla_attainment:.0%} SLA met needs >= {bound_gpu_h:.2f} GPU-h "
                  f"(prefill lower bound + {config.min_endpoint} decode engine per interval)")
            row = {"trace": trace, "load_scale": scale, "copy_jitter_s": jitter_s, "speed_up": args.speed_up,
                   "requests": len(workload),
                   "results": [r.summary() for r in results], "oracle_s": oracle_s,
                   "lower_bound_gpu_hours_at_99pct": bound_gpu_h}
            row["engine"] = args.engine
            if mocker:
                row["mocker_router"] = args.mocker_router
            row["replays_s"] = runs_s
            if frontier is not None:
                row["frontier"] = frontier.summary()
            if "default" in by and not args.frontier:
                d = by["default"]
                # issue 15: over the feasible requests, 99 %, or within 1 point of clairvoyant
                # where clairvoyant itself is below 99 %
                floor = 0.99
                if "clairvoyant" in by:
                    floor = min(floor, by["clairvoyant"].feasible_sla_attainment - 0.01)
                checks = {f"feasible>={floor:.2%}": d.feasible_sla_attainment >= floor}
                if mocker:
                    row["targets"] = checks
                    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in checks.items()))
            if "default" in by and not mocker and not args.frontier:
                checks["gpu_hours<=1.15x_oracle"] = d.gpu_hours <= 1.15 * d.oracle_gpu_hours
                if "dynamo" in by:
                    checks["beats_dynamo_attainment"] = d.sla_attainment > by["dynamo"].sla_attainment
                    checks["gpu_hours<=dynamo"] = d.gpu_hours <= by["dynamo"].gpu_hours
                    # below the bound, 99 % at dynamo's GPU-hours is impossible for any policy
                    checks["dynamo_gpu_hours>=lower_bound (else infeasible)"] = (
                        by["dynamo"].gpu_hours >= bound_gpu_h
                    )
                if trace == "conv" and scale == 30:
                    checks["wall<60s"] = d.wall_s + load_s < 60
                row["targets"] = checks
                print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in checks.items()))
            if args.resolutions and not mocker:
                print("default policy by arrival resolution (the request counter's step):")
                print(f"{'resolution s':>12}  {'SLA met':>8}  {'GPU-h':>7}  {'x oracle':>8}")
                table = []
                for step in (float(r) for r in args.resolutions.split(",")):
                    at = config.model_copy(update={"arrival_resolution_s": step})
                    r = run_policy(workload, at, "default", oracle_plan=plan, profile=profile)
                    print(f"{step:>12g}  {r.sla_attainment:>8.2%}  {r.gpu_hours:>7.2f}  "
                          f"{r.gpu_hours / r.oracle_gpu_hours:>8.2f}")
                    table.append({"arrival_resolution_s": step, "sla_attainment": r.sla_attainment,
                                  "gpu_hours": r.gpu_hours})
                row["by_arrival_resolution"] = table
            summary.append(row)
    wall_s = time.perf_counter() - bench_t0
    print(f"\nbenchmark wall time {wall_s:.0f} s")
    print(
        json.dumps({"benchmark": "replay", "engine": args.engine, "wall_s": wall_s, "runs": summary}, default=str),
        flush=True,
    )


def mocker_run(
    workload: Workload,
    plan: list[Replicas],
    profile: Profile,
    inputs: MockerInputs,
    config: PlannerConfig,
    policy: str,
    fixed: Replicas | None,
) -> ReplayResult:
    return run_mocker_policy(workload, config, policy, oracle_plan=plan, profile=profile, inputs=inputs, fixed=fixed)


def compare(
    run: Runner,
    policies: list[str],
    config: PlannerConfig,
    plan: list[Replicas],
    frontier: bool,
    tuned_grid: TunedGrid = (TUNED_PREFILL_FACTORS, TUNED_DECODE_FACTORS),
) -> tuple[list[ReplayResult], dict[str, list[ReplayResult]]]:
    """Every policy's row (the hindsight baselines picked from their sweeps) and the sweeps."""
    if not frontier and not set(policies) & set(HINDSIGHT):
        return [run(config, p, None) for p in policies], {}
    return run_compared(
        policies, lambda p: run(config, p, None), run, config, plan, frontier=frontier, tuned_grid=tuned_grid
    )


if __name__ == "__main__":
    main()
