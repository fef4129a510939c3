"""Replica sizing: pure functions from predicted load to a :class:`Decision`.

``size_pools(forecast, profile, config, corrections, current) -> Decision`` does no I/O and keeps
every intermediate number on the returned record, in the spirit of Kubernetes' HPA replica
calculator. The policy's arithmetic lives in :mod:`planner_core.policies` (``dynamo`` and
``default``); this module runs it for each planned pool, applies ``min_endpoint`` and the
per-pool caps, and :func:`fit_budget` applies the policy's GPU budget rule - once, last, after
any scale-down stabilisation (the planning cycle runs size_pools -> stabilise -> fit_budget;
:func:`size` is the two without stabilisation, for callers that have none).

Defined results for degenerate input (documented in README):
* forecast with a missing (None/NaN) request count, ISL or OSL -> ``action="hold"``: the
  targets are the current replicas, nothing is scaled (a broken scrape is not zero traffic);
* zero predicted requests -> each planned pool at ``min_endpoint`` (never below it);
* an ITL SLA no profiled operating point meets -> sized at the lightest profiled point and
  flagged ``decode_sla_reachable=False`` with the reason;
* prompts too long to meet the TTFT SLA on any number of engines (estimated from the last
  observed ISL histogram, :mod:`planner_core.feasibility`) -> no TTFT target for them in the
  default policy's prefill sizing, but their prefill time in the pool's busy time; counted in
  ``prefill_infeasible_num_req``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from planner_core.config import Mode, PlannerConfig
from planner_core.feasibility import feasible_load, max_feasible_isl
from planner_core.policies import PoolPlan, SizingInputs, policy_for
from planner_core.profiles import Profile
from planner_core.records import (
    NO_CORRECTION,
    Corrections,
    Decision,
    LoadForecast,
    Observation,
    Replicas,
    is_missing,
)


def applied_corrections(corrections: Corrections, config: PlannerConfig) -> tuple[float, float]:
    """The factors the policy actually multiplies by (prefill demand, decode ITL divisor)."""
    return policy_for(config.policy).applied_corrections(corrections, config)


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
    policy = policy_for(config.policy)
    prefill = float(observation.ttft_ms or 0.0) / policy.expected_ttft_ms(observation, profile, num_req, isl)
    decode = 1.0
    if decode_replicas and decode_replicas > 0 and observation.interval_s > 0:
        concurrency = num_req / decode_replicas * float(observation.request_duration_s or 0.0) / observation.interval_s
        expected_itl = policy.expected_itl_ms(profile, concurrency, isl + osl / 2)
        if expected_itl > 0:
            decode = float(observation.itl_ms or 0.0) / expected_itl
    return Corrections(prefill=prefill, decode=decode, source="observed")


def size(
    forecast: LoadForecast,
    profile: Profile,
    config: PlannerConfig,
    corrections: Corrections = NO_CORRECTION,
    current: Replicas | None = None,
) -> Decision:
    """Replicas for the next interval within the GPU budget (no stabilisation). Pure."""
    return fit_budget(size_pools(forecast, profile, config, corrections, current))


def decision_settings(
    config: PlannerConfig,
    interval_s: float,
    corrections: Corrections = NO_CORRECTION,
    applied: tuple[float, float] = (1.0, 1.0),
) -> dict[str, Any]:
    """The fields of a :class:`Decision` that come from the settings it was made under (policy,
    SLA, engine sizes, budget) and the correction factors, for everything that builds one."""
    return dict(
        policy=config.policy.value,
        mode=config.mode.value,
        interval_s=interval_s,
        ttft_sla_ms=config.ttft_ms,
        itl_sla_ms=config.itl_ms,
        prefill_correction=corrections.prefill,
        decode_correction=corrections.decode,
        prefill_correction_applied=applied[0],
        decode_correction_applied=applied[1],
        prefill_engine_num_gpu=config.prefill_engine_num_gpu,
        decode_engine_num_gpu=config.decode_engine_num_gpu,
        min_endpoint=config.min_endpoint,
        max_gpu_budget=config.max_gpu_budget,
    )


def size_pools(
    forecast: LoadForecast,
    profile: Profile,
    config: PlannerConfig,
    corrections: Corrections = NO_CORRECTION,
    current: Replicas | None = None,
) -> Decision:
    """Each planned pool sized by the policy, with ``min_endpoint`` and the per-pool caps, before
    the GPU budget (see :func:`fit_budget`). Pure: same inputs, same Decision."""
    policy = policy_for(config.policy)
    prefill_corr, decode_corr = policy.applied_corrections(corrections, config)
    common = decision_settings(config, float(config.adjustment_interval_s), corrections, (prefill_corr, decode_corr))
    plans_prefill = config.mode in (Mode.DISAGG, Mode.PREFILL)
    plans_decode = config.mode in (Mode.DISAGG, Mode.DECODE)
    if not forecast.is_usable():
        return _hold(forecast, config, current, plans_prefill, plans_decode, common)

    num_req = max(0.0, float(forecast.num_req))
    isl = max(1.0, float(forecast.isl))
    feasible = feasible_load(forecast.isl_histogram, isl, max_feasible_isl(profile, config.ttft_ms))
    inputs = SizingInputs(
        forecast=forecast,
        profile=profile,
        config=config,
        num_req=num_req,
        planned_num_req=policy.planned_num_req(forecast, num_req, config),
        isl=isl,
        osl=max(1.0, float(forecast.osl)),
        prefill_correction=prefill_corr,
        decode_correction=decode_corr,
        feasible=feasible,
        current_decode=current.decode if current is not None else None,
    )
    reasons: list[str] = []
    values: dict[str, Any] = {}
    details: dict[str, Any] = {
        "planned_num_req": inputs.planned_num_req,
        "max_feasible_isl": feasible.max_feasible_isl,
        "isl_histogram_num_req": feasible.observed,
        "isl_histogram_infeasible_num_req": feasible.infeasible,
    }
    prefill = decode = None
    if plans_prefill:
        prefill = _constrain("prefill", policy.size_prefill(inputs), config.min_endpoint, config.prefill_max_replicas)
    if plans_decode:
        decode = _constrain("decode", policy.size_decode(inputs), config.min_endpoint, config.decode_max_replicas)
    for plan in (prefill, decode):
        if plan is not None:
            values.update(plan.values)
            details.update(plan.details)
            reasons.extend(plan.reasons)
    if num_req == 0:
        reasons.append("zero predicted requests: planned pools at min_endpoint")
    prefill_target = values.get("prefill_replicas_after_cap")
    decode_target = values.get("decode_replicas_after_cap")
    return Decision(
        action="scale",
        reason="; ".join(reasons),
        num_req=num_req,
        isl=inputs.isl,
        osl=inputs.osl,
        prefill_replicas=prefill_target,
        decode_replicas=decode_target,
        prefill_gpus=(prefill_target or 0) * config.prefill_engine_num_gpu,
        decode_gpus=(decode_target or 0) * config.decode_engine_num_gpu,
        prefill_infeasible_num_req=inputs.planned_num_req * feasible.infeasible_share if plans_prefill else None,
        details=details,
        **common,
        **values,
    )


def _constrain(pool: str, plan: PoolPlan, minimum: int, cap: int | None) -> PoolPlan:
    """The plan with ``min_endpoint`` and the pool's cap applied, each step on the record."""
    after_min = max(plan.replicas, minimum)
    after_cap = min(after_min, cap) if cap is not None else after_min
    plan.values.update(
        {
            f"{pool}_replicas_unconstrained": plan.replicas,
            f"{pool}_replicas_after_min": after_min,
            f"{pool}_replicas_after_cap": after_cap,
        }
    )
    return plan


def _hold(
    forecast: LoadForecast,
    config: PlannerConfig,
    current: Replicas | None,
    plans_prefill: bool,
    plans_decode: bool,
    common: dict[str, Any],
) -> Decision:
    """No usable forecast: keep the current replicas of the planned pools."""
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


def fit_budget(decision: Decision) -> Decision:
    """The decision's targets within ``max_gpu_budget`` by its policy's budget rule.

    The one place the budget is applied: last, after sizing and stabilisation, so the targets
    that are scaled to never exceed what the rule allows. A ``hold`` keeps what runs."""
    if decision.action != "scale":
        return decision
    gp, gd, budget = decision.prefill_engine_num_gpu, decision.decode_engine_num_gpu, decision.max_gpu_budget
    prefill, decode = decision.prefill_replicas, decision.decode_replicas
    gpus_before = (prefill or 0) * gp + (decode or 0) * gd
    scale: float | None = None
    reasons = [decision.reason] if decision.reason else []
    if gpus_before > budget:
        scale = budget / gpus_before
        rule = policy_for(decision.policy).budget_rule
        prefill, decode = rule(prefill, decode, scale, gp, gd, budget, decision.min_endpoint)
        reasons.append(
            f"GPU budget {budget} < {gpus_before} needed: scaled by {scale:.3f} to prefill {prefill}, decode {decode}"
        )
    prefill_gpus, decode_gpus = (prefill or 0) * gp, (decode or 0) * gd
    exceeded = prefill_gpus + decode_gpus > budget
    if exceeded:
        reasons.append(f"Dynamo's rounding exceeds the budget: {prefill_gpus + decode_gpus} GPUs > {budget}")
    return replace(
        decision,
        reason="; ".join(reasons),
        prefill_replicas=prefill,
        decode_replicas=decode,
        gpus_before_budget=gpus_before,
        budget_scale=scale,
        budget_limited=scale is not None,
        budget_exceeded=exceeded,
        prefill_gpus=prefill_gpus,
        decode_gpus=decode_gpus,
    )
