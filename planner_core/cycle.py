"""The planning cycle, written once: observe -> predict -> size -> stabilise -> scale -> record.

Three callers run this same code: the Prefect flows (each step a task), ``sla-planner
run-once`` and the closed-loop replay (simulated clock, cluster and frontend). The caller
passes the step runner: :func:`call_step` (plain calls) or one that wraps each step as a
Prefect task (``tasks/steps.py``). The order of the steps and of the writes is here only.

Audit first: the observation, the forecasts and the decision are committed to the store
*before* the connector is called; the connector's outcome is recorded after it. A crash in
between leaves a decision with a ``pending`` action that the next cycle reports.

What carries over between cycles is one :class:`~planner_core.state.CycleState`: with a store
it is loaded at the start of the cycle and saved at the end, under the deployment's cycle lock.
"""

from __future__ import annotations

import contextlib
import logging
import math
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from planner_core.config import PlannerConfig, RolloutBehaviour
from planner_core.connectors.base import gate_rollout
from planner_core.policies import policy_for
from planner_core.ports import Clock, Connector, CycleLockHeld, MetricsSource
from planner_core.profiles import Profile
from planner_core.records import (
    SERIES,
    Corrections,
    Decision,
    LoadForecast,
    Observation,
    Replicas,
    ScalingOutcome,
    SeriesForecast,
    is_missing,
)
from planner_core.redaction import redact_text
from planner_core.safety import bound_scale_down, guard_stale, with_metrics_age
from planner_core.sizing import compute_corrections, fit_budget, size_pools
from planner_core.stabilizer import Stabilizer
from planner_core.state import BURST_MEMORY, BurstPattern, CycleState, StateQuery
from planner_core.surge import queue_check, queue_check_window_s, queue_decision

log = logging.getLogger("sla_planner.cycle")

STEPS = ("observe", "predict", "size", "stabilise", "scale", "record")
__all__ = ["BURST_MEMORY", "STEPS", "CycleResult", "CycleState", "PlanningCycle", "call_step"]

T = TypeVar("T")


class LoadPredictorPort(Protocol):
    def observe(self, obs: Observation) -> None: ...
    def predict(self) -> LoadForecast: ...
    def get_state(self) -> dict[str, Any]: ...


class PendingActionPort(Protocol):
    run_id: int
    kind: str
    targets: Replicas


class StorePort(Protocol):
    """Every store method the cycle calls (:class:`planner_core.store.Store` implements them)."""

    def cycle_lock(self, deployment_id: int, wait_s: float = 0.0) -> AbstractContextManager[Any]: ...
    def pending_actions(self, deployment_id: int) -> Sequence[PendingActionPort]: ...
    def close_abandoned_runs(self, deployment_id: int, ended_at: datetime) -> int: ...
    def load_cycle_state(self, query: StateQuery) -> CycleState: ...
    def save_cycle_state(self, deployment_id: int, state: CycleState, predictor: str, saved_at: datetime) -> None: ...
    def begin_run(
        self,
        deployment_id: int,
        trigger: str,
        config: dict[str, Any],
        started_at: datetime,
        flow_run_id: str | None = None,
        reason: str | None = None,
    ) -> int: ...
    def record_observation(self, run_id: int, obs: Observation) -> int: ...
    def record_predictions(self, run_id: int, forecasts: Mapping[str, SeriesForecast]) -> None: ...
    def record_decision(self, run_id: int, decision: Decision, dry_run: bool) -> int: ...
    def record_action_requested(
        self, decision_id: int, connector: str, targets: Replicas, requested_at: datetime
    ) -> int: ...
    def record_action_outcome(self, action_id: int, outcome: ScalingOutcome) -> None: ...
    def finish_run(self, run_id: int, status: str, ended_at: datetime, error: str | None = None) -> None: ...


class StepRunner(Protocol):
    """Runs one named step: ``runner("observe", fn, *args)`` returns ``fn(*args)``."""

    def __call__(self, name: str, fn: Callable[..., T], /, *args: Any) -> T: ...


def call_step(name: str, fn: Callable[..., T], /, *args: Any) -> T:
    """The plain step runner (replay, ``run-once``)."""
    return fn(*args)


class MetricsUnavailable(RuntimeError):
    """The metrics source could not be read; ``observation`` says why (quality ``error``)."""

    def __init__(self, observation: Observation) -> None:
        self.observation = observation
        super().__init__(f"metrics unavailable: {observation.error or observation.quality}")


@dataclass
class CycleResult:
    status: str  # "ok", "held", "no_operation", "error", "skipped_locked"
    window_start: datetime
    window_end: datetime
    run_id: int | None = None
    # ids of the rows the cycle wrote (None without a store)
    observation_id: int | None = None
    decision_id: int | None = None
    action_id: int | None = None
    observation: Observation | None = None
    forecast: LoadForecast | None = None
    corrections: Corrections | None = None
    decision: Decision | None = None
    outcome: ScalingOutcome | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The steps (pure where they can be)
# --------------------------------------------------------------------------------------------


def observe(metrics: MetricsSource, connector: Connector, window_start: datetime, window_end: datetime) -> Observation:
    """Observe the last interval and attach the replicas the cluster runs now. A source that
    could not be read at all raises :class:`MetricsUnavailable` (the step may be retried).
    Data too far from the window end is dropped (:func:`planner_core.safety.guard_stale`)."""
    observation = guard_stale(metrics.observe(window_start, window_end), (window_end - window_start).total_seconds())
    if observation.quality == "error":
        raise MetricsUnavailable(observation)
    current = connector.current_replicas()
    if observation.current != current and (current.prefill is not None or current.decode is not None):
        observation = replace(observation, current=current)
    return observation


def predict(
    predictor: LoadPredictorPort,
    observation: Observation,
    recent_bursts: Sequence[BurstPattern] = (),
    idle_s: float = 0.0,
    idle_cooldown_s: float = 0.0,
) -> LoadForecast:
    """Feed the observation to the load predictor, then forecast the next interval.

    The forecast also carries the burst patterns of the recent intervals: bursts recur, and
    one calm interval should not take away the headroom the last burst needed.

    ``idle_s`` is how long traffic has been absent (this interval included). Until it reaches
    ``idle_cooldown_s`` the forecast is withheld and the sizing holds: an idle minute between
    bursts is not a reason to shed the capacity the next burst needs, but traffic that has
    stopped for the cooldown lets the pools go down."""
    predictor.observe(observation)
    if not observation.has_load():
        # No data is not zero traffic: without this interval's load the sizing holds.
        return LoadForecast(math.nan, math.nan, math.nan, predictor=f"none ({observation.quality})")
    if 0 < idle_s < idle_cooldown_s:
        return LoadForecast(
            math.nan, math.nan, math.nan, predictor=f"none (idle {idle_s:.0f} s < cooldown {idle_cooldown_s:.0f} s)"
        )
    forecast = predictor.predict()
    # Patterns counted at another step (the source changed) would be scaled wrongly: skip them.
    patterns = tuple(counts for counts, window_s in recent_bursts if window_s == observation.arrival_window_s)
    if observation.arrival_counts:
        patterns += (observation.arrival_counts,)
    if patterns:
        forecast = replace(forecast, burst_patterns=patterns, burst_window_s=observation.arrival_window_s)
    if observation.isl_histogram:
        forecast = replace(forecast, isl_histogram=observation.isl_histogram)
    if observation.inflight_requests is not None:
        forecast = replace(
            forecast, inflight_requests=observation.inflight_requests, queued_requests=observation.queued_requests
        )
    return forecast


def decide(
    forecast: LoadForecast,
    observation: Observation,
    profile: Profile,
    config: PlannerConfig,
) -> tuple[Corrections, Decision]:
    """Correction factors from the observation, then the pure sizing of each pool (before the
    GPU budget, which :func:`stabilise` fits after stabilisation), with the data's age on it."""
    corrections = compute_corrections(observation, profile, config, observation.current.decode)
    sized = size_pools(forecast, profile, config, corrections, observation.current)
    return corrections, with_metrics_age(sized, observation, float(config.adjustment_interval_s))


def hold_scale_down(decision: Decision, stabilizer: Stabilizer | None, now: datetime) -> Decision:
    """Scale-down stabilisation (``default``): hold the highest target of the recent window."""
    if stabilizer is None or decision.action != "scale":
        return decision
    return stabilizer.apply(decision, now)


def pin(decision: Decision, pinned: Replicas, config: PlannerConfig) -> Decision:
    """An operator's pinned replicas replace the sized ones (a pool left None keeps its sizing);
    the sized numbers stay on the decision for the audit. Pinned replicas must fit the budget."""
    prefill = pinned.prefill if pinned.prefill is not None else decision.prefill_replicas
    decode = pinned.decode if pinned.decode is not None else decision.decode_replicas
    prefill_gpus = (prefill or 0) * config.prefill_engine_num_gpu
    decode_gpus = (decode or 0) * config.decode_engine_num_gpu
    if prefill_gpus + decode_gpus > config.max_gpu_budget:
        raise ValueError(
            f"pinned replicas: prefill {prefill} and decode {decode} need {prefill_gpus + decode_gpus} GPUs, "
            f"over --max-gpu-budget {config.max_gpu_budget}; pin fewer replicas or raise the budget"
        )
    return replace(
        decision,
        action="scale",
        reason=f"pinned by hand to prefill {prefill}, decode {decode} (sizing said: {decision.reason})",
        prefill_replicas=prefill,
        decode_replicas=decode,
        prefill_gpus=prefill_gpus,
        decode_gpus=decode_gpus,
        details={
            **decision.details,
            "pinned_prefill": pinned.prefill,
            "pinned_decode": pinned.decode,
            "sized_action": decision.action,
            "sized_prefill_replicas": decision.prefill_replicas,
            "sized_decode_replicas": decision.decode_replicas,
        },
    )


def stabilise(
    decision: Decision,
    stabilizer: Stabilizer | None,
    now: datetime,
    pinned: Replicas | None,
    config: PlannerConfig,
    current: Replicas | None = None,
) -> Decision:
    """Scale-down stabilisation, the per-cycle scale-down bound against the ``current``
    replicas, then the GPU budget (its one application, by the policy's rule: a hard limit, so
    a lowered budget shrinks a pool at once), then an operator's pinned replicas (manual
    re-plans, taken as given)."""
    bound = policy_for(config.policy).scale_down_max_percent(config)
    decision = hold_scale_down(decision, stabilizer, now)
    decision = fit_budget(bound_scale_down(decision, current or Replicas(None, None), bound))
    return pin(decision, pinned, config) if pinned is not None else decision


def scale(
    connector: Connector,
    targets: Replicas,
    decision_id: int | None,
    now: datetime,
    while_rolling_out: RolloutBehaviour = RolloutBehaviour.APPLY,
) -> ScalingOutcome:
    """Hand the targets to the connector (idempotent: the same targets twice scale once).

    While the previous change is still rolling out, ``while_rolling_out`` decides what goes
    through (:func:`planner_core.connectors.gate_rollout`); a skip is a ``skipped`` outcome
    whose ``error`` says why."""
    allowed, why = gate_rollout(connector, targets, while_rolling_out)
    if allowed is None:
        return ScalingOutcome(
            connector=connector.name, requested=targets, outcome="skipped", requested_at=now, error=why
        )
    if why is not None:
        log.info("%s", why)
    return connector.apply(allowed, decision_id, now)


def series_forecasts(forecast: LoadForecast) -> dict[str, SeriesForecast]:
    """The three per-series predictions as the store records them."""
    return {
        name: SeriesForecast(
            predictor=forecast.predictor,
            value=float(getattr(forecast, name)),
            upper=float(
                getattr(forecast, f"{name}_upper")
                if getattr(forecast, f"{name}_upper") is not None
                else getattr(forecast, name)
            ),
        )
        for name in SERIES
    }


def idle_cooldown_s(config: PlannerConfig) -> float:
    """How long traffic must be absent before the pools may go down (the policy's rule)."""
    return policy_for(config.policy).idle_cooldown_s(config)


# --------------------------------------------------------------------------------------------
# The cycle
# --------------------------------------------------------------------------------------------


@dataclass
class PlanningCycle:
    """Everything one deployment's cycle needs; :meth:`run` runs one cycle end to end.

    The load predictor is either given (``predictor``: a long-lived caller's, kept in memory)
    or built from the saved state the store loads with the cycle state (``predictor_factory``,
    called under the cycle lock)."""

    config: PlannerConfig
    profile: Profile
    metrics: MetricsSource
    connector: Connector
    clock: Clock
    predictor: LoadPredictorPort | None = None
    store: StorePort | None = None
    deployment_id: int | None = None
    stabilizer: Stabilizer | None = None
    trigger: str = "schedule"
    pinned: Replicas | None = None  # replicas an operator pinned by hand (manual re-plan)
    reason: str | None = None  # why an operator started this cycle (stored with the run)
    predictor_factory: Callable[[dict[str, dict[str, Any]] | None], LoadPredictorPort] | None = None
    step: StepRunner = call_step
    state: CycleState | None = None  # None: load it from the store (or start empty) on the first run
    # the last cycle's mean prompt length: what a queue check weighs the queue with when its
    # few seconds of data hold no finished prompt
    _last_isl: float | None = field(default=None, init=False, repr=False)

    @classmethod
    def default_stabilizer(cls, config: PlannerConfig) -> Stabilizer | None:
        return policy_for(config.policy).stabilizer(config)

    @property
    def recent_bursts(self) -> tuple[BurstPattern, ...]:
        return self.state.recent_bursts if self.state is not None else ()

    @property
    def idle_s(self) -> float:
        return self.state.idle_s if self.state is not None else 0.0

    def run(
        self, flow_run_id: str | None = None, window_end: datetime | None = None, lock_wait_s: float = 0.0
    ) -> CycleResult:
        """One cycle. With a store, it runs under the deployment's cycle lock: a cycle that cannot
        get the lock within ``lock_wait_s`` returns ``status="skipped_locked"`` and changes nothing."""
        end = window_end or self.clock.now()
        try:
            with self._lock(lock_wait_s):
                return self._run(end, flow_run_id)
        except CycleLockHeld as busy:
            start = end - timedelta(seconds=self.config.adjustment_interval_s)
            return CycleResult(status="skipped_locked", window_start=start, window_end=end, error=str(busy))

    @contextlib.contextmanager
    def _lock(self, wait_s: float) -> Iterator[None]:
        if self.store is None or self.deployment_id is None:
            yield
            return
        with self.store.cycle_lock(self.deployment_id, wait_s=wait_s):
            yield

    def _run(self, end: datetime, flow_run_id: str | None) -> CycleResult:
        start = end - timedelta(seconds=self.config.adjustment_interval_s)
        result = CycleResult(status="ok", window_start=start, window_end=end)
        store = self.store if self.deployment_id is not None else None
        run_id = None
        if store is not None and self.deployment_id is not None:
            result.notes.extend(self._recover_from_crash(store, self.deployment_id, end))
            self._load_state(store, self.deployment_id, end)
            run_id = store.begin_run(
                self.deployment_id, self.trigger, self.config.model_dump(mode="json"), end, flow_run_id, self.reason
            )
        result.run_id = run_id
        try:
            self._run_steps(result, store if run_id is not None else None, run_id, end)
        except Exception as exc:
            result.status = "error"
            result.error = redact_text(f"{type(exc).__name__}: {exc}")  # stored and shown: no URL password
            log.error("planning cycle failed: %s\n%s", result.error, redact_text(traceback.format_exc()))
        if store is not None and run_id is not None:
            store.finish_run(run_id, result.status, self.clock.now(), result.error)
        return result

    def check_queue(self, now: datetime | None = None) -> CycleResult | None:
        """The queue check between cycles (:mod:`planner_core.surge`): read the frontend's last
        few seconds and, when prompts wait past the TTFT budget, add prefill engines at once.

        Returns None when the check did not scale (nothing is written then: a check runs every
        few seconds). When it scales, it is recorded like a cycle, trigger ``queue``: the run, the
        decision with the check's inputs and numbers (no observation row: those are whole
        intervals), the action and its outcome, audit first; and the target joins the stabiliser's
        memory, so the next cycle keeps it for the scale-down window. Under the deployment's
        cycle lock: skipped while a cycle holds it."""
        if policy_for(self.config.policy).queue_check_interval_s(self.config) <= 0:
            return None
        end = now or self.clock.now()
        window_s = queue_check_window_s(self.config)
        start = end - timedelta(seconds=window_s)
        try:
            observation = guard_stale(self.metrics.observe(start, end), window_s)
        except Exception as exc:  # a failed read only skips this check; the cycle reports the source
            log.debug("queue check: metrics unavailable: %s", exc)
            return None
        if observation.quality == "error":
            return None
        targets, ready = self.connector.current_replicas(), self.connector.ready_replicas()
        if targets.prefill is None:
            return None
        isl = observation.isl if observation.isl is not None and observation.isl > 0 else self._last_isl
        check = queue_check(
            queued_requests=observation.queued_requests,
            num_req=observation.num_req,
            window_s=window_s,
            isl=isl,
            ready_prefill=ready.prefill if ready.prefill is not None else targets.prefill,
            target_prefill=targets.prefill,
            target_decode=targets.decode,
            profile=self.profile,
            config=self.config,
            isl_histogram=observation.isl_histogram,
        )
        if check.prefill_replicas is None:
            return None
        decision = queue_decision(check, self.config, targets.decode, observation.num_req, window_s)
        result = CycleResult(status="ok", window_start=start, window_end=end, observation=observation)
        result.decision = decision
        try:
            with self._lock(0.0):
                self._apply_queue_decision(result, end)
        except CycleLockHeld:
            return None
        return result

    def _apply_queue_decision(self, result: CycleResult, now: datetime) -> None:
        store = self.store if self.deployment_id is not None else None
        decision = result.decision
        assert decision is not None
        run_id = None
        if store is not None and self.deployment_id is not None:
            run_id = store.begin_run(self.deployment_id, "queue", self.config.model_dump(mode="json"), now)
            result.run_id = run_id
            # No observation row: the rows hold whole intervals, which the predictors, the idle
            # time and the views read back. The check's inputs are on its decision instead.
            result.decision_id = store.record_decision(run_id, decision, self.config.no_operation)
        if self.config.no_operation:
            result.status = "no_operation"
        else:
            outcome = self._scale_recorded(result, store, decision, now)
            if self.stabilizer is not None and outcome.outcome == "applied":
                self.stabilizer.note(now, decision.prefill_replicas, decision.decode_replicas)
                if self.state is not None:
                    self.state.stabilizer_recent = self.stabilizer.recent
        if store is not None and run_id is not None:
            if self.state is not None and self.deployment_id is not None:
                store.save_cycle_state(self.deployment_id, self.state, self.config.load_predictor, now)
            store.finish_run(run_id, result.status, self.clock.now(), result.error)

    def _recover_from_crash(self, store: StorePort, deployment_id: int, now: datetime) -> list[str]:
        """Report scaling the database knows of but never saw finish, and close dead runs."""
        notes = [
            f"previous run {p.run_id}: scaling {p.kind.replace('_', ' ')} "
            f"(prefill {p.targets.prefill}, decode {p.targets.decode}); check the cluster"
            for p in store.pending_actions(deployment_id)
        ]
        for note in notes:
            log.warning(note)
        store.close_abandoned_runs(deployment_id, now)
        return notes

    def _load_state(self, store: StorePort, deployment_id: int, now: datetime) -> None:
        """A new process (each Prefect flow run is one) picks up what the last cycles carried:
        read once, under the lock, so the decision equals the uninterrupted planner's."""
        if self.state is not None:
            return
        self.state = store.load_cycle_state(
            StateQuery(
                deployment_id=deployment_id,
                now=now,
                interval_s=float(self.config.adjustment_interval_s),
                idle_cooldown_s=idle_cooldown_s(self.config),
                stabilization_window_s=self.stabilizer.window_s if self.stabilizer is not None else None,
                predictor=self.config.load_predictor,
            )
        )
        if self.stabilizer is not None and not self.stabilizer.has_memory:
            self.stabilizer.remember(self.state.stabilizer_recent)

    def _predictor(self) -> LoadPredictorPort:
        if self.predictor is None:
            if self.predictor_factory is None:
                raise ValueError("predictor: give the cycle a load predictor or a predictor_factory")
            self.predictor = self.predictor_factory(self.state.predictor_state if self.state else None)
        return self.predictor

    def _run_steps(self, result: CycleResult, store: StorePort | None, run_id: int | None, now: datetime) -> None:
        step, config = self.step, self.config
        state = self.state = self.state or CycleState()
        predictor = self._predictor()
        try:
            observation = step("observe", observe, self.metrics, self.connector, result.window_start, result.window_end)
        except MetricsUnavailable as failed:
            # Recorded as what was seen; nothing is decided or scaled on it.
            result.observation = failed.observation
            if store is not None and run_id is not None:
                result.observation_id = store.record_observation(run_id, failed.observation)
            raise
        result.observation = observation
        if store is not None and run_id is not None:
            result.observation_id = store.record_observation(run_id, observation)
        if observation.isl is not None and observation.isl > 0:
            self._last_isl = observation.isl

        if observation.num_req == 0:
            state.idle_s += observation.interval_s
        elif not is_missing(observation.num_req):
            state.idle_s = 0.0
        forecast = step(
            "predict", predict, predictor, observation, state.recent_bursts, state.idle_s, idle_cooldown_s(config)
        )
        if observation.arrival_counts:
            state.remember_burst((observation.arrival_counts, observation.arrival_window_s))
        result.forecast = forecast
        if store is not None and run_id is not None and forecast.is_usable():
            store.record_predictions(run_id, series_forecasts(forecast))

        corrections, sized = step("size", decide, forecast, observation, self.profile, config)
        decision = step("stabilise", stabilise, sized, self.stabilizer, now, self.pinned, config, observation.current)
        result.corrections, result.decision = corrections, decision

        dry_run = config.no_operation
        decision_id = store.record_decision(run_id, decision, dry_run) if store and run_id is not None else None
        result.decision_id = decision_id
        if decision.action != "scale":
            result.status = "held"
        elif dry_run:
            result.status = "no_operation"
        else:
            self._scale_recorded(result, store, decision, now)

        step("record", self._record_state, store, now)

    def _scale_recorded(
        self, result: CycleResult, store: StorePort | None, decision: Decision, now: datetime
    ) -> ScalingOutcome:
        """Audit first: the scaling request is recorded, then the connector is called (the
        ``scale`` step), then its outcome is recorded, a failure included; the cycle and the
        queue check both scale through here. Sets the result's action id, outcome and status."""
        if store is not None and result.decision_id is not None:
            result.action_id = store.record_action_requested(
                result.decision_id, self.connector.name, decision.targets, now
            )
        try:
            outcome = self.step(
                "scale",
                scale,
                self.connector,
                decision.targets,
                result.decision_id,
                now,
                self.config.rollout_behaviour(),
            )
        except Exception as exc:  # the outcome is recorded either way
            log.exception("connector %s failed", self.connector.name)
            outcome = ScalingOutcome(
                connector=self.connector.name,
                requested=decision.targets,
                outcome="error",
                requested_at=now,
                error=f"{type(exc).__name__}: {exc}",
            )
        result.outcome = outcome
        if store is not None and result.action_id is not None:
            store.record_action_outcome(result.action_id, outcome)
        if outcome.outcome == "skipped" and outcome.error:
            result.notes.append(outcome.error)
        if outcome.outcome == "error":
            result.status, result.error = "error", outcome.error
        return outcome

    def _record_state(self, store: StorePort | None, now: datetime) -> None:
        """Keep what the next cycle needs: in memory, and in the store when there is one."""
        state = self.state or CycleState()
        if self.stabilizer is not None:
            state.stabilizer_recent = self.stabilizer.recent
        if store is not None and self.deployment_id is not None:
            state.predictor_state = self._predictor().get_state()
            store.save_cycle_state(self.deployment_id, state, self.config.load_predictor, now)
