"""Replica sizing: one pure function from predicted load to a :class:`Decision`.

``size(forecast, profile, config, corrections, current) -> Decision`` does no I/O and keeps
every intermediate number on the returned record, in the spirit of Kubernetes' HPA replica
calculator. Two policies:

``dynamo``
    Dynamo's arithmetic (2025 planner), reproduced number for number: prefill sized to the
    mean token rate at the profiled throughput times ``min(1, prefill_correction)`` (a TTFT
    overshoot never adds replicas), decode sized at the best throughput of Dynamo's 100x100
    cubic grid whose ITL meets ``itl / decode_correction``, and Dynamo's proportional budget
    rule with ``round`` (which can overshoot the budget by a GPU or two: flagged as
    ``budget_exceeded`` on the decision, never silently).
``default``
    Ours. The correction factors apply in both directions (clamped to a sane range so one
    noisy interval cannot multiply a pool tenfold), decode uses :class:`DecodeSurface` (exact
    at the measured points, monotone where they are), and the budget rule never exceeds the
    budget while keeping ``min_endpoint`` replicas of every planned pool.

Defined results for degenerate input (documented in README):
* forecast with a missing (None/NaN) request count, ISL or OSL -> ``action="hold"``: the
  targets are the current replicas, nothing is scaled (a broken scrape is not zero traffic);
* zero predicted requests -> each planned pool at ``min_endpoint`` (never below it);
* an ITL SLA no profiled operating point meets -> sized at the lightest profiled point and
  flagged ``decode_sla_reachable=False`` with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from planner_core.burst import servers_for_bursts
from planner_core.config import Mode, PlannerConfig, Policy
from planner_core.profiles import OperatingPoint, Profile
from planner_core.queueing import mean_wait_s, servers_for_wait_tail
from planner_core.records import (
    NO_CORRECTION,
    Corrections,
    Decision,
    LoadForecast,
    Observation,
    Replicas,
    is_missing,
)

# Our policy trusts a correction factor only within this range: beyond it the mismatch is
# more likely a measurement artefact (a cold cache, a queue) than a property of the engine.
CORRECTION_RANGE = (0.25, 4.0)
BURST_MIN_SHARE = 0.25


def _finite_positive(value: float) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def applied_corrections(corrections: Corrections, config: PlannerConfig) -> tuple[float, float]:
    """The factors the policy actually multiplies by (prefill demand, decode ITL divisor)."""
    if config.no_correction:
        return 1.0, 1.0
    prefill = corrections.prefill if _finite_positive(corrections.prefill) else 1.0
    decode = corrections.decode if _finite_positive(corrections.decode) else 1.0
    if config.policy == Policy.DYNAMO:
        return min(1.0, prefill), decode
    lo, hi = CORRECTION_RANGE
    # Observed TTFT mixes engine speed with queueing and burst waits the sizing already plans
    # for, so by default our policy records the prefill factor but does not act on it.
    prefill_applied = min(max(prefill, lo), hi) if config.apply_prefill_correction else 1.0
    return prefill_applied, min(max(decode, lo), hi)


def compute_corrections(
    observation: Observation, profile: Profile, config: PlannerConfig, decode_replicas: int | None
) -> Corrections:
    """Observed latency over the profile's latency at the observed load (Dynamo's definition).

    ``prefill = ttft / profile_ttft(isl)``; ``decode = itl / profile_itl(concurrency, isl+osl/2)``
    with ``concurrency = num_req / decode_replicas * request_duration / interval``.
    Returns 1.0 factors (``source`` says why) when the data cannot support a ratio.
    """
    if config.no_correction:
        return Corrections(source="disabled")
    if not observation.has_load() or not observation.has_latency():
        return Corrections(source="no_data")
    num_req = float(observation.num_req or 0.0)
    if num_req <= 0:
        return Corrections(source="no_traffic")
    isl = float(observation.isl or 0.0)
    osl = float(observation.osl or 0.0)
    if config.policy == Policy.DYNAMO:
        expected_ttft_ms = profile.prefill.dynamo.ttft_ms(isl)
    else:
        # Ours compares with what the profile predicts *including* queueing at the observed
        # arrival rate on the running engines, so that expected queueing is not mistaken for
        # a slow engine (which would inflate the pool a second time).
        service_s = profile.prefill.ttft_ms(isl) / 1000.0
        engines = observation.current.prefill or 0
        wait_s = mean_wait_s(engines, num_req / observation.interval_s, service_s) if engines > 0 else 0.0
        expected_ttft_ms = (service_s + (wait_s if math.isfinite(wait_s) else 0.0)) * 1000.0
    prefill = float(observation.ttft_ms or 0.0) / expected_ttft_ms
    decode = 1.0
    if decode_replicas and decode_replicas > 0 and observation.interval_s > 0:
        concurrency = num_req / decode_replicas * float(observation.request_duration_s or 0.0) / observation.interval_s
        model = profile.decode.dynamo_grid if config.policy == Policy.DYNAMO else profile.decode.surface
        expected_itl = model.itl_ms(concurrency, isl + osl / 2)
        if expected_itl > 0:
            decode = float(observation.itl_ms or 0.0) / expected_itl
    return Corrections(prefill=prefill, decode=decode, source="observed")


@dataclass(frozen=True)
class _Pool:
    unconstrained: int
    after_min: int
    after_cap: int


def _pool(unconstrained: int, minimum: int, cap: int | None) -> _Pool:
    after_min = max(unconstrained, minimum)
    after_cap = min(after_min, cap) if cap is not None else after_min
    return _Pool(unconstrained, after_min, after_cap)


def _ceil_replicas(demand: float, thpt_per_gpu: float, engine_num_gpu: int) -> int:
    if demand <= 0:
        return 0
    if thpt_per_gpu <= 0:
        raise ValueError("profiled throughput per GPU must be positive")
    return math.ceil(demand / thpt_per_gpu / engine_num_gpu)


def _fit_budget(
    prefill: int | None, decode: int | None, config: PlannerConfig
) -> tuple[int | None, int | None, float | None]:
    """Replicas within ``max_gpu_budget`` by the policy's rule, and the scale applied (None
    when the budget was not binding)."""
    gp, gd, budget = config.prefill_engine_num_gpu, config.decode_engine_num_gpu, config.max_gpu_budget
    total = (prefill or 0) * gp + (decode or 0) * gd
    if total <= budget:
        return prefill, decode, None
    scale = budget / total
    rule = _budget_dynamo if config.policy == Policy.DYNAMO else _budget_default
    prefill, decode = rule(prefill, decode, scale, gp, gd, budget, config.min_endpoint)
    return prefill, decode, scale


def _budget_dynamo(
    prefill: int | None, decode: int | None, scale: float, gp: int, gd: int, budget: int, floor: int
) -> tuple[int | None, int | None]:
    """Dynamo's 2025 rule: proportional scale, ``round``, decode gets what prefill left."""
    if prefill is not None:
        prefill = max(floor, round(prefill * scale))
    if decode is not None:
        decode = max(floor, round((budget - (prefill or 0) * gp) / gd))
    return prefill, decode


def _budget_default(
    prefill: int | None, decode: int | None, scale: float, gp: int, gd: int, budget: int, floor: int
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


def _servers_for_burst_patterns(
    forecast: LoadForecast, planned_num_req: float, service_s: float, config: PlannerConfig
) -> int | None:
    """Prefill engines for the worst recent burst pattern, scaled to the planned request count."""
    # A pattern with far fewer requests than planned says little about the planned load's
    # shape (five requests in one second, scaled to five hundred, is not a forecast).
    patterns = [p for p in forecast.burst_patterns if sum(p) >= BURST_MIN_SHARE * planned_num_req and sum(p) > 0]
    if not patterns or planned_num_req <= 0:
        return None
    budget_s = config.ttft_ms / 1000.0 - service_s
    late = 1.0 - config.sla_attainment
    return max(
        servers_for_bursts(
            [n * planned_num_req / sum(p) for n in p], forecast.burst_window_s, service_s, budget_s, late
        )
        for p in patterns
    )


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


def size(
    forecast: LoadForecast,
    profile: Profile,
    config: PlannerConfig,
    corrections: Corrections = NO_CORRECTION,
    current: Replicas | None = None,
) -> Decision:
    """Replicas for the next interval. Pure: same inputs, same Decision."""
    interval_s = float(config.adjustment_interval_s)
    prefill_corr_applied, decode_corr_applied = applied_corrections(corrections, config)
    common: dict[str, Any] = dict(
        policy=config.policy.value,
        mode=config.mode.value,
        interval_s=interval_s,
        ttft_sla_ms=config.ttft_ms,
        itl_sla_ms=config.itl_ms,
        prefill_correction=corrections.prefill,
        decode_correction=corrections.decode,
        prefill_correction_applied=prefill_corr_applied,
        decode_correction_applied=decode_corr_applied,
        prefill_engine_num_gpu=config.prefill_engine_num_gpu,
        decode_engine_num_gpu=config.decode_engine_num_gpu,
        min_endpoint=config.min_endpoint,
        max_gpu_budget=config.max_gpu_budget,
    )
    plans_prefill = config.mode in (Mode.DISAGG, Mode.PREFILL)
    plans_decode = config.mode in (Mode.DISAGG, Mode.DECODE)

    if not forecast.is_usable():
        held = current or Replicas(None, None)
        prefill_held = held.prefill if plans_prefill else None
        decode_held = held.decode if plans_decode else None
        return Decision(
            action="hold",
            reason=f"no usable forecast ({forecast.predictor}: request count, ISL or OSL missing): "
            "holding current replicas",
            num_req=None if is_missing(forecast.num_req) else forecast.num_req,
            isl=None if is_missing(forecast.isl) else forecast.isl,
            osl=None if is_missing(forecast.osl) else forecast.osl,
            prefill_replicas=prefill_held,
            decode_replicas=decode_held,
            prefill_gpus=(prefill_held or 0) * config.prefill_engine_num_gpu,
            decode_gpus=(decode_held or 0) * config.decode_engine_num_gpu,
            **common,
        )

    num_req = max(0.0, float(forecast.num_req))
    isl = max(1.0, float(forecast.isl))
    osl = max(1.0, float(forecast.osl))
    reasons: list[str] = []
    values: dict[str, Any] = {}

    # Ours sizes for the forecast's upper quantile when the predictor gives one.
    planned_num_req = num_req
    upper = forecast.num_req_upper
    if config.policy == Policy.DEFAULT and config.size_for_upper_quantile and not is_missing(upper):
        planned_num_req = max(num_req, float(upper or 0.0))
    details: dict[str, Any] = {"planned_num_req": planned_num_req}

    prefill_pool: _Pool | None = None
    if plans_prefill:
        curves = profile.prefill.dynamo if config.policy == Policy.DYNAMO else profile.prefill.curves
        thpt = curves.thpt_per_gpu(isl)
        if config.policy == Policy.DYNAMO:
            demand = num_req * isl / interval_s * prefill_corr_applied
            unconstrained = _ceil_replicas(demand, thpt, config.prefill_engine_num_gpu)
            reasons.append(f"prefill {demand:,.0f} tok/s / {thpt:,.0f} tok/s/GPU -> {unconstrained}")
        else:
            demand = planned_num_req * isl / interval_s
            service_s = isl / (thpt * config.prefill_engine_num_gpu) * prefill_corr_applied
            queue = servers_for_wait_tail(
                planned_num_req / interval_s,
                service_s,
                config.ttft_ms / 1000.0 - service_s,
                1.0 - config.sla_attainment,
            )
            unconstrained = queue.servers
            burst_servers = _servers_for_burst_patterns(forecast, planned_num_req, service_s, config)
            if burst_servers is not None:
                details.update(prefill_replicas_poisson=unconstrained, prefill_replicas_bursts=burst_servers)
                unconstrained = max(unconstrained, burst_servers)
            details.update(
                prefill_service_ms=service_s * 1000.0,
                prefill_offered_load=queue.offered_load,
                prefill_wait_budget_ms=queue.wait_budget_s * 1000.0,
                prefill_late_probability=queue.late_probability,
                prefill_ttft_reachable=queue.reachable,
            )
            reasons.append(
                f"prefill {planned_num_req / interval_s:,.2f} req/s x {service_s * 1000:.1f} ms = "
                f"{queue.offered_load:.2f} busy engines; {unconstrained} keep P(TTFT > {config.ttft_ms:g} ms) "
                f"at {queue.late_probability:.2%}"
            )
            if not queue.reachable:
                reasons.append(
                    f"prefill service time {service_s * 1000:.0f} ms alone exceeds the TTFT SLA: unreachable"
                )
        prefill_pool = _pool(unconstrained, config.min_endpoint, config.prefill_max_replicas)
        values.update(
            prefill_demand_tokens_per_s=demand,
            prefill_thpt_per_gpu=thpt,
            prefill_ttft_ms_profile=curves.ttft_ms(isl),
            prefill_replicas_unconstrained=prefill_pool.unconstrained,
            prefill_replicas_after_min=prefill_pool.after_min,
            prefill_replicas_after_cap=prefill_pool.after_cap,
        )

    decode_pool: _Pool | None = None
    if plans_decode:
        context = isl + osl / 2
        itl_target = config.itl_ms / decode_corr_applied
        if config.policy == Policy.DYNAMO:
            point: OperatingPoint = profile.decode.dynamo_grid.best_operating_point(itl_target, context)
        else:
            # Admission reserves isl + osl tokens per request while the profile's KV axis counts
            # isl + osl/2: plan the operating point so reservations stay under the target share.
            kv_cap = config.decode_target_utilization * context / (isl + osl)
            point = profile.decode.surface.best_operating_point(itl_target, context, kv_cap)
        demand = planned_num_req * osl / interval_s
        if config.policy == Policy.DEFAULT:
            # A request stays in decode for osl x ITL seconds, so decode concurrency follows the
            # arrival rate over that span, not over the whole interval: size for the busiest span
            # of the mean forecast, or for the upper forecast's average rate, whichever is higher
            # (compounding the two over-provisioned decode by 5-10 % in replays, for nothing).
            decode_s = osl * point.itl_ms / 1000.0
            peak_rate = _peak_rate(forecast, num_req, decode_s)
            if peak_rate is not None and peak_rate * interval_s > planned_num_req:
                details.update(decode_peak_num_req_rate=peak_rate, decode_span_s=decode_s)
                demand = peak_rate * osl
        decode_pool = _pool(
            _ceil_replicas(demand, point.thpt_per_gpu, config.decode_engine_num_gpu),
            config.min_endpoint,
            config.decode_max_replicas,
        )
        values.update(
            decode_context_length=context,
            decode_itl_target_ms=itl_target,
            decode_thpt_per_gpu=point.thpt_per_gpu,
            decode_itl_ms_at_operating_point=point.itl_ms,
            decode_kv_usage_at_operating_point=point.kv_usage,
            decode_sla_reachable=point.meets_target,
            decode_demand_tokens_per_s=demand,
            decode_replicas_unconstrained=decode_pool.unconstrained,
            decode_replicas_after_min=decode_pool.after_min,
            decode_replicas_after_cap=decode_pool.after_cap,
        )
        reasons.append(
            f"decode {demand:,.0f} tok/s / {point.thpt_per_gpu:,.0f} tok/s/GPU at ITL<={itl_target:.1f} ms "
            f"-> {decode_pool.unconstrained}"
        )
        if not point.meets_target:
            reasons.append(
                f"ITL target {itl_target:.1f} ms is below every profiled ITL at context {context:.0f} "
                f"(lightest point {point.itl_ms:.1f} ms): the profile cannot meet this SLA"
            )

    if num_req == 0:
        reasons.append("zero predicted requests: planned pools at min_endpoint")

    prefill_target = prefill_pool.after_cap if prefill_pool else None
    decode_target = decode_pool.after_cap if decode_pool else None
    gpus_before = (prefill_target or 0) * config.prefill_engine_num_gpu + (
        decode_target or 0
    ) * config.decode_engine_num_gpu
    prefill_final, decode_final, scale = _fit_budget(prefill_target, decode_target, config)
    prefill_gpus = (prefill_final or 0) * config.prefill_engine_num_gpu
    decode_gpus = (decode_final or 0) * config.decode_engine_num_gpu
    exceeded = prefill_gpus + decode_gpus > config.max_gpu_budget
    if scale is not None:
        reasons.append(
            f"GPU budget {config.max_gpu_budget} < {gpus_before} needed: scaled by {scale:.3f} "
            f"to prefill {prefill_final}, decode {decode_final}"
        )
    if exceeded:
        reasons.append(
            f"Dynamo's rounding exceeds the budget: {prefill_gpus + decode_gpus} GPUs > {config.max_gpu_budget}"
        )
    return Decision(
        action="scale",
        reason="; ".join(reasons),
        num_req=num_req,
        isl=isl,
        osl=osl,
        prefill_replicas=prefill_final,
        decode_replicas=decode_final,
        gpus_before_budget=gpus_before,
        budget_scale=scale,
        budget_limited=scale is not None,
        budget_exceeded=exceeded,
        prefill_gpus=prefill_gpus,
        decode_gpus=decode_gpus,
        details=details,
        **common,
        **values,
    )
