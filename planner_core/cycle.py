"""The planning cycle, written once: fetch -> predict -> size -> enforce -> scale -> persist.

Three callers run this same code: the Prefect ``plan`` flow (each step wrapped as a task),
``sla-planner run-once``, and the closed-loop replay (simulated clock, cluster and frontend).
Each step is a small function over the ports in :mod:`planner_core.ports`, so a caller can
wrap them one by one; :meth:`PlanningCycle.run` chains them for callers that don't need to.

Audit first: the observation, the forecasts and the decision are committed to the store
*before* the connector is called; the connector's outcome is recorded after it. A crash in
between leaves a decision with a ``pending`` action that the next cycle reports.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from planner_core.config import PlannerConfig, Policy
from planner_core.ports import Clock, Connector, MetricsSource
from planner_core.profiles import Profile
from planner_core.records import (
    Corrections,
    Decision,
    LoadForecast,
    Observation,
    Replicas,
    ScalingOutcome,
    SeriesForecast,
    is_missing,
)
from planner_core.sizing import compute_corrections, size
from planner_core.stabilizer import Stabilizer

log = logging.getLogger("sla_planner.cycle")

SERIES = ("num_req", "isl", "osl")
BURST_MEMORY = 4  # intervals whose burst pattern the sizing plans for (this one and the last three)


class LoadPredictorPort(Protocol):
    def observe(self, obs: Observation) -> None: ...
    def predict(self) -> LoadForecast: ...
    def get_state(self) -> dict[str, Any]: ...


class StorePort(Protocol):
    """The part of :class:`planner_core.store.Store` the cycle uses."""

    def begin_run(
        self,
        deployment_id: int,
        trigger: str,
        config: dict[str, Any],
        started_at: datetime,
        flow_run_id: str | None = None,
    ) -> int: ...
    def record_observation(self, run_id: int, obs: Observation) -> int: ...
    def record_predictions(self, run_id: int, forecasts: Mapping[str, SeriesForecast]) -> None: ...
    def record_decision(self, run_id: int, decision: Decision, dry_run: bool) -> int: ...
    def record_action_requested(
        self, decision_id: int, connector: str, targets: Replicas, requested_at: datetime
    ) -> int: ...
    def record_action_outcome(self, action_id: int, outcome: ScalingOutcome) -> None: ...
    def save_predictor_state(
        self, deployment_id: int, series: str, predictor: str, state: dict[str, Any], updated_at: datetime
    ) -> None: ...
    def finish_run(self, run_id: int, status: str, ended_at: datetime, error: str | None = None) -> None: ...


@dataclass
class CycleResult:
    status: str  # "ok", "held", "no_operation", "error"
    window_start: datetime
    window_end: datetime
    run_id: int | None = None
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


def fetch(metrics: MetricsSource, connector: Connector, window_start: datetime, window_end: datetime) -> Observation:
    """Observe the last interval and attach the replicas the cluster runs now."""
    observation = metrics.observe(window_start, window_end)
    current = connector.current_replicas()
    if observation.current != current and (current.prefill is not None or current.decode is not None):
        observation = replace(observation, current=current)
    return observation


def predict(
    predictor: LoadPredictorPort,
    observation: Observation,
    recent_bursts: Sequence[tuple[tuple[int, ...], float]] = (),
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
    return forecast


def decide(
    forecast: LoadForecast,
    observation: Observation,
    profile: Profile,
    config: PlannerConfig,
) -> tuple[Corrections, Decision]:
    """Correction factors from the observation, then the pure sizing."""
    corrections = compute_corrections(observation, profile, config, observation.current.decode)
    return corrections, size(forecast, profile, config, corrections, observation.current)


def enforce(decision: Decision, stabilizer: Stabilizer | None, now: datetime) -> Decision:
    """Controller-level limits on top of the sizing (scale-down stabilisation for ``default``)."""
    if stabilizer is None or decision.action != "scale":
        return decision
    return stabilizer.apply(decision, now)


def scale(connector: Connector, decision: Decision, decision_id: int | None, now: datetime) -> ScalingOutcome:
    """Hand the targets to the connector; an exception becomes an ``error`` outcome."""
    try:
        return connector.apply(decision.targets, decision_id, now)
    except Exception as exc:  # the outcome is recorded either way
        log.exception("connector %s failed", connector.name)
        return ScalingOutcome(
            connector=connector.name,
            requested=decision.targets,
            outcome="error",
            requested_at=now,
            error=f"{type(exc).__name__}: {exc}",
        )


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


# --------------------------------------------------------------------------------------------
# The cycle
# --------------------------------------------------------------------------------------------


@dataclass
class PlanningCycle:
    """Everything one deployment's cycle needs; :meth:`run` runs one cycle end to end."""

    config: PlannerConfig
    profile: Profile
    metrics: MetricsSource
    connector: Connector
    clock: Clock
    predictor: LoadPredictorPort
    store: StorePort | None = None
    deployment_id: int | None = None
    stabilizer: Stabilizer | None = None
    trigger: str = "schedule"
    # (arrival_counts, arrival_window_s) of the last intervals, newest last
    recent_bursts: deque[tuple[tuple[int, ...], float]] = field(
        default_factory=lambda: deque(maxlen=BURST_MEMORY - 1)
    )
    idle_s: float = 0.0  # how long traffic has been absent, as of the last observation
    _memory_restored: bool = field(default=False, init=False, repr=False)

    @classmethod
    def default_stabilizer(cls, config: PlannerConfig) -> Stabilizer | None:
        if config.policy == Policy.DYNAMO or config.scale_down_stabilization_s <= 0:
            return None
        return Stabilizer(window_s=config.scale_down_stabilization_s)

    def run(
        self, flow_run_id: str | None = None, window_end: datetime | None = None, lock_wait_s: float = 0.0
    ) -> CycleResult:
        """One cycle. With a store, it runs under the deployment's cycle lock: a cycle that cannot
        get the lock within ``lock_wait_s`` returns ``status="skipped_locked"`` and changes nothing."""
        end = window_end or self.clock.now()
        if self.store is None or self.deployment_id is None or not hasattr(self.store, "cycle_lock"):
            return self._run(end, flow_run_id)
        from planner_core.store import LockBusy

        try:
            with self.store.cycle_lock(self.deployment_id, wait_s=lock_wait_s):
                return self._run(end, flow_run_id)
        except LockBusy as busy:
            start = end - timedelta(seconds=self.config.adjustment_interval_s)
            return CycleResult(status="skipped_locked", window_start=start, window_end=end, error=str(busy))

    def _run(self, end: datetime, flow_run_id: str | None) -> CycleResult:
        start = end - timedelta(seconds=self.config.adjustment_interval_s)
        result = CycleResult(status="ok", window_start=start, window_end=end)
        run_id = None
        if self.store is not None and self.deployment_id is not None:
            result.notes.extend(self._recover_from_crash(end))
            self._restore_memory(end)
            run_id = self.store.begin_run(
                self.deployment_id, self.trigger, self.config.model_dump(mode="json"), end, flow_run_id
            )
        result.run_id = run_id
        try:
            self._run_steps(result, run_id, end)
        except Exception as exc:
            result.status = "error"
            result.error = f"{type(exc).__name__}: {exc}"
            log.error("planning cycle failed: %s\n%s", result.error, traceback.format_exc())
        if self.store is not None and run_id is not None:
            self.store.finish_run(run_id, result.status, self.clock.now(), result.error)
        return result

    def _recover_from_crash(self, now: datetime) -> list[str]:
        """Report scaling the database knows of but never saw finish, and close dead runs."""
        store, deployment_id = self.store, self.deployment_id
        if store is None or deployment_id is None or not hasattr(store, "pending_actions"):
            return []
        notes = [
            f"previous run {p.run_id}: scaling {p.kind.replace('_', ' ')} "
            f"(prefill {p.targets.prefill}, decode {p.targets.decode}); check the cluster"
            for p in store.pending_actions(deployment_id)
        ]
        for note in notes:
            log.warning(note)
        store.close_abandoned_runs(deployment_id, now)  # type: ignore[attr-defined]
        return notes

    def _idle_cooldown_s(self) -> float:
        # Dynamo skips every cycle whose metrics include a NaN, and the ISL/OSL means of an idle
        # interval are NaN: under --policy dynamo an idle deployment holds until traffic returns.
        return math.inf if self.config.policy == Policy.DYNAMO else float(self.config.idle_cooldown_s)

    def _restore_memory(self, now: datetime) -> None:
        """A new process (each Prefect flow run is one) picks up what the last cycles kept in
        memory: the recent burst patterns and the stabiliser's recent targets. Read once, from
        the rows the earlier cycles wrote, so the decision equals the uninterrupted planner's."""
        store, deployment_id = self.store, self.deployment_id
        if self._memory_restored or store is None or deployment_id is None:
            return
        self._memory_restored = True
        interval = timedelta(seconds=self.config.adjustment_interval_s)
        if not self.recent_bursts and hasattr(store, "recent_arrival_counts"):
            # The window ends of the intervals the in-memory deque would hold now.
            since = now - interval * (BURST_MEMORY - 1) - interval / 2
            self.recent_bursts.extend(store.recent_arrival_counts(deployment_id, since, now))
        cooldown = self._idle_cooldown_s()
        # (an infinite cooldown holds on any idle interval: nothing to count)
        if 0 < cooldown < math.inf and self.idle_s == 0.0 and hasattr(store, "load_histories"):
            since = now - timedelta(seconds=cooldown) - interval
            counts = [v for _, v in store.load_histories(deployment_id, ("num_req",), since=since)["num_req"]]
            while counts and counts[-1] == 0:
                self.idle_s += interval.total_seconds()
                counts.pop()
        if self.stabilizer is not None and not self.stabilizer.has_memory and hasattr(store, "recent_targets"):
            since = now - timedelta(seconds=self.stabilizer.window_s)
            self.stabilizer.remember(store.recent_targets(deployment_id, since, now))

    def _run_steps(self, result: CycleResult, run_id: int | None, now: datetime) -> None:
        store = self.store if run_id is not None else None
        observation = fetch(self.metrics, self.connector, result.window_start, result.window_end)
        result.observation = observation
        if store is not None and run_id is not None:
            store.record_observation(run_id, observation)

        if observation.num_req == 0:
            self.idle_s += observation.interval_s
        elif not is_missing(observation.num_req):
            self.idle_s = 0.0
        forecast = predict(self.predictor, observation, self.recent_bursts, self.idle_s, self._idle_cooldown_s())
        if observation.arrival_counts:
            self.recent_bursts.append((observation.arrival_counts, observation.arrival_window_s))
        result.forecast = forecast
        if store is not None and run_id is not None and forecast.is_usable():
            store.record_predictions(run_id, series_forecasts(forecast))

        corrections, decision = decide(forecast, observation, self.profile, self.config)
        decision = enforce(decision, self.stabilizer, now)
        result.corrections, result.decision = corrections, decision

        dry_run = self.config.no_operation
        decision_id = store.record_decision(run_id, decision, dry_run) if store and run_id is not None else None
        if decision.action != "scale":
            result.status = "held"
        elif dry_run:
            result.status = "no_operation"
        else:
            action_id = (
                store.record_action_requested(decision_id, self.connector.name, decision.targets, now)
                if store is not None and decision_id is not None
                else None
            )
            outcome = scale(self.connector, decision, decision_id, now)
            result.outcome = outcome
            if store is not None and action_id is not None:
                store.record_action_outcome(action_id, outcome)
            if outcome.outcome == "error":
                result.status = "error"
                result.error = outcome.error

        if store is not None and self.deployment_id is not None:
            for series, state in self.predictor.get_state().items():
                store.save_predictor_state(self.deployment_id, series, self.config.load_predictor, state, now)


def build_load_predictor(config: PlannerConfig, store: Any = None, deployment_id: int | None = None) -> Any:
    """The deployment's load predictor, resumed from the store when it can be.

    Order: the serialised predictor state saved by the last cycle (no refit); else the
    observation history (replayed through a fresh predictor); else the warm-up trace
    (``--load-predictor-warmup-trace``); else empty."""
    from planner_core.predictors import LoadPredictor

    predictor = LoadPredictor(config)
    if store is not None and deployment_id is not None:
        states = {s: store.load_predictor_state(deployment_id, s, config.load_predictor) for s in SERIES}
        if all(state is not None for state in states.values()):
            try:
                predictor.load_state(states)
                return predictor
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                # A state written by another version (say, a different candidate list) must not
                # stop the planner: the observation history rebuilds the same forecasts.
                log.warning(
                    "saved %s predictor state does not fit this version (%s): rebuilding it from the "
                    "observation history",
                    config.load_predictor,
                    exc,
                )
                predictor = LoadPredictor(config)
        history = store.load_histories(deployment_id)
        if any(history.get(s) for s in SERIES):
            return LoadPredictor.from_history(config, history)
    if config.load_predictor_warmup_trace:
        predictor.warm_up_from_trace(config.load_predictor_warmup_trace, config.adjustment_interval_s)
    return predictor
