"""`sla-planner replay`: closed-loop replay of a real trace on the simulated cluster."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

from planner_core.config import BUNDLED_TRACE, PlannerConfig, add_config_arguments, config_from_args
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim.baselines import frontier_report, run_compared
from planner_core.sim.mocker import DYNAMO16_POLICIES, MOCKER_POLICIES, ROUTER_MODES, MockerEngine
from planner_core.sim.replay import POLICIES, ReplayResult, compute_oracle, load_workload, run_policy

DYNAMO16 = "dynamo-1.6"  # shorthand for both of Dynamo 1.6.1's optimization targets

# With no arguments the bundled Azure conversation trace (about 5.5 requests/s) is scaled so
# that its busiest minute needs several GPUs per pool.
DEFAULT_LOAD_SCALE = 10.0
# The replay's budget is generous so that the comparison measures the policies, not the cap.
# The replay's own defaults (under flags and PLANNER_* variables): a one-minute interval resolves
# the trace's bursts, and the predictor is ours.
REPLAY_DEFAULTS = {"adjustment_interval_s": 60, "max_gpu_budget": 64, "load_predictor": "auto"}
REPORT_INDEX = "index.html"  # what planner_core.sim.report.write_report writes last

REPLAY_FLAGS = (
    "profile_results_dir",
    "adjustment_interval_s",
    "ttft_ms",
    "itl_ms",
    "max_gpu_budget",
    "min_endpoint",
    "prefill_engine_num_gpu",
    "decode_engine_num_gpu",
    "load_predictor",
    "no_correction",
    "scale_down_stabilization_s",
    "scale_down_max_percent",
    "queue_check_interval_s",
    "idle_cooldown_s",
    "sla_attainment",
    "decode_target_utilization",
    "apply_prefill_correction",
    "model_name",
    "namespace",
    "load_predictor_log1p",
    "arrival_resolution_s",
    "while_rolling_out",
    "max_num_seqs",
    "max_num_batched_tokens",
)
# Settings a replay takes from PLANNER_* variables: all that shape the planner's decisions, not
# those about the real cluster and its metrics (a bad metrics port must not fail a replay, and
# PLANNER_NO_OPERATION would leave the simulated cluster unscaled).
REPLAY_IGNORED_ENV_FIELDS = (
    "environment",
    "no_operation",
    "log_dir",
    "metric_pulling_prometheus_endpoint",
    "metric_reporting_prometheus_port",
    # dynamo-tuned's knobs: the replay picks them in hindsight from a grid (docs/baselines.md)
    "prefill_throughput_factor",
    "decode_target_factor",
)
REPLAY_ENV_FIELDS = tuple(f for f in PlannerConfig.model_fields if f not in REPLAY_IGNORED_ENV_FIELDS)
# A replay holds every request in memory (about 100 bytes each, several arrays).
MAX_REPLAY_REQUESTS = 20_000_000


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a trace through the planner on a simulated cluster and score it",
        description=(
            "Closed-loop replay: every interval the production planning cycle observes the simulated "
            "frontend, predicts, sizes, scales the simulated cluster and writes to the store. With no "
            "arguments: the bundled Azure 2023 conversation trace at load scale 10, the bundled H200 "
            "profile, SQLite planner.db."
        ),
    )
    parser.add_argument("--trace", type=Path, default=None, help="Azure CSV, Mooncake JSONL or ServeGen curve")
    parser.add_argument(
        "--policy",
        # not `policy`: that is the planner config's field (default/dynamo sizing), which
        # config_from_args would read from the namespace
        dest="replay_policy",
        choices=(*POLICIES, "static-best", DYNAMO16, *DYNAMO16_POLICIES),
        default=None,
        help=f"planner policy to replay (default: default; {DYNAMO16}: Dynamo 1.6.1's own planner, both targets; "
        "--engine mocker only; dynamo-tuned and static-best are picked in hindsight for --sla-attainment: "
        "docs/baselines.md)",
    )
    parser.add_argument("--compare", default=None, help="comma-separated policies to run on the same trace")
    parser.add_argument(
        "--engine",
        choices=("ours", "mocker"),
        default="ours",
        help="simulator to replay on: ours, or Dynamo 1.6.1's mocker (pip install -e '.[mocker]'; docs/mocker.md)",
    )
    parser.add_argument(
        "--mocker-router",
        choices=ROUTER_MODES,
        default=MockerEngine.router_mode,
        help="--engine mocker: its router: kv_router (Dynamo's KV router, what its router guide deploys disaggregated "
        "serving with) or round_robin (the frontend's bare default); docs/mocker.md",
    )
    parser.add_argument(
        "--kv-admission",
        choices=("paged", "reserve"),
        default="paged",
        help="our engine's decode KV: paged (vLLM's: KV grows with the tokens, preemption when full) or "
        "reserve (each request reserves ISL + OSL at admission, never preempted); docs/simulator.md",
    )
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="also sweep the knob of default (--sla-attainment), dynamo-tuned and static-best among the compared "
        "policies, print their GPU-hours at matched attainment and plot attainment against GPU-hours "
        "(frontier.png in --report-dir)",
    )
    parser.add_argument("--startup-s", type=float, default=60.0, help="seconds before a new worker is ready")
    parser.add_argument(
        "--load-scale",
        type=float,
        default=None,
        help="multiply the arrival rate by copying each request, as independent users would send it "
        "(shape kept; a ServeGen rate curve's rate is multiplied before its Poisson draw; "
        "default 10 on the bundled trace, else 1)",
    )
    parser.add_argument(
        "--copy-jitter-s",
        type=float,
        default=None,
        help="--load-scale's copies of a request arrive at random within this many seconds after it "
        "(default: the adjustment interval; 1 = the burst stress test, every copy within a second)",
    )
    parser.add_argument(
        "--speed-up",
        type=float,
        default=1.0,
        help="time compression: divide every inter-arrival time by this (another way to raise the load; "
        "--duration-s counts replayed seconds)",
    )
    parser.add_argument("--duration-s", type=float, default=None, help="replay only the first N seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--db-url", default=None, help="store URL (default: env PLANNER_DB_URL or sqlite:///planner.db)"
    )
    parser.add_argument("--no-store", action="store_true", help="do not write cycles to a database")
    parser.add_argument("--report-dir", type=Path, default=None, help="write PNG plots and index.html here")
    parser.add_argument("--overwrite-report", action="store_true", help="replace an earlier report in --report-dir")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--frontend",
        choices=("direct", "exporter"),
        default="direct",
        help="direct: window values straight from the simulator; exporter: through the frontend exporter, "
        "a scrape every --arrival-resolution-s and the Prometheus source's queries (same decisions, slower)",
    )
    add_config_arguments(parser, only=REPLAY_FLAGS, defaults=REPLAY_DEFAULTS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from planner_core.commands import UsageError

    config = config_from_args(args, defaults=REPLAY_DEFAULTS, env_fields=REPLAY_ENV_FIELDS)
    if args.compare and args.replay_policy is not None:
        raise UsageError(
            f"--policy: {args.replay_policy} is not used with --compare; list it in --compare instead "
            f"(--compare {args.replay_policy},...)"
        )
    policies = [p.strip() for p in args.compare.split(",")] if args.compare else [args.replay_policy or "default"]
    policies = [q for p in policies for q in (DYNAMO16_POLICIES if p == DYNAMO16 else (p,))]
    known = (*(MOCKER_POLICIES if args.engine == "mocker" else POLICIES), "static-best")
    unknown = [p for p in policies if p not in known]
    if unknown:
        hint = " (Dynamo 1.6.1's planner runs on --engine mocker)" if set(unknown) <= set(DYNAMO16_POLICIES) else ""
        raise UsageError(f"--compare: unknown policy {', '.join(unknown)}{hint}; choose from {', '.join(known)}")
    if args.engine == "mocker":
        from planner_core.sim.mocker import INSTALL_HINT, mocker_available

        if not mocker_available():
            raise UsageError(f"--engine mocker: Dynamo's mocker is not installed; {INSTALL_HINT}")
    _check_numbers(args)
    if args.report_dir is not None:
        _check_report_dir(args.report_dir, args.overwrite_report)
    trace = args.trace or BUNDLED_TRACE
    load_scale = args.load_scale if args.load_scale is not None else (DEFAULT_LOAD_SCALE if args.trace is None else 1.0)
    copy_jitter_s = args.copy_jitter_s if args.copy_jitter_s is not None else float(config.adjustment_interval_s)
    workload = load_workload(
        trace,
        load_scale=load_scale,
        seed=args.seed,
        duration_s=args.duration_s,
        max_requests=MAX_REPLAY_REQUESTS,
        copy_jitter_s=copy_jitter_s,
        speed_up=args.speed_up,
    )
    if len(workload) == 0:
        raise UsageError(f"--trace {trace}: no requests to replay")
    profile = load_profile(config.profile_dir())

    store = None
    if not args.no_store:
        from planner_core.store import Store

        store = Store(args.db_url)
        _check_writable(store)

    print(
        f"replaying {len(workload):,} requests of {workload.name} over {workload.duration_s / 60:.1f} min "
        f"({_load_note(load_scale, copy_jitter_s, args.speed_up)}), interval {config.adjustment_interval_s} s, "
        f"start-up {args.startup_s:g} s",
        file=sys.stderr,
    )
    oracle_plan = compute_oracle(workload, profile, config)
    frontier = None
    with ExitStack() as stack:
        runner: Any = run_policy
        engine_kwargs: dict[str, Any] = {"frontend": args.frontend, "kv_admission": args.kv_admission}
        if args.engine == "mocker":
            from planner_core.sim.mocker import mocker_inputs, run_mocker_policy

            engine = MockerEngine(
                max_num_seqs=config.max_num_seqs,
                max_num_batched_tokens=config.max_num_batched_tokens,
                router_mode=args.mocker_router,
            )
            runner = partial(run_mocker_policy, inputs=stack.enter_context(mocker_inputs(workload, profile, engine)))
            engine_kwargs = {}

        def baseline_run(cfg: PlannerConfig, policy: str, fixed: Replicas | None) -> ReplayResult:
            """One replay of a baseline search: not stored, no progress bar."""
            return _run(
                runner,
                workload,
                cfg,
                policy,
                startup_s=args.startup_s,
                oracle_plan=oracle_plan,
                profile=profile,
                fixed=fixed,
                **engine_kwargs,
            )

        def run_one(policy: str) -> ReplayResult:
            bar = _ProgressBar(policy)
            result = _run(
                runner,
                workload,
                config,
                policy,
                startup_s=args.startup_s,
                store=store,
                oracle_plan=oracle_plan,
                profile=profile,
                progress=bar,
                **engine_kwargs,
            )
            bar.close()
            return result

        results, swept = run_compared(
            policies,
            run_one,
            baseline_run,
            config,
            oracle_plan,
            frontier=args.frontier,
            reuse_default=store is None,
            progress=lambda p: print(f"{p}: sweeping its knob (not stored)", file=sys.stderr),
        )
        if args.frontier:
            frontier = frontier_report(results, swept, workload, profile, config, oracle_plan)

    if args.report_dir is not None:
        from planner_core.sim.report import write_report

        index = write_report(
            results,
            args.report_dir,
            f"Replay of {workload.name} ({_load_note(load_scale, copy_jitter_s, args.speed_up)})",
            config.ttft_ms,
            config.itl_ms,
            frontier,
        )
        print(f"report: {index}", file=sys.stderr)
    if args.json:
        payload = [_clean(r.summary()) for r in results]
        if frontier is not None:
            print(json.dumps({"trace": workload.name, "results": payload, "frontier": frontier.summary()}))
        else:
            print(json.dumps(payload[0] if len(payload) == 1 else {"trace": workload.name, "results": payload}))
    else:
        from planner_core.sim.report import format_table

        print(format_table(results))
        if frontier is not None:
            print()
            print(frontier.table())
    return 0


def _run(runner: Any, *args: Any, **kwargs: Any) -> Any:
    """One replay on either engine; the mocker's missing pieces become a usage error."""
    from planner_core.commands import UsageError

    try:
        return runner(*args, **kwargs)
    except Exception as exc:
        if type(exc).__name__ == "MockerUnavailable":
            raise UsageError(str(exc)) from exc
        raise


def _check_numbers(args: argparse.Namespace) -> None:
    from planner_core.commands import UsageError

    if not (math.isfinite(args.startup_s) and args.startup_s >= 0):
        raise UsageError(
            f"--startup-s: must be a finite number of seconds >= 0, got {args.startup_s:g}; "
            "give how long a new worker takes to become ready, for example 60"
        )
    if args.load_scale is not None and not (math.isfinite(args.load_scale) and args.load_scale > 0):
        raise UsageError(f"--load-scale: must be a finite number > 0, got {args.load_scale:g}; for example 10")
    if args.copy_jitter_s is not None and not (math.isfinite(args.copy_jitter_s) and args.copy_jitter_s >= 0):
        raise UsageError(
            f"--copy-jitter-s: must be a finite number of seconds >= 0, got {args.copy_jitter_s:g}; for example 60 "
            "(the adjustment interval) or 1 (the burst stress test)"
        )
    if not (math.isfinite(args.speed_up) and args.speed_up > 0):
        raise UsageError(f"--speed-up: must be a finite number > 0, got {args.speed_up:g}; for example 10")
    if args.duration_s is not None and not (math.isfinite(args.duration_s) and args.duration_s > 0):
        raise UsageError(
            f"--duration-s: must be a finite number of seconds > 0, got {args.duration_s:g}; for example 3600"
        )


def _load_note(load_scale: float, copy_jitter_s: float, speed_up: float) -> str:
    """How the trace's load was raised, for the header and the report title."""
    parts = [f"load scale {load_scale:g}"]
    if load_scale != 1.0:
        parts[0] += f", copies within {copy_jitter_s:g} s"
    if speed_up != 1.0:
        parts.append(f"speed-up {speed_up:g}")
    return "; ".join(parts)


def _check_writable(store: Any) -> None:
    """Fail now, not at the first cycle, when the database refuses writes (a read-only file or
    role): a statement that would write, matching no row, rolled back."""
    from sqlalchemy import false, update

    from planner_core.store.lock import CL

    with store.engine.connect() as conn, conn.begin() as tx:
        conn.execute(update(CL).where(false()).values(token=CL.c.token))
        tx.rollback()


def _check_report_dir(report_dir: Path, overwrite: bool) -> None:
    """Fail before the replay runs, not after: the directory must be creatable and writable and
    must not hold an earlier report (unless --overwrite-report)."""
    from planner_core.commands import UsageError

    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir: {report_dir} is a file, not a directory; choose a directory")
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"--report-dir: cannot create {report_dir} ({exc.strerror}); choose a writable place"
        ) from None
    if not os.access(report_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--report-dir: {report_dir} is not writable; choose a writable directory")
    if (report_dir / REPORT_INDEX).exists() and not overwrite:
        raise UsageError(
            f"--report-dir: {report_dir} already holds a report; choose another directory or pass --overwrite-report"
        )


def _clean(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}


class _ProgressBar:
    """A tqdm bar over intervals, on stderr, shown only on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"{self.label:>8s}", unit="interval", file=sys.stderr, disable=None)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
