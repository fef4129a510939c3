"""Baselines chosen in hindsight, and each policy's cost-attainment frontier (docs/baselines.md).

Everything here runs replays through a ``runner``: ``runner(config, policy, fixed) ->
ReplayResult``, one replay of the same workload on either engine (:func:`replay_runner` for
ours; ``functools.partial`` of :func:`planner_core.sim.mocker.run_mocker_policy` for the
mocker). The runs are not written to the store. Attainment is the feasible share throughout.

``dynamo-tuned``  Dynamo's arithmetic with the constant predictor, for every point of a small grid
    of its two knobs (``prefill_throughput_factor`` x ``decode_target_factor``); in hindsight the
    cheapest point that reaches the target attainment, else the one with the highest attainment.
``static-best``  the cheapest fixed prefill and decode counts that reach the target
    (:func:`~planner_core.sim.frontier.cheapest_staircase`, counts up to twice the oracle's peak).
Frontiers: our ``--sla-attainment`` swept, dynamo-tuned's grid, static-best at several targets
(every pair the searches tried is a point).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from planner_core.config import PlannerConfig
from planner_core.profiles import Profile
from planner_core.records import Replicas
from planner_core.sim.frontier import FrontierPoint, FrontierReport, cheapest_staircase
from planner_core.sim.oracle import prefill_lower_bound
from planner_core.sim.replay import ReplayResult, Workload, run_policy

# Baselines picked in hindsight by replaying many settings, and the policies with a knob to sweep.
HINDSIGHT = ("dynamo-tuned", "static-best")
KNOB_POLICIES = ("default", *HINDSIGHT)
# dynamo-tuned's grid: the share of the profiled prefill throughput sized for, and the share of
# the ITL SLA and of max_num_seqs decode is sized for.
TUNED_PREFILL_FACTORS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TUNED_DECODE_FACTORS = (1.0, 0.8, 0.6)
# our policy's one knob, swept for its frontier (the config's own value is added)
SLA_ATTAINMENT_SWEEP = (0.6, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
# targets static-best is searched at for its frontier (the config's sla_attainment is added); the
# low ones put the cheaper pairs that fail on the frontier, so a read between them is a step, not a bound
STATIC_TARGETS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
# static-best searches counts up to this multiple of the oracle's busiest interval
STATIC_SEARCH_HEADROOM = 2


# dynamo-tuned's grid: (prefill throughput factors, decode target factors)
TunedGrid = tuple[Sequence[float], Sequence[float]]
# One replay of the workload: (config, policy, the replicas `static` holds or None) -> result.
Runner = Callable[[PlannerConfig, str, Replicas | None], ReplayResult]


def replay_runner(
    workload: Workload,
    profile: Profile,
    oracle_plan: Sequence[Replicas],
    startup_s: float = 60.0,
    *,
    stop_failing_static: bool = False,
    **kwargs: Any,
) -> Runner:
    """A :class:`Runner` on our engine (``kwargs``: ``kv_admission``, ``frontend``).
    ``stop_failing_static``: a ``static`` replay stops once it can no longer reach the config's
    ``sla_attainment`` (:func:`run_policy`'s ``stop_below``); for a search at that one target
    that shows only the pair it picks (a stopped replay's numbers are partial)."""

    def run(config: PlannerConfig, policy: str, fixed: Replicas | None = None) -> ReplayResult:
        stop = config.sla_attainment if stop_failing_static and policy == "static" else None
        return run_policy(
            workload,
            config,
            policy,
            startup_s=startup_s,
            oracle_plan=oracle_plan,
            profile=profile,
            fixed=fixed,
            stop_below=stop,
            **kwargs,
        )

    return run


def point(result: ReplayResult) -> FrontierPoint:
    return FrontierPoint(result.setting or result.policy, result.gpu_hours, result.feasible_sla_attainment)


def pick_in_hindsight(results: Sequence[ReplayResult], target: float) -> ReplayResult:
    """The cheapest result whose feasible attainment reaches ``target``; if none does, the one
    with the highest attainment (the cheaper on a tie)."""
    if not results:
        raise ValueError("pick_in_hindsight: no results to pick from")
    reached = [r for r in results if r.feasible_sla_attainment >= target]
    if reached:
        return min(reached, key=lambda r: r.gpu_hours)
    return max(results, key=lambda r: (r.feasible_sla_attainment, -r.gpu_hours))


def tuned_setting(prefill_factor: float, decode_factor: float) -> str:
    return f"prefill x{prefill_factor:g}, decode x{decode_factor:g}"


def sweep_dynamo_tuned(
    runner: Runner,
    config: PlannerConfig,
    prefill_factors: Iterable[float] = TUNED_PREFILL_FACTORS,
    decode_factors: Iterable[float] = TUNED_DECODE_FACTORS,
) -> list[ReplayResult]:
    """dynamo-tuned at every grid point, each result's ``setting`` naming its point."""
    out = []
    for decode_factor in decode_factors:
        for prefill_factor in prefill_factors:
            at = config.model_copy(
                update={"prefill_throughput_factor": prefill_factor, "decode_target_factor": decode_factor}
            )
            result = runner(at, "dynamo-tuned", None)
            out.append(dataclasses.replace(result, setting=tuned_setting(prefill_factor, decode_factor)))
    return out


def dynamo_tuned(runner: Runner, config: PlannerConfig, target: float | None = None) -> ReplayResult:
    """dynamo-tuned at the grid point picked in hindsight for ``target`` (default: the config's
    ``sla_attainment``)."""
    grid = sweep_dynamo_tuned(runner, config)
    return pick_in_hindsight(grid, config.sla_attainment if target is None else target)


def sweep_default(
    runner: Runner, config: PlannerConfig, levels: Iterable[float] = SLA_ATTAINMENT_SWEEP
) -> list[ReplayResult]:
    """Our policy at every ``--sla-attainment`` level (and the config's own)."""
    out = []
    for level in sorted({*levels, config.sla_attainment}):
        result = runner(config.model_copy(update={"sla_attainment": level}), "default", None)
        out.append(dataclasses.replace(result, setting=f"sla_attainment {level:g}"))
    return out


class StaticSearch:
    """static-best: fixed replicas searched in hindsight, every pair replayed once."""

    def __init__(self, runner: Runner, config: PlannerConfig, oracle_plan: Sequence[Replicas]) -> None:
        self.runner = runner
        self.config = config
        peak_p = max((int(r.prefill or 0) for r in oracle_plan), default=1)
        peak_d = max((int(r.decode or 0) for r in oracle_plan), default=1)
        floor = max(config.min_endpoint, 1)
        self.guess = (max(peak_p, floor), max(peak_d, floor))
        self.prefill_range = (floor, max(STATIC_SEARCH_HEADROOM * peak_p, floor + 1))
        self.decode_range = (floor, max(STATIC_SEARCH_HEADROOM * peak_d, floor + 1))
        self.tried: dict[tuple[int, int], ReplayResult] = {}

    def attainment(self, prefill: int, decode: int) -> float:
        if (prefill, decode) not in self.tried:
            result = self.runner(self.config, "static", Replicas(prefill, decode))
            self.tried[(prefill, decode)] = dataclasses.replace(
                result, policy="static-best", setting=f"{prefill}P+{decode}D"
            )
        return self.tried[(prefill, decode)].feasible_sla_attainment

    def cost(self, prefill: int, decode: int) -> float:
        return float(prefill * self.config.prefill_engine_num_gpu + decode * self.config.decode_engine_num_gpu)

    def best(self, target: float) -> ReplayResult:
        """The cheapest pair reaching ``target``; if even the largest searched does not, that one."""
        found = cheapest_staircase(
            self.attainment, target, self.prefill_range, self.decode_range, cost=self.cost, guess=self.guess
        )
        if found.prefill is None or found.decode is None:
            return self.tried[(self.prefill_range[1], self.decode_range[1])]
        return self.tried[(found.prefill, found.decode)]

    def tried_for(self, *targets: float) -> list[ReplayResult]:
        """Every pair tried while searching each target (the cheapest reaching a target is among them)."""
        for target in targets:
            self.best(target)
        return list(self.tried.values())


def static_best(
    runner: Runner, config: PlannerConfig, oracle_plan: Sequence[Replicas], target: float | None = None
) -> ReplayResult:
    """static-best for ``target`` (default: the config's ``sla_attainment``)."""
    return StaticSearch(runner, config, oracle_plan).best(config.sla_attainment if target is None else target)


def lower_bound_gpu_hours(
    workload: Workload, profile: Profile, config: PlannerConfig, oracle_plan: Sequence[Replicas]
) -> float:
    """GPU-hours below which no policy setting replicas per interval meets the TTFT SLA for
    ``sla_attainment`` of all requests (docs/oracle.md): the prefill lower bound plus
    ``min_endpoint`` decode engines per interval."""
    prefill = prefill_lower_bound(
        profile,
        workload.arrival_s,
        workload.isl,
        config.adjustment_interval_s,
        config.ttft_ms,
        list(oracle_plan),
        config.sla_attainment,
        max_num_batched_tokens=config.max_num_batched_tokens,
    )
    engine_intervals = (
        prefill * config.prefill_engine_num_gpu
        + len(oracle_plan) * max(config.min_endpoint, 1) * config.decode_engine_num_gpu
    )
    return engine_intervals * config.adjustment_interval_s / 3600.0


Progress = Callable[[str], None]


def frontiers(
    runner: Runner,
    config: PlannerConfig,
    oracle_plan: Sequence[Replicas],
    policies: Sequence[str] = ("default", "dynamo-tuned", "static-best"),
    progress: Progress | None = None,
    tuned_grid: TunedGrid = (TUNED_PREFILL_FACTORS, TUNED_DECODE_FACTORS),
) -> dict[str, list[ReplayResult]]:
    """Every run of each policy's knob sweep, by policy (static-best: every pair tried while
    searching each of :data:`STATIC_TARGETS`)."""
    out: dict[str, list[ReplayResult]] = {}
    for policy in policies:
        if progress:
            progress(policy)
        if policy == "default":
            out[policy] = sweep_default(runner, config)
        elif policy == "dynamo-tuned":
            out[policy] = sweep_dynamo_tuned(runner, config, *tuned_grid)
        elif policy == "static-best":
            targets = sorted({*STATIC_TARGETS, config.sla_attainment})
            out[policy] = StaticSearch(runner, config, oracle_plan).tried_for(*targets)
        else:
            raise ValueError(f"frontier: {policy!r} has no knob to sweep; choose default, dynamo-tuned or static-best")
    return out


def run_compared(
    policies: Sequence[str],
    run_one: Callable[[str], ReplayResult],
    runner: Runner,
    config: PlannerConfig,
    oracle_plan: Sequence[Replicas],
    *,
    frontier: bool = False,
    reuse_default: bool = True,
    progress: Progress | None = None,
    tuned_grid: TunedGrid = (TUNED_PREFILL_FACTORS, TUNED_DECODE_FACTORS),
) -> tuple[list[ReplayResult], dict[str, list[ReplayResult]]]:
    """Every policy's result (``run_one`` for the plain ones; the hindsight baselines picked from
    their sweeps for ``config.sla_attainment``) and, by policy, the sweeps that ran: with
    ``frontier`` every knob policy compared is swept. ``reuse_default``: the sweep's run at the
    config's own level is the ``default`` row (the same replay; not when the row must be stored)."""
    swept: dict[str, list[ReplayResult]] = {}
    if frontier:
        swept = frontiers(
            runner, config, oracle_plan, [p for p in KNOB_POLICIES if p in policies], progress, tuned_grid
        )
    results = []
    for policy in policies:
        if policy in HINDSIGHT:
            if policy not in swept:
                if progress:
                    progress(policy)
                swept[policy] = (
                    sweep_dynamo_tuned(runner, config, *tuned_grid)
                    if policy == "dynamo-tuned"
                    else StaticSearch(runner, config, oracle_plan).tried_for(config.sla_attainment)
                )
            results.append(pick_in_hindsight(swept[policy], config.sla_attainment))
        elif policy == "default" and reuse_default and "default" in swept:
            own = f"sla_attainment {config.sla_attainment:g}"
            results.append(dataclasses.replace(next(r for r in swept["default"] if r.setting == own), setting=None))
        else:
            results.append(run_one(policy))
    return results, swept


def frontier_report(
    results: Sequence[ReplayResult],
    swept: dict[str, list[ReplayResult]],
    workload: Workload,
    profile: Profile,
    config: PlannerConfig,
    oracle_plan: Sequence[Replicas],
) -> FrontierReport:
    """The frontier of every swept policy, the other compared policies as single points, the
    oracle, the lower bound, and the targets: the config's ``sla_attainment`` and what
    ``default`` reached."""
    by_policy = {r.policy: r for r in results}
    targets = [config.sla_attainment]
    if "default" in by_policy and by_policy["default"].feasible_sla_attainment != config.sla_attainment:
        targets.append(by_policy["default"].feasible_sla_attainment)
    oracle = by_policy.get("oracle")
    return FrontierReport(
        points={p: [point(r) for r in runs] for p, runs in swept.items()},
        singles=[point(r) for r in results if r.policy not in swept and r.policy != "oracle"],
        oracle=None if oracle is None else FrontierPoint("oracle", oracle.gpu_hours, oracle.feasible_sla_attainment),
        lower_bound_gpu_hours=lower_bound_gpu_hours(workload, profile, config, oracle_plan),
        lower_bound_attainment=config.sla_attainment,
        targets=targets,
    )


__all__ = [
    "HINDSIGHT",
    "KNOB_POLICIES",
    "Runner",
    "StaticSearch",
    "dynamo_tuned",
    "frontier_report",
    "frontiers",
    "lower_bound_gpu_hours",
    "pick_in_hindsight",
    "replay_runner",
    "run_compared",
    "static_best",
    "sweep_default",
    "sweep_dynamo_tuned",
]
