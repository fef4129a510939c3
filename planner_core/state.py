"""What one planning cycle hands to the next, as one value.

Besides the configuration, a decision depends on what earlier cycles saw: how long traffic has
been absent (the idle cooldown), the burst patterns of the last intervals (the default policy
sizes prefill for the worst of them), the scale-down stabiliser's recent targets, and the load
predictor's state. :class:`CycleState` is that value. A long-lived caller (the replay) keeps it
in memory; a caller that lives one cycle per process (a Prefect flow run, ``run-once``) has the
store load it at the start of the cycle and save it at the end (``StorePort.load_cycle_state`` /
``save_cycle_state``), under the deployment's cycle lock, so its decision equals the
uninterrupted planner's.

The store keeps the parts in the rows the cycle writes anyway (observations, decisions) and the
predictor's serialised state; :meth:`CycleState.from_rows` rebuilds the value from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

BURST_MEMORY = 4  # intervals whose burst pattern the sizing plans for (this one and the last three)

BurstPattern = tuple[tuple[int, ...], float]  # (arrival counts, counting window in seconds)
Target = tuple[datetime, int | None, int | None]  # (decided at, prefill, decode) before stabilisation


@dataclass
class CycleState:
    idle_s: float = 0.0  # how long traffic has been absent, as of the last observation
    recent_bursts: tuple[BurstPattern, ...] = ()  # newest last, at most BURST_MEMORY - 1
    stabilizer_recent: tuple[Target, ...] = ()  # sizing targets within the stabilisation window
    predictor_state: dict[str, dict[str, Any]] | None = None  # per series; None = none saved
    loaded: bool = field(default=False, compare=False)  # read back from a store

    def remember_burst(self, pattern: BurstPattern) -> None:
        self.recent_bursts = (*self.recent_bursts, pattern)[-(BURST_MEMORY - 1) :]

    @classmethod
    def from_rows(
        cls,
        *,
        interval_s: float,
        recent_bursts: Sequence[BurstPattern],
        recent_num_req: Sequence[float | None],
        stabilizer_recent: Sequence[Target],
        predictor_state: dict[str, dict[str, Any]] | None,
    ) -> CycleState:
        """The state from stored rows: the burst patterns and request counts of the last
        intervals (oldest first), the recent sizing targets, the predictor's saved state."""
        idle_s = 0.0
        for value in reversed(recent_num_req):
            if value != 0:
                break
            idle_s += interval_s
        return cls(
            idle_s=idle_s,
            recent_bursts=tuple(recent_bursts)[-(BURST_MEMORY - 1) :],
            stabilizer_recent=tuple(stabilizer_recent),
            predictor_state=predictor_state,
            loaded=True,
        )


@dataclass(frozen=True)
class StateQuery:
    """What the store reads to rebuild a deployment's :class:`CycleState` as of ``now``."""

    deployment_id: int
    now: datetime
    interval_s: float
    idle_cooldown_s: float  # 0 or infinite: the idle time is not needed
    stabilization_window_s: float | None  # None: no stabiliser
    predictor: str

    @property
    def burst_since(self) -> datetime:
        # The window ends of the intervals an uninterrupted cycle's memory would hold now.
        interval = timedelta(seconds=self.interval_s)
        return self.now - interval * (BURST_MEMORY - 1) - interval / 2

    @property
    def idle_since(self) -> datetime | None:
        if not 0 < self.idle_cooldown_s < float("inf"):
            return None
        return self.now - timedelta(seconds=self.idle_cooldown_s + self.interval_s)

    @property
    def stabilizer_since(self) -> datetime | None:
        if self.stabilization_window_s is None:
            return None
        return self.now - timedelta(seconds=self.stabilization_window_s)
