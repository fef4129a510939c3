"""Twenty operators re-plan one deployment at the same moment (issue 16, part 3).

Twenty threads, each with its own store session on PostgreSQL (as twenty ``replan`` flow runs
would have), start together behind a barrier and run the manual cycle with the ``replan`` flow's
wait for the lock (``REPLAN_LOCK_WAIT_S``), each pinning decode to its own count. The cycle lock
must hand the deployment to one run at a time: every run completes (no deadlock, none skipped),
each run holds exactly one decision and one applied scaling action, the connector never sees
two calls overlap, and the cluster ends at the pin of the last lock holder.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from planner_core.config import PlannerConfig
from planner_core.records import Replicas, ScalingOutcome
from planner_core.runtime import Ports, open_cycle
from planner_core.store import Store
from tests.flow_support import SimWorld

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RUNS = 20
REPLAN_LOCK_WAIT_S = 60.0  # flows.replan's wait (not imported: planner_core tests need no Prefect import)


class RecordingConnector:
    """The simulated cluster's connector, recording every call to ``apply`` and whether two
    ever ran at once (each holds the call for 20 ms to widen any window for overlap)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self._guard = threading.Lock()
        self.active = 0
        self.overlaps = 0
        self.applied: list[tuple[int | None, Replicas]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        with self._guard:
            self.active += 1
            if self.active > 1:
                self.overlaps += 1
        try:
            time.sleep(0.02)
            outcome = self.inner.apply(targets, decision_id, requested_at)
            with self._guard:
                self.applied.append((decision_id, targets))
            return outcome
        finally:
            with self._guard:
                self.active -= 1


def test_twenty_simultaneous_replans_apply_one_decision_per_lock_holder(postgres_url):
    with Store(postgres_url, check_schema=False) as fresh:
        fresh.upgrade()
    settings = PlannerConfig(
        environment="virtual", load_predictor="constant", adjustment_interval_s=60, max_gpu_budget=64
    )
    world = SimWorld(settings)
    end = world.window_end(0, 60)
    world.clock.set(end)
    connector = RecordingConnector(world.connector)
    ports = Ports(metrics=world.frontend, connector=connector, clock=world.clock)
    # every pin differs from the running count, so whichever run takes the lock first applies a
    # change (a pin equal to it would record "unchanged", decided by thread scheduling)
    first_pin = world.replicas().decode + 1
    barrier = threading.Barrier(RUNS)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def operator(i: int) -> None:
        try:
            with Store(postgres_url) as store:
                cycle = open_cycle(
                    settings,
                    "llama",
                    store,
                    trigger="manual",
                    ports=ports,
                    pinned=Replicas(None, first_pin + i),
                    reason=f"operator {i}: decode to {first_pin + i}",
                )
                barrier.wait(timeout=60)
                results[i] = cycle.run(window_end=end, lock_wait_s=REPLAN_LOCK_WAIT_S)
        except BaseException as exc:  # reported below with the others
            errors.append(exc)

    threads = [threading.Thread(target=operator, args=(i,), daemon=True) for i in range(RUNS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=REPLAN_LOCK_WAIT_S + 60)
    elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), f"deadlock: runs still waiting after {elapsed:.0f} s"
    assert not errors, errors
    assert sorted(results) == list(range(RUNS))
    assert {r.status for r in results.values()} == {"ok"}, {i: (r.status, r.error) for i, r in results.items()}

    with Store(postgres_url) as store, store.engine.connect() as conn:
        runs = conn.execute(
            text(
                "SELECT r.id, r.reason, count(DISTINCT d.id) AS decisions, count(a.id) AS actions, "
                "min(a.outcome) AS outcome, min(d.decode_replicas) AS decode "
                "FROM planner_runs r LEFT JOIN decisions d ON d.run_id = r.id "
                "LEFT JOIN scaling_actions a ON a.decision_id = d.id GROUP BY r.id ORDER BY r.id"
            )
        ).all()
        lock = conn.execute(text("SELECT holder, run_id FROM cycle_locks")).one()
    assert len(runs) == RUNS
    assert all(r.decisions == 1 and r.actions == 1 and r.outcome == "applied" for r in runs), runs
    # every lock holder's decision is the decode count it pinned
    assert all(r.decode == int(r.reason.rsplit(" ", 1)[1]) for r in runs), runs
    assert connector.overlaps == 0
    assert len(connector.applied) == RUNS
    decision_order = [decision_id for decision_id, _ in connector.applied]
    assert decision_order == sorted(decision_order), "a later decision was applied before an earlier one"
    last_decode = connector.applied[-1][1].decode
    assert world.replicas().decode == last_decode
    assert lock.holder is None, lock
    print(f"{RUNS} simultaneous re-plans done in {elapsed:.1f} s")
