"""The per-deployment cycle lock with concurrent writers, and audit-first crash recovery."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from planner_core.records import Decision, Observation, Replicas, ScalingOutcome
from planner_core.store import LockBusy, Store, StoreError

T0 = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)


def decision(prefill: int = 2, decode: int = 7) -> Decision:
    return Decision(
        policy="default", mode="disagg", action="scale", reason="load up", interval_s=60.0, num_req=1200.0,
        isl=3000.0, osl=150.0, ttft_sla_ms=500.0, itl_sla_ms=50.0, prefill_correction=1.0,
        decode_correction=1.0, prefill_correction_applied=1.0, decode_correction_applied=1.0,
        prefill_replicas=prefill, decode_replicas=decode, prefill_gpus=prefill, decode_gpus=decode,
    )


@pytest.fixture
def store(db_url):
    s = Store(db_url, check_schema=False)
    s.upgrade()
    yield s
    s.close()


def test_second_holder_gets_lock_busy_naming_the_run(store, db_url):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    other = Store(db_url)
    try:
        with store.cycle_lock(dep):
            run = store.begin_run(dep, "schedule", {}, T0)
            started = time.monotonic()
            with pytest.raises(LockBusy) as info, other.cycle_lock(dep, wait_s=0.3):
                pass
            assert time.monotonic() - started >= 0.25
            err = info.value
            assert err.run_id == run and err.deployment_id == dep and err.since is not None
            assert f"run {run}" in str(err) and "since" in str(err)
            # another deployment is not blocked
            dep2 = store.ensure_deployment("e", "ns", "m", "vllm", "disagg")
            with other.cycle_lock(dep2):
                pass
            with pytest.raises(StoreError, match="already holds"), store.cycle_lock(dep):
                pass
            store.finish_run(run, "ok", T0)
        with other.cycle_lock(dep):  # released
            pass
    finally:
        other.close()


def test_waiting_loser_gets_the_lock_when_released(store, db_url):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    other = Store(db_url)
    try:
        released = threading.Event()
        result: dict[str, bool] = {}
        with store.cycle_lock(dep):

            def manual_replan():
                with other.cycle_lock(dep, wait_s=60):
                    # ordering, not timing: the loser holds the lock only after the release
                    result["after_release"] = released.is_set()

            thread = threading.Thread(target=manual_replan)
            thread.start()
            time.sleep(0.4)
            assert "after_release" not in result
            released.set()
        thread.join(60)
        assert result == {"after_release": True}
    finally:
        other.close()


def test_two_concurrent_writers_never_interleave(store, db_url):
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    intervals: list[tuple[float, float, str]] = []
    errors: list[BaseException] = []
    cycles_per_writer = 8

    def writer(trigger: str, offset: int) -> None:
        s = Store(db_url)
        try:
            for i in range(cycles_per_writer):
                with s.cycle_lock(dep, wait_s=30):
                    enter = time.monotonic()
                    at = T0 + timedelta(minutes=offset + i)
                    run = s.begin_run(dep, trigger, {"trigger": trigger}, at)
                    s.record_observation(run, Observation(at - timedelta(seconds=60), at, 1.0, 1.0, 1.0, 1.0,
                                                          1.0, 1.0, Replicas(1, 1)))
                    dec = s.record_decision(run, decision(), dry_run=False)
                    act = s.record_action_requested(dec, "virtual", Replicas(2, 7), at)
                    time.sleep(0.01)
                    s.record_action_outcome(act, ScalingOutcome("virtual", Replicas(2, 7), "applied", at, at))
                    s.finish_run(run, "ok", at)
                    intervals.append((enter, time.monotonic(), trigger))
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=writer, args=("schedule", 0)),
               threading.Thread(target=writer, args=("manual", 1000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    intervals.sort()
    assert len(intervals) == 2 * cycles_per_writer
    for (_, end, _), (start, _, _) in itertools.pairwise(intervals):
        assert start >= end, "two cycles of one deployment overlapped"
    assert store.table_counts()["planner_runs"] == 2 * cycles_per_writer
    assert store.pending_actions(dep) == []


def test_expired_sqlite_lease_is_taken_over(sqlite_url):
    store, other = Store(sqlite_url), Store(sqlite_url)
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    with store.cycle_lock(dep, ttl_s=0.2):
        with pytest.raises(LockBusy), other.cycle_lock(dep):
            pass
        time.sleep(0.3)
        with other.cycle_lock(dep):  # the holder overran its lease
            pass
    store.close()
    other.close()


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    sys.path.insert(0, {tests!r})
    from test_store_lock import decision
    from planner_core.records import Replicas
    from planner_core.store import Store

    url, stage = sys.argv[1], sys.argv[2]
    store = Store(url)
    dep = store.ensure_deployment("d", "ns", "m", "vllm", "disagg")
    at = datetime(2025, 3, 1, 14, 0, tzinfo=UTC)
    lock = store.cycle_lock(dep)
    lock.__enter__()
    run = store.begin_run(dep, "schedule", {{}}, at)
    dec = store.record_decision(run, decision(), dry_run=False)
    if stage == "after_request":
        store.record_action_requested(dec, "kubernetes", Replicas(2, 7), at)
    print(run, dec, flush=True)
    os._exit(17)  # killed before the connector answered: no outcome, no finish, lock not released
    """
)


@pytest.mark.parametrize("stage", ["after_request", "before_request"])
def test_crash_between_decision_and_action_is_reported_next_run(store, db_url, stage):
    from pathlib import Path

    script = CRASH_SCRIPT.format(tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", script, db_url, stage], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 17, proc.stderr
    crashed_run, crashed_decision = map(int, proc.stdout.split())
    dep = store.deployment_id("d", "ns")
    # the next run gets the lock (connection gone on PostgreSQL; dead holder on SQLite) ...
    with store.cycle_lock(dep, wait_s=5):
        run = store.begin_run(dep, "schedule", {}, T0 + timedelta(minutes=1))
        pending = store.pending_actions(dep, exclude_run_id=run)
        # ... and reports what the crash left behind
        assert len(pending) == 1
        p = pending[0]
        assert (p.run_id, p.decision_id, p.targets, p.run_status) == (crashed_run, crashed_decision,
                                                                      Replicas(2, 7), "running")
        if stage == "after_request":
            assert p.kind == "pending" and p.action_id is not None and p.connector == "kubernetes"
            assert p.requested_at == T0
            store.record_action_outcome(
                p.action_id, ScalingOutcome("kubernetes", p.targets, "unknown", T0, T0 + timedelta(minutes=1),
                                            "planner crashed before the connector answered"))
        else:
            assert p.kind == "not_requested" and p.action_id is None
        assert store.close_abandoned_runs(dep, T0 + timedelta(minutes=1), exclude_run_id=run) == 1
        assert store.pending_actions(dep, exclude_run_id=run) == []
        store.finish_run(run, "ok", T0 + timedelta(minutes=1))
