"""Database faults against the real servers: PostgreSQL (127.0.0.1:5432, a scratch database per
test) and SQLite. The database refusing connections, refusing them between the decision and
the action, connections killed there, and a lock held by another session (SQLite busy,
PostgreSQL table lock), briefly and for good.

Audit first: nothing is scaled unless its request is recorded. When the database itself is what
failed, the cycle cannot record its own failure there: it raises (``run-once`` exits non-zero, a
Prefect flow run ends Failed) with the cluster untouched, and the next cycle reports and closes
what the failed one left."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest
from fault_world import (
    START,
    World,
    assert_audit_complete,
    assert_held,
    assert_recovered,
    cluster_replicas,
    patches,
    rows,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from planner_core.records import Replicas
from planner_core.store import Store, StoreError
from planner_core.store import engine as store_engine

pytestmark = [pytest.mark.prometheus]


@pytest.fixture
def pg_world(metrics, kube, postgres_url) -> World:
    with Store(postgres_url, check_schema=False) as store:
        store.upgrade()
    return World(metrics, kube, postgres_url)


def _admin(url: str) -> Any:
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _kill_connections(url: str, refuse: bool) -> None:
    """Terminate every session of the database (and with ``refuse``, stop accepting new ones)."""
    name = make_url(url).database
    admin = _admin(url)
    with admin.connect() as conn:
        if refuse:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": name},
        )
    admin.dispose()


def _allow_connections(url: str) -> None:
    admin = _admin(url)
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{make_url(url).database}" ALLOW_CONNECTIONS true'))
    admin.dispose()


class KilledAfterDecision(Store):
    """A store whose database goes away right after the decision is committed."""

    refuse = False

    def record_decision(self, run_id: int, decision: Any, dry_run: bool) -> int:
        decision_id = super().record_decision(run_id, decision, dry_run)
        _kill_connections(self.url, refuse=self.refuse)
        return decision_id


@pytest.mark.postgres
def test_database_refusing_connections_scales_nothing(pg_world, kube):
    from prometheus_server import free_port

    down = World(pg_world.metrics, kube, f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/planner")
    with pytest.raises(StoreError, match="cannot open the planner database"):
        down.cycle()
    assert kube.log == [] and cluster_replicas(kube) == START
    assert_recovered(pg_world.cycle(), kube)
    assert_audit_complete(pg_world.db_url, 1)


@pytest.mark.postgres
def test_database_refusing_between_decision_and_action(pg_world, kube):
    store = KilledAfterDecision(pg_world.db_url)
    store.refuse = True
    try:
        with pytest.raises(OperationalError):
            pg_world.cycle(store=store)
    finally:
        store.close()
        _allow_connections(pg_world.db_url)
    assert patches(kube) == [], "scaled without a recorded request"
    assert_held(START, cluster_replicas(kube))
    left = rows(
        pg_world.db_url, "SELECT r.status, d.id AS decision_id FROM planner_runs r JOIN decisions d ON d.run_id = r.id"
    )
    assert [r["status"] for r in left] == ["running"]  # the decision is whole; its run never ended

    result = pg_world.cycle()
    assert any("not requested" in note or "check the cluster" in note for note in result.notes), result.notes
    assert_recovered(result, kube)
    runs = assert_audit_complete(pg_world.db_url, 2)
    assert [r["status"] for r in runs] == ["abandoned", "ok"]


@pytest.mark.postgres
def test_connections_killed_between_decision_and_action_reconnect(pg_world, kube):
    """Sessions killed (a failover, an idle-connection reaper): the pool's pre-ping reconnects,
    the request is recorded and applied. The cycle lock's session died with them (PostgreSQL
    released the lock): the release says so in the log and the cycle ends normally."""
    store = KilledAfterDecision(pg_world.db_url)
    try:
        result = pg_world.cycle(store=store)
    finally:
        store.close()
    assert result.status == "ok" and result.outcome is not None and result.outcome.outcome == "applied"
    action = rows(pg_world.db_url, "SELECT outcome, target_prefill, target_decode FROM scaling_actions")
    assert [a["outcome"] for a in action] == ["applied"], action
    assert cluster_replicas(kube) == Replicas(action[0]["target_prefill"], action[0]["target_decode"]) == Replicas(2, 2)
    assert_recovered(pg_world.cycle(), kube, cluster_replicas(kube))
    assert_audit_complete(pg_world.db_url, 2)


def _hold_sqlite_write_lock(path: str, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the database's one write lock
    held.set()
    time.sleep(seconds)
    conn.execute("ROLLBACK")
    conn.close()


def _sqlite_path(world: World) -> str:
    path = make_url(world.db_url).database
    assert path is not None
    with Store(world.db_url):
        pass  # create the schema first
    return path


def test_sqlite_busy_for_good_fails_the_cycle_and_scales_nothing(world, kube, monkeypatch):
    monkeypatch.setattr(store_engine, "LOCK_WAIT_MS", 300)
    path = _sqlite_path(world)
    held = threading.Event()
    holder = threading.Thread(target=_hold_sqlite_write_lock, args=(path, 1.5, held))
    holder.start()
    held.wait(5)
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            world.cycle()
        assert patches(kube) == [] and cluster_replicas(kube) == START
    finally:
        holder.join()
    assert_recovered(world.cycle(), kube)
    assert_audit_complete(world.db_url, 1)


def test_sqlite_busy_briefly_is_waited_out(world, kube):
    path = _sqlite_path(world)
    held = threading.Event()
    holder = threading.Thread(target=_hold_sqlite_write_lock, args=(path, 1.0, held))
    holder.start()
    held.wait(5)
    started = time.monotonic()
    result = world.cycle()
    holder.join()
    assert time.monotonic() - started >= 0.5, "the lock was not in the way"
    assert_recovered(result, kube)
    assert_audit_complete(world.db_url, 1)


def _hold_pg_table_lock(url: str, table: str, seconds: float, held: threading.Event) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))  # reads go on, writes wait
        held.set()
        time.sleep(seconds)
        conn.rollback()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_lock_held_for_good_fails_the_cycle_with_the_outcome_recorded(pg_world, kube, monkeypatch):
    monkeypatch.setattr(store_engine, "LOCK_WAIT_MS", 500)
    held = threading.Event()
    holder = threading.Thread(target=_hold_pg_table_lock, args=(pg_world.db_url, "decisions", 2.0, held))
    holder.start()
    held.wait(5)
    try:
        started = time.monotonic()
        result = pg_world.cycle()
        assert time.monotonic() - started < 1.9, "the write waited past the lock timeout"
    finally:
        holder.join()
    assert result.status == "error" and "lock timeout" in (result.error or ""), result.error
    assert patches(kube) == [] and cluster_replicas(kube) == START
    run = rows(pg_world.db_url, "SELECT status, error FROM planner_runs")
    assert len(run) == 1 and run[0]["status"] == "error" and "lock timeout" in run[0]["error"]
    assert rows(pg_world.db_url, "SELECT id FROM decisions") == []
    assert_recovered(pg_world.cycle(), kube)
    assert_audit_complete(pg_world.db_url, 2)


@pytest.mark.postgres
def test_postgres_lock_held_briefly_is_waited_out(pg_world, kube):
    held = threading.Event()
    holder = threading.Thread(target=_hold_pg_table_lock, args=(pg_world.db_url, "decisions", 1.0, held))
    holder.start()
    held.wait(5)
    result = pg_world.cycle()
    holder.join()
    assert_recovered(result, kube)
    assert_audit_complete(pg_world.db_url, 1)
