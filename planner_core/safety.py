"""Safety rails: rules that hold whatever the forecast says. Pure, table-tested
(``tests/test_safety.py``); every number they use lands on the :class:`Decision`.

* **Stale data** (:func:`guard_stale`): metrics whose newest sample is more than
  :data:`STALE_AFTER_INTERVALS` adjustment intervals away from the window end, in either
  direction, are not this interval's load. The observation keeps its sample time but loses its
  values (quality ``stale``, the reason in ``error``), so the cycle holds the replicas, the
  predictor sees a missing point, and a restarted planner does not read them back as load.
  "Behind" covers a Prometheus that stopped scraping and a planner clock that jumped forward;
  "ahead" (a sample after the window end) a planner clock that jumped back.
* **Scale-down bound** (:func:`bound_scale_down`): one cycle may take a pool down by at most
  ``--scale-down-max-percent`` of its current replicas, and by at least
  :data:`MIN_SCALE_DOWN_STEP` replica so that small pools can still shrink. Growth is never
  bounded. A forecast that collapses by mistake costs at most that share of the capacity for
  one interval; the next cycle, on good data, restores it.
"""

from __future__ import annotations

import math
from dataclasses import replace

from planner_core.records import Decision, Observation, Replicas

STALE_AFTER_INTERVALS = 2
MIN_SCALE_DOWN_STEP = 1


def max_metrics_age_s(interval_s: float) -> float:
    """The stale-data guard's limit: two adjustment intervals."""
    return STALE_AFTER_INTERVALS * float(interval_s)


def metrics_age_s(observation: Observation) -> float | None:
    """Window end minus the newest sample's time (negative: the sample is after the window end);
    None when the source cannot tell."""
    if observation.sample_time is None:
        return None
    return (observation.window_end - observation.sample_time).total_seconds()


def guard_stale(observation: Observation, interval_s: float) -> Observation:
    """The observation, or its ``stale`` copy without values when its data is too far from the
    window end (see the module docstring). An observation without values is returned as is."""
    age = metrics_age_s(observation)
    limit = max_metrics_age_s(interval_s)
    if age is None or abs(age) <= limit or observation.quality in ("error", "no_data", "stale"):
        return observation
    if age > limit:
        why = (
            f"stale metrics: the newest sample is {age:.0f} s older than the window end, more than "
            f"{STALE_AFTER_INTERVALS} intervals ({limit:.0f} s): Prometheus stopped scraping the frontend, "
            "or the planner's clock jumped forward; holding replicas"
        )
    else:
        why = (
            f"stale metrics: the newest sample is {-age:.0f} s after the window end, more than "
            f"{STALE_AFTER_INTERVALS} intervals ({limit:.0f} s): the planner's clock is behind the metrics "
            "source's (did it jump back?); holding replicas"
        )
    return replace(
        observation,
        num_req=None,
        ttft_ms=None,
        itl_ms=None,
        isl=None,
        osl=None,
        request_duration_s=None,
        arrival_counts=None,
        queued_requests=None,
        inflight_requests=None,
        isl_histogram=None,
        quality="stale",
        error=why if not observation.error else f"{why}; {observation.error}",
    )


def with_metrics_age(decision: Decision, observation: Observation, interval_s: float) -> Decision:
    """The decision with the data's age and the guard's limit on it; a hold on stale data says so."""
    decision = replace(
        decision, metrics_age_s=metrics_age_s(observation), max_metrics_age_s=max_metrics_age_s(interval_s)
    )
    if observation.quality == "stale" and decision.action == "hold":
        decision = replace(decision, reason=observation.error or decision.reason)
    return decision


def scale_down_floor(current: int | None, max_percent: float) -> int | None:
    """Fewest replicas a pool running ``current`` may be asked for in one cycle; None = unknown."""
    if current is None:
        return None
    step = max(MIN_SCALE_DOWN_STEP, math.floor(current * max_percent / 100.0 + 1e-9))
    return max(0, current - step)


def bound_scale_down(decision: Decision, current: Replicas, max_percent: float | None) -> Decision:
    """Targets raised to each pool's :func:`scale_down_floor` (``max_percent`` None: no bound).
    A pool whose current replicas are unknown is not bounded (there is nothing to bound against)."""
    if max_percent is None or decision.action != "scale":
        return decision
    floors = (scale_down_floor(current.prefill, max_percent), scale_down_floor(current.decode, max_percent))
    wanted = (decision.prefill_replicas, decision.decode_replicas)
    bounded = tuple(
        floor if target is not None and floor is not None and target < floor else target
        for target, floor in zip(wanted, floors, strict=True)
    )
    prefill, decode = bounded
    limited = bounded != wanted
    reason = decision.reason
    if limited:
        reason = (
            f"{reason}; scale-down bounded to {max_percent:g} % (at least {MIN_SCALE_DOWN_STEP}) per cycle "
            f"(prefill {wanted[0]}->{prefill}, decode {wanted[1]}->{decode})"
        )
    return replace(
        decision,
        reason=reason,
        prefill_replicas=prefill,
        decode_replicas=decode,
        prefill_gpus=(prefill or 0) * decision.prefill_engine_num_gpu,
        decode_gpus=(decode or 0) * decision.decode_engine_num_gpu,
        scale_down_max_percent=max_percent,
        prefill_scale_down_floor=floors[0],
        decode_scale_down_floor=floors[1],
        prefill_replicas_before_scale_down_limit=wanted[0],
        decode_replicas_before_scale_down_limit=wanted[1],
        scale_down_limited=limited,
    )
