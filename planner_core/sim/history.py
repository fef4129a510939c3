"""What-if over stored history: what a policy or predictor would have decided on the observations
a real deployment recorded in a past window.

The production cycle runs over the stored observations, in order, with a fresh predictor and an
in-memory connector that starts at the replicas the deployment really ran; nothing is written
to the store. The recorded decisions and the what-if's are compared interval by interval with
what the observed load needed: the replicas the sizing gives for the load that actually came
(the load a perfect forecast would have predicted).

Latency corrections are off in the what-if: the stored TTFT and ITL were measured on the
replicas that really ran, not on the what-if's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from planner_core.config import PlannerConfig
from planner_core.cycle import PlanningCycle
from planner_core.ports import DeploymentInfo, SimulatedClock
from planner_core.profiles import Profile
from planner_core.records import LoadForecast, Observation, Replicas, ScalingOutcome
from planner_core.sizing import size


class HistoryStore(Protocol):
    def deployment_id(self, name: str, namespace: str | None = None) -> int | None: ...
    def stored_cycles(
        self, deployment_id: int, since: datetime, until: datetime
    ) -> list[tuple[Observation, Replicas | None]]: ...


class StoredFrontend:
    """MetricsSource that answers with the stored observation of each window."""

    def __init__(self, observations: list[Observation]) -> None:
        self.by_end = {o.window_end: o for o in observations}

    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        return self.by_end[window_end]


class WhatIfConnector:
    """Connector that only remembers the replicas it was asked for."""

    name = "what-if"

    def __init__(self, start: Replicas) -> None:
        self.replicas = start

    def current_replicas(self) -> Replicas:
        return self.replicas

    def ready_replicas(self) -> Replicas:
        return self.replicas

    def rolling_out(self) -> str | None:
        return None  # what-if replicas are there the moment they are asked for

    def validate(self) -> DeploymentInfo:
        return DeploymentInfo(None, None, None)

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        before = self.replicas
        self.replicas = Replicas(
            targets.prefill if targets.prefill is not None else before.prefill,
            targets.decode if targets.decode is not None else before.decode,
        )
        return ScalingOutcome(
            self.name, targets, "applied" if self.replicas != before else "unchanged", requested_at, requested_at
        )


@dataclass
class HistoryReplay:
    deployment: str
    policy: str
    predictor: str
    intervals: int
    recorded_gpu_hours: float
    whatif_gpu_hours: float
    needed_gpu_hours: float
    recorded_short_intervals: int  # intervals that ran fewer replicas than their load needed
    whatif_short_intervals: int
    recorded_changes: int
    whatif_changes: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "rows"}


def _gpus(r: Replicas | None, config: PlannerConfig) -> int:
    if r is None:
        return 0
    return (r.prefill or 0) * config.prefill_engine_num_gpu + (r.decode or 0) * config.decode_engine_num_gpu


def _short(running: Replicas | None, needed: Replicas | None) -> bool:
    if running is None or needed is None:
        return False
    return any(
        n is not None and (have or 0) < n
        for have, n in ((running.prefill, needed.prefill), (running.decode, needed.decode))
    )


def replay_history(
    store: HistoryStore,
    deployment: str,
    since: datetime,
    until: datetime,
    config: PlannerConfig,
    profile: Profile,
    predictor: Any,
) -> HistoryReplay:
    """Run ``config``'s policy with ``predictor`` over ``deployment``'s observations in [since, until)."""
    ns, _, name = deployment.rpartition("/")
    deployment_id = store.deployment_id(name, ns or None)
    if deployment_id is None:
        raise ValueError(f"deployment: no stored deployment named {deployment!r}; see `sla-planner history`")
    cycles = store.stored_cycles(deployment_id, since, until)
    if not cycles:
        raise ValueError(f"since/until: {deployment} has no observations between {since} and {until}")
    config = config.model_copy(update={"no_correction": True})
    observations = [obs for obs, _ in cycles]
    first = observations[0].current
    connector = WhatIfConnector(first)
    clock = SimulatedClock(observations[0].window_end)
    cycle = PlanningCycle(
        config=config,
        profile=profile,
        metrics=StoredFrontend(observations),
        connector=connector,
        clock=clock,
        predictor=predictor,
        stabilizer=PlanningCycle.default_stabilizer(config),
        trigger="replay",
    )
    rows: list[dict[str, Any]] = []
    recorded_running: Replicas | None = first
    whatif_running: Replicas | None = first
    totals = {"recorded": 0.0, "whatif": 0.0, "needed": 0.0}
    short = {"recorded": 0, "whatif": 0}
    changes = {"recorded": 0, "whatif": 0}
    for obs, recorded in cycles:
        hours = obs.interval_s / 3600.0
        needed = None
        if obs.has_load() and not math.isnan(float(obs.num_req or 0.0)):
            load = LoadForecast(
                float(obs.num_req or 0.0),
                float(obs.isl if obs.isl is not None else config.isl),
                float(obs.osl if obs.osl is not None else config.osl),
                burst_patterns=(obs.arrival_counts,) if obs.arrival_counts else (),
                burst_window_s=obs.arrival_window_s,
            )
            needed = size(load, profile, config).targets
        # What ran during this interval: the replicas decided at the end of the previous one.
        actual = obs.current if obs.current.prefill is not None or obs.current.decode is not None else recorded_running
        for key, running in (("recorded", actual), ("whatif", whatif_running)):
            totals[key] += _gpus(running, config) * hours
            short[key] += _short(running, needed)
        totals["needed"] += _gpus(needed, config) * hours
        clock.set(obs.window_end)
        result = cycle.run(window_end=obs.window_end)
        decided = result.decision.targets if result.decision and result.decision.action == "scale" else None
        new_whatif = connector.current_replicas()
        changes["whatif"] += new_whatif != whatif_running
        if recorded is not None:
            changes["recorded"] += recorded != recorded_running
            recorded_running = recorded
        rows.append(
            {
                "window_end": obs.window_end.isoformat(),
                "observed_num_req": obs.num_req,
                "running_prefill": actual.prefill if actual else None,
                "running_decode": actual.decode if actual else None,
                "needed_prefill": needed.prefill if needed else None,
                "needed_decode": needed.decode if needed else None,
                "recorded_prefill": recorded.prefill if recorded else None,
                "recorded_decode": recorded.decode if recorded else None,
                "whatif_prefill": decided.prefill if decided else None,
                "whatif_decode": decided.decode if decided else None,
            }
        )
        whatif_running = new_whatif
    return HistoryReplay(
        deployment=deployment,
        policy=config.policy.value,
        predictor=config.load_predictor,
        intervals=len(cycles),
        recorded_gpu_hours=totals["recorded"],
        whatif_gpu_hours=totals["whatif"],
        needed_gpu_hours=totals["needed"],
        recorded_short_intervals=short["recorded"],
        whatif_short_intervals=short["whatif"],
        recorded_changes=changes["recorded"],
        whatif_changes=changes["whatif"],
        rows=rows,
    )
