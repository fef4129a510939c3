"""Between cycles: add prefill engines when the queue says the next cycle would be too late.

A cycle sizes the pools once an interval, from the load it has seen. A burst that starts just
after a cycle is first seen by the next one, and the engines that cycle adds start serving one
start-up later: up to two intervals of prompts wait on a pool sized for the calm before. On the
Azure code trace at x10 that is where nearly all of ``default``'s TTFT misses were (a minute of
silence, then the two busiest minutes of the hour).

The queue check runs every ``queue_check_interval_s`` (Dynamo 1.6's load loop runs every 5 s,
one replica at a time). It reads the frontend over the last few seconds: the requests waiting
for a first token (``dynamo_frontend_queued_requests``), the arrivals and the mean prompt
length. When the queue alone holds a newly arriving prompt past its TTFT budget, and the
arrivals keep the ready prefill engines busy (the frontend's queue also holds prompts waiting for
a decode engine, which more prefill engines would not help), it asks at once for the engines that
keep up with the recent arrival rate and drain what will have queued by the time they are ready.
It only ever adds prefill engines, within the GPU budget left by the decode pool, and never
touches decode: the next cycle sizes both pools again (with the scale-down stabilisation window
holding what the check added, like any recent target).

Pure: :func:`queue_check` takes numbers and returns a :class:`QueueCheck` with every
intermediate number, so the rule is table-tested apart from the loop that calls it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from planner_core.config import PlannerConfig
from planner_core.feasibility import IslHistogram, feasible_load, max_feasible_isl
from planner_core.policies import prefill_mix
from planner_core.profiles import Profile
from planner_core.queueing import servers_for_wait_tail
from planner_core.records import Decision
from planner_core.sizing import decision_settings

# A prefill queue is the pool's when the arrivals keep at least this share of its ready engines
# busy: a burst inside the check window runs above its mean, so a little below saturation counts.
BUSY_SHARE = 0.8


@dataclass(frozen=True)
class QueueCheck:
    """What one check saw and concluded; ``prefill_replicas`` is None when it does not scale."""

    prefill_replicas: int | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def queue_check(
    *,
    queued_requests: float | None,
    num_req: float | None,
    window_s: float,
    isl: float | None,
    ready_prefill: int,
    target_prefill: int,
    target_decode: int | None,
    profile: Profile,
    config: PlannerConfig,
    isl_histogram: IslHistogram | None = None,
) -> QueueCheck:
    """Prefill engines the queue calls for now, or ``None``.

    ``queued_requests``: waiting for a first token now; ``num_req`` arrivals over the last
    ``window_s`` seconds; ``isl`` their mean prompt tokens; ``ready_prefill`` engines serving now;
    ``target_prefill`` engines asked for (ready and starting); ``target_decode`` the decode
    engines asked for, whose GPUs the check leaves alone.

    A busy engine prefills at the throughput of full ``max_num_batched_tokens`` passes, so the
    queue ahead of a new prompt drains in ``queued x isl / (ready x pass throughput)``; the
    prompt's own pass comes after that. When that wait exceeds the TTFT SLA minus one full pass,
    the check asks for the engines that keep the tail of the wait within that budget at the
    recent arrival rate (as the cycle's sizing does), plus those that drain, within one
    interval, the queue as it will stand when they are ready (assumed within one interval, as
    the cycle assumes of its own scale-ups)."""
    if queued_requests is None or not math.isfinite(queued_requests):
        return QueueCheck(None, "the frontend does not export the queue (dynamo_frontend_queued_requests): no check")
    if queued_requests <= 0:
        return QueueCheck(None, "no prompt waiting for its first token")
    if isl is None or not math.isfinite(isl) or isl <= 0:
        return QueueCheck(None, "no mean prompt length to weigh the queue with: no check")
    feasible = feasible_load(isl_histogram, isl, max_feasible_isl(profile, config.ttft_ms))
    mix = prefill_mix(profile.prefill.curves, isl, feasible, config)
    service_s = mix.mean_service_s  # engine seconds per prompt on a busy engine
    budget_s = config.ttft_ms / 1000.0 - mix.own_pass_s
    wait_s = queued_requests * service_s / max(ready_prefill, 1)
    details: dict[str, Any] = {
        "queue_queued_requests": queued_requests,
        "queue_isl": isl,
        "queue_service_ms": service_s * 1000.0,
        "queue_infeasible_share": feasible.infeasible_share,
        "queue_wait_ms": wait_s * 1000.0,
        "queue_wait_budget_ms": budget_s * 1000.0,
        "queue_ready_prefill": ready_prefill,
        "queue_target_prefill": target_prefill,
    }
    if wait_s <= max(budget_s, 0.0):
        return QueueCheck(
            None, f"queue of {queued_requests:,.0f} drains in {wait_s * 1000:.0f} ms, within the TTFT budget", details
        )
    rate = max(0.0, num_req or 0.0) / window_s if window_s > 0 else 0.0
    offered = rate * service_s  # engines the window's arrivals keep busy
    details.update(queue_arrival_rate_per_s=rate, queue_offered_load=offered)
    if offered < BUSY_SHARE * ready_prefill:
        # The frontend's queue also holds prompts already prefilled and waiting for a decode
        # engine; while the arrivals leave ready prefill engines idle, the queue is not theirs
        # and more of them would only feed the decode queue (the deepseek-r1 day: decode-bound).
        return QueueCheck(
            None,
            f"queue of {queued_requests:,.0f} waits {wait_s * 1000:.0f} ms, but the arrivals keep only "
            f"{offered:.1f} of {ready_prefill} ready prefill engines busy (< {BUSY_SHARE:.0%}): not a prefill queue",
            details,
        )
    horizon_s = float(config.adjustment_interval_s)
    # Until the new engines are ready the queue grows by what the engines asked for cannot serve.
    growth = max(0.0, rate - target_prefill / service_s) * horizon_s
    backlog = queued_requests + growth
    keep_up = servers_for_wait_tail(
        rate, service_s, max(budget_s, 1e-3), 1.0 - config.sla_attainment, service_scv=mix.service_scv
    ).servers
    drain = math.ceil(backlog * service_s / horizon_s)
    needed = keep_up + drain
    budget_left = (config.max_gpu_budget - (target_decode or 0) * config.decode_engine_num_gpu) // (
        config.prefill_engine_num_gpu
    )
    cap = min(budget_left, config.prefill_max_replicas if config.prefill_max_replicas is not None else budget_left)
    target = min(needed, cap)
    details.update(
        queue_backlog_at_ready=backlog,
        queue_replicas_keep_up=keep_up,
        queue_replicas_drain=drain,
        queue_replicas_needed=needed,
        queue_replicas_cap=cap,
    )
    if target <= target_prefill:
        why = "the engines asked for already cover it" if needed <= target_prefill else "no GPU budget left"
        return QueueCheck(None, f"queue of {queued_requests:,.0f} waits {wait_s * 1000:.0f} ms, but {why}", details)
    reason = (
        f"queue check: {queued_requests:,.0f} prompts waiting ({wait_s * 1000:,.0f} ms on {ready_prefill} ready "
        f"engines > {budget_s * 1000:.0f} ms TTFT budget); {rate:,.2f} req/s need {keep_up}, the queue at "
        f"ready time ({backlog:,.0f}) {drain} more: prefill {target_prefill} -> {target}"
    )
    if target < needed:
        reason += f" (capped at {cap} by the GPU budget or --prefill-max-replicas)"
    return QueueCheck(target, reason, details)


def queue_check_window_s(config: PlannerConfig) -> float:
    """Seconds of frontend data each check reads: its own period, and at least two steps of the
    request counter (one step is a single scrape's difference, too noisy to size from)."""
    return max(float(config.queue_check_interval_s), 2.0 * config.arrival_resolution_s)


def queue_decision(
    check: QueueCheck, config: PlannerConfig, decode_replicas: int | None, num_req: float | None, window_s: float
) -> Decision:
    """The audit record of a check that scales: prefill to the check's count, decode as asked."""
    prefill = check.prefill_replicas
    return Decision(
        action="scale",
        reason=check.reason,
        num_req=num_req,
        isl=check.details.get("queue_isl"),
        osl=None,
        prefill_replicas_unconstrained=check.details.get("queue_replicas_needed"),
        # what a restarted stabiliser reads back as this target (store.recent_targets)
        prefill_replicas_after_cap=prefill,
        decode_replicas_after_cap=decode_replicas,
        prefill_replicas=prefill,
        decode_replicas=decode_replicas,
        prefill_gpus=(prefill or 0) * config.prefill_engine_num_gpu,
        decode_gpus=(decode_replicas or 0) * config.decode_engine_num_gpu,
        **decision_settings(config, window_s),
        details=dict(check.details),
    )
