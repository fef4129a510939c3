"""Scale-down stabilisation, the way Kubernetes' HPA does it.

Scale up at once; scale down only to the highest target recommended within the last
``window_s`` seconds (targets before the GPU budget, which is applied after this step). A
pool therefore shrinks only after the load has stayed low for the
whole window, which stops a noisy forecast from flapping replicas (each flap costs a
worker start-up, during which the new GPU is paid for and serves nothing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from planner_core.records import Decision


class Stabilizer:
    def __init__(self, window_s: float) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        self.window_s = window_s
        self._recent: deque[tuple[datetime, int | None, int | None]] = deque()

    def apply(self, decision: Decision, now: datetime) -> Decision:
        self._recent.append((now, decision.prefill_replicas, decision.decode_replicas))
        horizon = now - timedelta(seconds=self.window_s)
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        prefill = _highest(r[1] for r in self._recent)
        decode = _highest(r[2] for r in self._recent)
        gp, gd = decision.prefill_engine_num_gpu, decision.decode_engine_num_gpu
        # The GPU budget is not this step's business: the cycle fits the stabilised targets to it
        # afterwards (sizing.fit_budget), by the policy's one budget rule.
        if (prefill, decode) == (decision.prefill_replicas, decision.decode_replicas):
            return decision
        details: dict[str, Any] = dict(decision.details)
        details.update(
            stabilized_from={"prefill": decision.prefill_replicas, "decode": decision.decode_replicas},
            stabilization_window_s=self.window_s,
        )
        return replace(
            decision,
            prefill_replicas=prefill,
            decode_replicas=decode,
            prefill_gpus=(prefill or 0) * gp,
            decode_gpus=(decode or 0) * gd,
            reason=f"{decision.reason}; scale-down held by the {self.window_s:.0f} s stabilisation window "
            f"(prefill {decision.prefill_replicas}->{prefill}, decode {decision.decode_replicas}->{decode})",
            details=details,
        )

    @property
    def recent(self) -> tuple[tuple[datetime, int | None, int | None], ...]:
        """The ``(time, prefill, decode)`` recommendations it remembers, oldest first."""
        return tuple(self._recent)

    @property
    def has_memory(self) -> bool:
        return bool(self._recent)

    def note(self, now: datetime, prefill: int | None, decode: int | None) -> None:
        """Remember a target applied outside a cycle (a queue check's), so that the next cycles
        hold it for the window like any recent recommendation."""
        self._recent.append((now, prefill, decode))

    def remember(self, targets: Iterable[tuple[datetime, int | None, int | None]]) -> None:
        """Prepend earlier ``(time, prefill, decode)`` recommendations (a restarted planner's
        memory, read back from the store), oldest first."""
        earlier = [(t, p, d) for t, p, d in targets if not self._recent or t < self._recent[0][0]]
        self._recent = deque([*earlier, *self._recent])

    def get_state(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "recent": [[t.isoformat(), p, d] for t, p, d in self._recent]}

    def load_state(self, state: dict[str, Any]) -> None:
        self._recent = deque((datetime.fromisoformat(t), p, d) for t, p, d in state.get("recent", []))


def _highest(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
