"""Sizing policies as strategies: how each policy sizes prefill, sizes decode and fits the GPU budget.

:func:`planner_core.sizing.size` asks the configured policy (:func:`policy_for`) for each pool's
plan; :func:`planner_core.sizing.fit_budget` asks it for its budget rule. Everything here is
pure arithmetic over the profile.

:class:`DynamoPolicy`
    Dynamo's arithmetic (2025 planner), reproduced number for number: prefill sized to the
    mean token rate at the profiled throughput times ``min(1, prefill_correction)`` (a TTFT
    overshoot never adds replicas), decode sized at the best throughput of Dynamo's 100x100
    cubic grid whose ITL meets ``itl / decode_correction``, and Dynamo's proportional budget
    rule with ``round`` (which can overshoot the budget by a GPU or two: flagged as
    ``budget_exceeded`` on the decision, never silently). No scale-down stabilisation, and an
    idle interval holds (Dynamo skips cycles whose metrics are NaN).
:class:`DynamoTunedPolicy`
    Dynamo's arithmetic as a careful user would run it (``docs/baselines.md``): prefill sized
    for ``prefill_throughput_factor`` of the profiled throughput, decode for
    ``decode_target_factor`` of the ITL SLA and, unlike Dynamo, with no engine planned above
    that share of ``max_num_seqs`` running sequences. Everything else is Dynamo's.
:class:`DefaultPolicy`
    Ours. The correction factors apply in both directions (clamped to a sane range so one
    noisy interval cannot multiply a pool tenfold), prefill is sized by queueing (and the
    recent burst patterns) for the TTFT tail of prompts that can meet it (prompts too long to
    meet the TTFT SLA set no target but count in the busy time), at the throughput of full
    batched passes (:func:`prefill_service_s`; :mod:`planner_core.feasibility`), decode uses :class:`DecodeSurface`
    (exact at the measured points, monotone where they are) at the busiest span of the forecast
    with no engine above ``max_num_seqs`` running sequences, and the
    budget rule never exceeds the budget while keeping ``min_endpoint`` replicas of every
    planned pool.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from planner_core.burst import servers_for_bursts
from planner_core.config import PlannerConfig, Policy
from planner_core.feasibility import FeasibleLoad
from planner_core.profiles import OperatingPoint, Profile
from planner_core.queueing import mean_wait_s, servers_for_wait_tail
from planner_core.records import Corrections, LoadForecast, Observation, is_missing
from planner_core.stabilizer import Stabilizer

# Our policy trusts a correction factor only within this range: beyond it the mismatch is
# more likely a measurement artefact (a cold cache, a queue) than a property of the engine.
CORRECTION_RANGE = (0.25, 4.0)
# A burst pattern with fewer requests than this share of the planned count says little about
# the planned load's shape (five requests in one second, scaled to five hundred, is not a forecast).
BURST_MIN_SHARE = 0.25
NOTHING_INFEASIBLE = FeasibleLoad(math.inf, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SizingInputs:
    """What both pools are sized from (the forecast, cleaned, and the corrections applied)."""

    forecast: LoadForecast
    profile: Profile
    config: PlannerConfig
    num_req: float  # the mean forecast, >= 0
    planned_num_req: float  # what the pools are sized for (the upper quantile for ours)
    isl: float
    osl: float
    prefill_correction: float  # applied
    decode_correction: float  # applied
    # prompts too long for the TTFT SLA (the default policy sets them no TTFT target)
    feasible: FeasibleLoad = NOTHING_INFEASIBLE
    current_decode: int | None = None  # decode replicas running when the load was observed

    @property
    def interval_s(self) -> float:
        return float(self.config.adjustment_interval_s)


@dataclass
class PoolPlan:
    """One pool's unconstrained replica count and the numbers behind it."""

    replicas: int
    values: dict[str, Any]  # Decision fields
    details: dict[str, Any] = field(default_factory=dict)  # Decision.details entries
    reasons: list[str] = field(default_factory=list)


class SizingPolicy(Protocol):
    name: Policy

    def applied_corrections(self, corrections: Corrections, config: PlannerConfig) -> tuple[float, float]:
        """The factors the policy multiplies by (prefill demand, decode ITL divisor)."""
        ...

    def expected_ttft_ms(self, observation: Observation, profile: Profile, num_req: float, isl: float) -> float:
        """The TTFT the profile predicts for the observed interval (the prefill correction's denominator)."""
        ...

    def expected_itl_ms(self, profile: Profile, concurrency: float, context_length: float) -> float: ...

    def planned_num_req(self, forecast: LoadForecast, num_req: float, config: PlannerConfig) -> float: ...

    def size_prefill(self, inputs: SizingInputs) -> PoolPlan: ...

    def size_decode(self, inputs: SizingInputs) -> PoolPlan: ...

    def budget_rule(
        self, prefill: int | None, decode: int | None, scale: float, gp: int, gd: int, budget: int, floor: int
    ) -> tuple[int | None, int | None]:
        """Replicas within ``budget`` GPUs (``scale`` = budget / GPUs wanted < 1)."""
        ...

    def stabilizer(self, config: PlannerConfig) -> Stabilizer | None: ...

    def idle_cooldown_s(self, config: PlannerConfig) -> float: ...

    def scale_down_max_percent(self, config: PlannerConfig) -> float | None:
        """The per-cycle scale-down bound (:func:`planner_core.safety.bound_scale_down`); None = none."""
        ...

    def queue_check_interval_s(self, config: PlannerConfig) -> float:
        """Seconds between queue checks between cycles (:mod:`planner_core.surge`); 0 = none."""
        ...


def _finite_positive(value: float) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _usable(corrections: Corrections, config: PlannerConfig) -> tuple[float, float]:
    """The observed factors, 1.0 where one is not a finite positive number or corrections are off."""
    if config.no_correction:
        return 1.0, 1.0
    prefill = corrections.prefill if _finite_positive(corrections.prefill) else 1.0
    decode = corrections.decode if _finite_positive(corrections.decode) else 1.0
    return prefill, decode


def ceil_replicas(demand: float, thpt_per_gpu: float, engine_num_gpu: int) -> int:
    """Engines for ``demand`` tokens/s at ``thpt_per_gpu`` tokens/s per GPU."""
    if demand <= 0:
        return 0
    if thpt_per_gpu <= 0:
        raise ValueError("profiled throughput per GPU must be positive")
    return math.ceil(demand / thpt_per_gpu / engine_num_gpu)


def _decode_plan(inputs: SizingInputs, point: OperatingPoint, itl_target: float, demand: float) -> PoolPlan:
    """The decode pool at ``point`` for ``demand`` tokens/s (shared by both policies)."""
    config = inputs.config
    context = inputs.isl + inputs.osl / 2
    replicas = ceil_replicas(demand, point.thpt_per_gpu, config.decode_engine_num_gpu)
    reasons = [
        f"decode {demand:,.0f} tok/s / {point.thpt_per_gpu:,.0f} tok/s/GPU at ITL<={itl_target:.1f} ms -> {replicas}"
    ]
    if not point.meets_target:
        reasons.append(
            f"ITL target {itl_target:.1f} ms is below every profiled ITL at context {context:.0f} "
            f"(lightest point {point.itl_ms:.1f} ms): the profile cannot meet this SLA"
        )
    values = dict(
        decode_context_length=context,
        decode_itl_target_ms=itl_target,
        decode_thpt_per_gpu=point.thpt_per_gpu,
        decode_itl_ms_at_operating_point=point.itl_ms,
        decode_kv_usage_at_operating_point=point.kv_usage,
        decode_sla_reachable=point.meets_target,
        decode_demand_tokens_per_s=demand,
    )
    return PoolPlan(replicas, values, reasons=reasons)


class DynamoPolicy:
    """Dynamo's 2025 planner arithmetic (see the module docstring)."""

    name = Policy.DYNAMO

    def applied_corrections(self, corrections: Corrections, config: PlannerConfig) -> tuple[float, float]:
        prefill, decode = _usable(corrections, config)
        return min(1.0, prefill), decode

    def expected_ttft_ms(self, observation: Observation, profile: Profile, num_req: float, isl: float) -> float:
        return profile.prefill.dynamo.ttft_ms(isl)

    def expected_itl_ms(self, profile: Profile, concurrency: float, context_length: float) -> float:
        return profile.decode.dynamo_grid.itl_ms(concurrency, context_length)

    def planned_num_req(self, forecast: LoadForecast, num_req: float, config: PlannerConfig) -> float:
        return num_req

    def size_prefill(self, inputs: SizingInputs) -> PoolPlan:
        config, isl = inputs.config, inputs.isl
        curves = inputs.profile.prefill.dynamo
        thpt = curves.thpt_per_gpu(isl)
        demand = inputs.num_req * isl / inputs.interval_s * inputs.prefill_correction
        replicas = ceil_replicas(demand, thpt, config.prefill_engine_num_gpu)
        values = dict(
            prefill_demand_tokens_per_s=demand, prefill_thpt_per_gpu=thpt, prefill_ttft_ms_profile=curves.ttft_ms(isl)
        )
        reason = f"prefill {demand:,.0f} tok/s / {thpt:,.0f} tok/s/GPU -> {replicas}"
        return PoolPlan(replicas, values, reasons=[reason])

    def size_decode(self, inputs: SizingInputs) -> PoolPlan:
        itl_target = inputs.config.itl_ms / inputs.decode_correction
        context = inputs.isl + inputs.osl / 2
        point = inputs.profile.decode.dynamo_grid.best_operating_point(itl_target, context)
        demand = inputs.planned_num_req * inputs.osl / inputs.interval_s
        return _decode_plan(inputs, point, itl_target, demand)

    def budget_rule(
        self, prefill: int | None, decode: int | None, scale: float, gp: int, gd: int, budget: int, floor: int
    ) -> tuple[int | None, int | None]:
        """Dynamo's 2025 rule: proportional scale, ``round``, decode gets what prefill left."""
        if prefill is not None:
            prefill = max(floor, round(prefill * scale))
        if decode is not None:
            decode = max(floor, round((budget - (prefill or 0) * gp) / gd))
        return prefill, decode

    def stabilizer(self, config: PlannerConfig) -> Stabilizer | None:
        return None

    def idle_cooldown_s(self, config: PlannerConfig) -> float:
        # Dynamo skips every cycle whose metrics include a NaN, and the ISL/OSL means of an idle
        # interval are NaN: under --policy dynamo an idle deployment holds until traffic returns.
        return math.inf

    def scale_down_max_percent(self, config: PlannerConfig) -> float | None:
        # Dynamo applies every target at once; reproducing it means no bound.
        return None

    def queue_check_interval_s(self, config: PlannerConfig) -> float:
        # Dynamo's SLA planner (the 2025 one this policy reproduces) acts once an interval only.
        return 0.0


class DynamoTunedPolicy(DynamoPolicy):
    """Dynamo's arithmetic with a careful user's two knobs and the engine's sequence cap (see the
    module docstring)."""

    name = Policy.DYNAMO_TUNED

    def size_prefill(self, inputs: SizingInputs) -> PoolPlan:
        plan = super().size_prefill(inputs)
        factor = inputs.config.prefill_throughput_factor
        profiled = plan.values["prefill_thpt_per_gpu"]
        thpt = profiled * factor
        demand = plan.values["prefill_demand_tokens_per_s"]
        plan.replicas = ceil_replicas(demand, thpt, inputs.config.prefill_engine_num_gpu)
        plan.values["prefill_thpt_per_gpu"] = thpt
        plan.details = {"prefill_throughput_factor": factor, "prefill_thpt_per_gpu_profiled": profiled}
        plan.reasons = [f"prefill {demand:,.0f} tok/s / ({factor:g} x {profiled:,.0f}) tok/s/GPU -> {plan.replicas}"]
        return plan

    def size_decode(self, inputs: SizingInputs) -> PoolPlan:
        config = inputs.config
        factor = config.decode_target_factor
        itl_target = config.itl_ms * factor / inputs.decode_correction
        context = inputs.isl + inputs.osl / 2
        grid = inputs.profile.decode.dynamo_grid
        point = grid.best_operating_point(itl_target, context)
        demand = inputs.planned_num_req * inputs.osl / inputs.interval_s
        plan = _decode_plan(inputs, point, itl_target, demand)
        # Dynamo plans an engine for as many sequences as its KV cache holds at the ITL target;
        # the engine runs at most max_num_seqs. A careful user sizes for the cap as well: N engines
        # running `seqs` sequences each at ITL(seqs) carry demand x ITL(seqs) sequences in flight.
        seqs = factor * config.max_num_seqs
        in_flight = demand * grid.itl_ms(seqs, context) / 1000.0
        for_cap = math.ceil(in_flight / seqs) if demand > 0 else 0
        plan.details = {
            "decode_target_factor": factor,
            "decode_seqs_per_engine_planned": seqs,
            "decode_replicas_for_max_num_seqs": for_cap,
        }
        if for_cap > plan.replicas:
            plan.reasons.append(
                f"max_num_seqs {config.max_num_seqs}: {in_flight:,.0f} sequences in flight / {seqs:.0f} per engine "
                f"-> {for_cap}"
            )
            plan.replicas = for_cap
        return plan


class DefaultPolicy:
    """Ours (see the module docstring)."""

    name = Policy.DEFAULT

    def applied_corrections(self, corrections: Corrections, config: PlannerConfig) -> tuple[float, float]:
        prefill, decode = _usable(corrections, config)
        lo, hi = CORRECTION_RANGE
        # Observed TTFT mixes engine speed with queueing and burst waits the sizing already plans
        # for, so by default our policy records the prefill factor but does not act on it.
        prefill_applied = min(max(prefill, lo), hi) if config.apply_prefill_correction else 1.0
        return prefill_applied, min(max(decode, lo), hi)

    def expected_ttft_ms(self, observation: Observation, profile: Profile, num_req: float, isl: float) -> float:
        # Compared with what the profile predicts *including* queueing at the observed arrival
        # rate on the running engines, so that expected queueing is not mistaken for a slow
        # engine (which would inflate the pool a second time).
        service_s = profile.prefill.ttft_ms(isl) / 1000.0
        engines = observation.current.prefill or 0
        wait_s = mean_wait_s(engines, num_req / observation.interval_s, service_s) if engines > 0 else 0.0
        return (service_s + (wait_s if math.isfinite(wait_s) else 0.0)) * 1000.0

    def expected_itl_ms(self, profile: Profile, concurrency: float, context_length: float) -> float:
        return profile.decode.surface.itl_ms(concurrency, context_length)

    def planned_num_req(self, forecast: LoadForecast, num_req: float, config: PlannerConfig) -> float:
        """The forecast's upper quantile when the predictor gives one (and the config asks for
        it); on a rising load, at least where the last interval's growth takes it one interval
        further: a worker added now is ready only after its start-up, about an interval later,
        so the capacity decided now first serves the interval after next."""
        upper = forecast.num_req_upper
        planned = num_req
        if config.size_for_upper_quantile and not is_missing(upper):
            planned = max(num_req, float(upper or 0.0))
        counts = [sum(p) for p in forecast.burst_patterns[-2:]]
        if len(counts) == 2 and counts[1] > counts[0] > 0:
            planned = max(planned, num_req + (counts[1] - counts[0]))
        return planned

    def size_prefill(self, inputs: SizingInputs) -> PoolPlan:
        config, interval_s = inputs.config, inputs.interval_s
        # Prompts too long to meet the TTFT SLA on any number of engines set no latency target:
        # more engines would not help them. But they still occupy an engine for their whole
        # prefill (seconds each), so they count in the pool's busy time; and their length must
        # not inflate the feasible prompts' service time (prefill time grows faster than ISL).
        feasible = inputs.feasible
        # Prefill work is count x prompt length: plan for the upper quantile of that product.
        planned_all, token_margin = prefill_planned_num_req(inputs)
        planned = planned_all * (1.0 - feasible.infeasible_share)
        curves = inputs.profile.prefill.curves
        mix = prefill_mix(curves, inputs.isl, feasible, config, inputs.prefill_correction)
        isl = mix.feasible_isl
        thpt = curves.thpt_per_gpu(isl)
        demand = planned * isl / interval_s
        service_s, mean_service_s = mix.service_s, mix.mean_service_s
        wait_budget_s = config.ttft_ms / 1000.0 - mix.own_pass_s
        queue = servers_for_wait_tail(
            planned_all / interval_s, mean_service_s, wait_budget_s, 1.0 - config.sla_attainment,
            service_scv=mix.service_scv,
        )
        replicas = queue.servers
        details: dict[str, Any] = {"prefill_planned_num_req": planned_all, "prefill_token_margin": token_margin}
        burst_servers = _servers_for_burst_patterns(inputs.forecast, planned_all, mean_service_s, wait_budget_s, config)
        if burst_servers is not None:
            details.update(prefill_replicas_poisson=replicas, prefill_replicas_bursts=burst_servers)
            replicas = max(replicas, burst_servers)
        if feasible.infeasible > 0:
            details.update(
                prefill_feasible_num_req=planned,
                prefill_feasible_isl=isl,
                prefill_infeasible_isl=feasible.infeasible_isl,
                prefill_infeasible_service_ms=mix.infeasible_service_s * 1000.0,
            )
            reasons_infeasible = [
                f"{feasible.infeasible_share:.1%} of prompts longer than {feasible.max_feasible_isl:,.0f} tokens "
                f"cannot meet the TTFT SLA: no latency target for them, their "
                f"{mix.infeasible_service_s:,.1f} s of prefill each counted in the busy time"
            ]
        else:
            reasons_infeasible = []
        details.update(
            prefill_service_ms=service_s * 1000.0,
            prefill_offered_load=queue.offered_load,
            prefill_wait_budget_ms=queue.wait_budget_s * 1000.0,
            prefill_late_probability=queue.late_probability,
            prefill_ttft_reachable=queue.reachable,
        )
        reasons = [
            f"prefill {planned_all / interval_s:,.2f} req/s x {mean_service_s * 1000:.1f} ms = "
            f"{queue.offered_load:.2f} busy engines; {replicas} keep P(TTFT > {config.ttft_ms:g} ms) "
            f"at {queue.late_probability:.2%}"
        ]
        reasons.extend(reasons_infeasible)
        if not queue.reachable:
            reasons.append(f"prefill service time {service_s * 1000:.0f} ms alone exceeds the TTFT SLA: unreachable")
        values = dict(
            prefill_demand_tokens_per_s=demand, prefill_thpt_per_gpu=thpt, prefill_ttft_ms_profile=curves.ttft_ms(isl)
        )
        return PoolPlan(replicas, values, details, reasons)

    def size_decode(self, inputs: SizingInputs) -> PoolPlan:
        isl, osl, interval_s = inputs.isl, inputs.osl, inputs.interval_s
        itl_target = inputs.config.itl_ms / inputs.decode_correction
        context = isl + osl / 2
        # Admission reserves isl + osl tokens per request while the profile's KV axis counts
        # isl + osl/2: plan the operating point so reservations stay under the target share.
        kv_cap = inputs.config.decode_target_utilization * context / (isl + osl)
        point = inputs.profile.decode.surface.best_operating_point(itl_target, context, kv_cap)
        demand = inputs.planned_num_req * osl / interval_s
        # A request stays in decode for osl x ITL seconds, so decode concurrency follows the
        # arrival rate over that span, not over the whole interval: size for the busiest span
        # of the mean forecast, or for the upper forecast's average rate, whichever is higher
        # (compounding the two over-provisioned decode by 5-10 % in replays, for nothing).
        decode_s = osl * point.itl_ms / 1000.0
        peak_rate = _peak_rate(inputs.forecast, inputs.num_req, decode_s)
        details: dict[str, Any] = {}
        if peak_rate is not None and peak_rate * interval_s > inputs.planned_num_req:
            details.update(decode_peak_num_req_rate=peak_rate, decode_span_s=decode_s)
            demand = peak_rate * osl
        plan = _decode_plan(inputs, point, itl_target, demand)
        # An engine runs at most max_num_seqs sequences; a request that finds every engine at
        # the cap waits for admission, and that wait is TTFT. Plan each engine for the same share
        # of the cap as of the KV cache (decode_target_utilization) so the concurrency can
        # fluctuate: N engines holding `seqs` sequences each at ITL(seqs) carry
        # demand x ITL(seqs) sequences in flight.
        seqs = inputs.config.decode_target_utilization * inputs.config.max_num_seqs
        itl_at_seqs_ms = inputs.profile.decode.surface.itl_ms(seqs, context)
        in_flight = demand * itl_at_seqs_ms / 1000.0
        for_cap = math.ceil(in_flight / seqs) if demand > 0 else 0
        details.update(decode_seqs_per_engine_planned=seqs, decode_replicas_for_max_num_seqs=for_cap)
        if for_cap > plan.replicas:
            plan.reasons.append(
                f"max_num_seqs {inputs.config.max_num_seqs}: {in_flight:,.0f} sequences in flight / "
                f"{seqs:.0f} per engine -> {for_cap}"
            )
            plan.replicas = for_cap
        # The requests in flight now hold (or wait for) decode slots until they finish; the
        # forecast's OSL comes from requests that *finished*, which trail a rise in output
        # length by the long requests' whole decode (minutes on the deepseek-r1 day, where the
        # pool then filled to max_num_seqs and every new request waited for admission).
        # An engine holds that many sequences only while their KV fits: long outputs fill the cache
        # first (deepseek-r1's 1.3k + 3.7k tokens a request at 85 % of 945k: about 160).
        kv_seqs = inputs.config.decode_target_utilization * inputs.profile.decode.surface.max_kv_tokens / (isl + osl)
        seqs_held = min(seqs, kv_seqs)
        inflight, queue_is_decodes = decode_inflight_requests(
            inputs.forecast.inflight_requests, inputs.forecast.queued_requests, inputs.current_decode, seqs_held
        )
        planned_inflight = inflight_upper_quantile(inflight, inputs.config.sla_attainment)
        if inflight is not None and planned_inflight is not None:
            for_inflight = math.ceil(planned_inflight / seqs_held)
            details.update(
                decode_inflight_observed=inputs.forecast.inflight_requests,
                decode_inflight_queued=inputs.forecast.queued_requests,
                decode_inflight_queue_counted=queue_is_decodes,
                decode_inflight_requests=inflight,
                decode_inflight_planned=planned_inflight,
                decode_seqs_per_engine_held=seqs_held,
                decode_replicas_for_inflight=for_inflight,
            )
            if for_inflight > plan.replicas:
                plan.reasons.append(
                    f"{inflight:,.0f} requests in flight ({planned_inflight:,.0f} at the "
                    f"{inputs.config.sla_attainment:.0%} quantile) / {seqs_held:.0f} per engine -> {for_inflight}"
                )
                plan.replicas = for_inflight
        plan.details = details
        return plan

    def budget_rule(
        self, prefill: int | None, decode: int | None, scale: float, gp: int, gd: int, budget: int, floor: int
    ) -> tuple[int | None, int | None]:
        """Proportional scale with ``floor`` so the result never exceeds the budget; every
        planned pool keeps ``min_endpoint``; GPUs one pool cannot use go back to the other."""
        if prefill is not None and decode is not None:
            wanted_p, wanted_d = prefill, decode
            prefill = max(floor, math.floor(prefill * scale))
            prefill = min(prefill, (budget - floor * gd) // gp)
            decode = max(floor, min(wanted_d, (budget - prefill * gp) // gd))
            spare = budget - prefill * gp - decode * gd
            if prefill < wanted_p and spare >= gp:
                prefill += min(wanted_p - prefill, spare // gp)
        elif prefill is not None:
            prefill = max(floor, min(prefill, budget // gp))
        elif decode is not None:
            decode = max(floor, min(decode, budget // gd))
        return prefill, decode

    def stabilizer(self, config: PlannerConfig) -> Stabilizer | None:
        if config.scale_down_stabilization_s <= 0:
            return None
        return Stabilizer(window_s=config.scale_down_stabilization_s)

    def idle_cooldown_s(self, config: PlannerConfig) -> float:
        return float(config.idle_cooldown_s)

    def scale_down_max_percent(self, config: PlannerConfig) -> float | None:
        return config.scale_down_max_percent

    def queue_check_interval_s(self, config: PlannerConfig) -> float:
        return float(config.queue_check_interval_s)


_POLICIES: dict[Policy, SizingPolicy] = {
    Policy.DYNAMO: DynamoPolicy(),
    Policy.DYNAMO_TUNED: DynamoTunedPolicy(),
    Policy.DEFAULT: DefaultPolicy(),
}


def policy_for(policy: Policy | str) -> SizingPolicy:
    """The strategy of ``config.policy`` (or of a decision's ``policy`` string)."""
    return _POLICIES[Policy(policy)]


def decode_inflight_requests(
    inflight: float | None, queued: float | None, decode_replicas: int | None, seqs_per_engine: float
) -> tuple[float | None, bool]:
    """``(requests in flight the decode pool plans for, whether the first-token queue counts)``.

    The frontend's in-flight count holds the requests decoding and those still waiting for a
    first token, and the frontend cannot say whether the latter wait for a prefill engine or
    for a decode engine to admit them. The decode engines can: while those running hold fewer
    sequences than ``seqs_per_engine`` each (``decode_target_utilization`` x ``max_num_seqs``,
    or fewer where the requests' KV fills the cache first), a decode engine would admit a new
    request at once, so the queue is prefill's and decode plans for the requests decoding only.
    Counting a prefill backlog sized decode for it (ServeGen m-mid
    x0.25, hour 9: 36 % more decode GPU-hours for 0.3 points); once the running engines are that
    full, every request in flight counts (the deepseek-r1 day: 98.57 % of feasible requests
    without the queue, 99.26 % with it). Unknown queue or replicas: every request in flight counts."""
    if inflight is None or queued is None or decode_replicas is None or not math.isfinite(queued):
        return inflight, True
    decoding = max(0.0, inflight - queued)
    if decoding >= seqs_per_engine * decode_replicas:
        return inflight, True
    return decoding, False


def inflight_upper_quantile(inflight_requests: float | None, attainment: float) -> float | None:
    """The requests in flight the decode pool plans for: the ``attainment`` quantile of the count
    a moment later, given ``inflight_requests`` now (accepted, not finished); None when the count
    is unknown (not exported, or not a finite non-negative number): the sizing then goes by the
    forecast alone.

    Requests arriving at random and staying a random time are in flight in a Poisson number
    (an M/G/inf system), whose spread is its square root: ``n + z sqrt(n)``, ``z`` the normal
    quantile of ``attainment``. On the deepseek-r1 day, planning the count itself met 98.91 % of
    feasible requests, its 99 % quantile 99.18 % (for 0.5 % more GPU-hours). Which requests
    count (those still waiting for a first token only while the decode engines are full) is
    :func:`decode_inflight_requests`'s to say."""
    if inflight_requests is None or not math.isfinite(inflight_requests) or inflight_requests < 0:
        return None
    z = statistics.NormalDist().inv_cdf(attainment)
    return inflight_requests + z * math.sqrt(inflight_requests)


def prefill_service_s(curves: Any, isl: float, config: PlannerConfig) -> tuple[float, float]:
    """``(engine seconds per prompt, seconds until its first token is computed)`` for a prompt of
    ``isl`` tokens on a busy prefill engine.

    An engine batches queued prompts into passes of up to ``max_num_batched_tokens``, so when it
    is busy it prefills at the throughput of a full pass (48k tokens/s on the bundled profile),
    not at one prompt's (30k at 1,155 tokens), and a prompt is done with the pass that holds it:
    a full pass, or its own chunks when it is longer. Where a full pass alone would miss the TTFT
    SLA, passes must stay short to meet it: each prompt is then planned at its own concurrency-1
    prefill time, unbatched."""
    full_pass = float(config.max_num_batched_tokens)
    own_s = curves.ttft_ms(max(isl, full_pass)) / 1000.0
    if own_s < config.ttft_ms / 1000.0:
        return isl * curves.ttft_ms(full_pass) / 1000.0 / full_pass, own_s
    alone_s = curves.ttft_ms(isl) / 1000.0
    return alone_s, alone_s


@dataclass(frozen=True)
class PrefillMix:
    """Engine time per prompt of a prefill pool's mix: prompts that can meet the TTFT SLA,
    batched, and prompts too long for it, prefilled alone (:func:`prefill_mix`)."""

    feasible_isl: float  # mean ISL of the prompts that can meet the TTFT SLA
    service_s: float  # a feasible prompt's engine seconds on a busy engine
    own_pass_s: float  # seconds until a feasible prompt's first token is computed
    infeasible_service_s: float  # a long prompt's mean engine seconds (0 when there are none)
    mean_service_s: float  # mean engine seconds over every prompt
    service_scv: float  # squared coefficient of variation of the engine seconds


def prefill_mix(
    curves: Any, isl: float, feasible: FeasibleLoad, config: PlannerConfig, correction: float = 1.0
) -> PrefillMix:
    """The engine seconds per prompt of a load with mean prompt length ``isl`` of which
    ``feasible`` (:func:`planner_core.feasibility.feasible_load`) says how many are too long for
    the TTFT SLA; ``correction`` scales every engine time (the applied prefill correction).

    Both the cycle's sizing and the queue check between cycles weigh prefill work with it. A
    prompt too long to meet the SLA is prefilled alone in chunks and holds an engine for its
    whole unloaded prefill time, which grows faster than its length: it is summed per
    histogram bucket, not taken at the mean. A few such prompts make waits far longer than the
    mean service time suggests, hence the spread (squared coefficient of variation)."""
    feasible_isl = feasible.feasible_isl if feasible.infeasible > 0 else isl
    service_s, own_pass_s = prefill_service_s(curves, feasible_isl, config)
    service_s *= correction
    # each histogram bucket of long prompts as (share of all prompts, engine seconds each)
    long_prompts = (
        [(n / feasible.observed, curves.ttft_ms(x) / 1000.0 * correction) for n, x in feasible.infeasible_parts]
        if feasible.observed > 0
        else []
    )
    long_share = feasible.infeasible_share
    long_s = sum(f * t for f, t in long_prompts)  # engine seconds of long prompts, per prompt of all
    mean_s = (1.0 - long_share) * service_s + long_s
    second_moment = (1.0 - long_share) * service_s**2 + sum(f * t * t for f, t in long_prompts)
    return PrefillMix(
        feasible_isl=feasible_isl,
        service_s=service_s,
        own_pass_s=own_pass_s * correction,
        infeasible_service_s=long_s / long_share if long_share > 0 else 0.0,
        mean_service_s=mean_s,
        service_scv=second_moment / mean_s**2 - 1.0 if mean_s > 0 else 1.0,
    )


def prefill_planned_num_req(inputs: SizingInputs) -> tuple[float, float]:
    """``(requests the prefill pool plans for, the margin over the planned count)``.

    The pool's work is the request count times the mean prompt length, and both are forecast
    with an error. Planning for the count's upper quantile alone ignores a prompt length that
    swings between intervals (the Mooncake trace's per-minute mean ISL moves by 20-40 %); taking
    both upper quantiles would compound them. The relative margins of independent errors add in
    quadrature: the product's upper quantile is about ``count x ISL x (1 + sqrt(e_n^2 + e_isl^2))``,
    where ``e`` is each upper quantile's excess over its mean (the count's excess includes the
    rising-load rule). Returned as a count at the mean ISL."""
    planned = inputs.planned_num_req
    upper_isl = inputs.forecast.isl_upper
    if not inputs.config.size_for_upper_quantile or is_missing(upper_isl) or inputs.num_req <= 0:
        return planned, 1.0
    e_n = max(0.0, planned / inputs.num_req - 1.0)
    e_isl = max(0.0, float(upper_isl or 0.0) / inputs.isl - 1.0)
    margin = (1.0 + math.hypot(e_n, e_isl)) / (1.0 + e_n)
    return planned * margin, margin


def _servers_for_burst_patterns(
    forecast: LoadForecast, planned_num_req: float, service_s: float, budget_s: float, config: PlannerConfig
) -> int | None:
    """Prefill engines for the worst recent burst pattern, scaled to the planned request count:
    each request takes ``service_s`` of an engine and may wait ``budget_s``."""
    patterns = [p for p in forecast.burst_patterns if sum(p) >= BURST_MIN_SHARE * planned_num_req and sum(p) > 0]
    if not patterns or planned_num_req <= 0:
        return None
    late = 1.0 - config.sla_attainment
    return max(
        servers_for_bursts(pattern_at_count(p, planned_num_req), forecast.burst_window_s, service_s, budget_s, late)
        for p in patterns
    )


def pattern_at_count(pattern: Sequence[float], count: float) -> list[float]:
    """A recent interval's arrival counts per sub-window, rescaled to ``count`` requests.

    Fewer requests than the pattern held: every sub-window shrinks in proportion (a quieter
    interval has smaller bursts). More: the pattern's own bursts stay as they were and the extra
    requests are spread evenly over the interval. The excess of a planned count over what came
    is the forecast's uncertainty about how many requests come (more users, each arriving
    independently), not evidence that the bursts will be taller; scaling the whole pattern up
    compounded the two margins (Azure code x10: 6-11 prefill engines held where a fixed 5
    met 99.97 %, 7.46 GPU-h; spread evenly 6.06 at the same attainment; conv unchanged)."""
    total = float(sum(pattern))
    if total <= 0:
        return [count / len(pattern)] * len(pattern) if pattern else []
    if count <= total:
        return [n * count / total for n in pattern]
    extra = (count - total) / len(pattern)
    return [n + extra for n in pattern]


def _peak_rate(forecast: LoadForecast, planned_num_req: float, span_s: float) -> float | None:
    """Highest arrival rate (req/s) over any ``span_s`` stretch of the recent burst patterns,
    each scaled to the planned request count."""
    best: float | None = None
    window = forecast.burst_window_s
    for pattern in forecast.burst_patterns:
        total = sum(pattern)
        if total < BURST_MIN_SHARE * planned_num_req or total <= 0:
            continue
        k = max(1, min(len(pattern), round(span_s / window)))
        running = sum(pattern[:k])
        peak = running
        for i in range(k, len(pattern)):
            running += pattern[i] - pattern[i - k]
            peak = max(peak, running)
        rate = peak * planned_num_req / total / (k * window)
        best = rate if best is None else max(best, rate)
    return best
