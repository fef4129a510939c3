"""The virtual connector: requests in the store, acknowledged by an outside system (a Python
call or ``sla-planner virtual ack``), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from planner_core.cli import main
from planner_core.config import BUNDLED_PROFILE_DIR, make_config
from planner_core.connectors import EmptyTargetsError, build_connector
from planner_core.connectors.virtual import VirtualConnector
from planner_core.profiles import load_profile
from planner_core.records import Corrections, LoadForecast, Replicas
from planner_core.sizing import size
from planner_core.store import Store, StoreError
from planner_core.store.models import ScalingActionRow
from planner_core.store.scaling_requests import acknowledge, get_request, pending_request

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROFILE = load_profile(BUNDLED_PROFILE_DIR)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(db_url):
    s = Store(db_url, check_schema=False)
    s.upgrade()
    yield s
    s.close()


def _config(**kw):
    kw.setdefault("scaling_check_interval_s", 0.02)
    kw.setdefault("scaling_max_wait_time_s", 600)
    return make_config(environment="virtual", **kw)


def _decision_id(store: Store, dep: int, when: datetime, targets: Replicas) -> tuple[int, int]:
    """A recorded decision and its pending scaling action, as the cycle writes them."""
    config = make_config()
    run = store.begin_run(dep, "schedule", config.model_dump(mode="json"), when)
    decision = size(LoadForecast(600.0, 3000.0, 150.0), PROFILE, config, Corrections(1.0, 1.0, source="test"))
    dec = store.record_decision(run, decision, dry_run=False)
    act = store.record_action_requested(dec, "virtual", targets, when)
    return dec, act


def _action(store: Store, action_id: int):
    with store.engine.connect() as conn:
        return conn.execute(select(ScalingActionRow.__table__).where(ScalingActionRow.id == action_id)).one()


def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_ack_in_time(store):
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    clock = Clock()
    conn = VirtualConnector(_config(), store, dep, now=clock)
    dec, act = _decision_id(store, dep, T0, Replicas(2, 3))
    outcome = conn.apply(Replicas(2, 3), dec, T0)
    store.record_action_outcome(act, outcome)  # what the cycle does next
    assert outcome.outcome == "requested"
    assert (
        conn.rolling_out()
        == f"scaling request {pending_request(store, dep).id} not acknowledged yet (waited 0 s of 600)"
    )
    assert conn.current_replicas() == Replicas(2, 3) and conn.ready_replicas() == Replicas(None, None)

    # the outside system, through the Python API
    request = pending_request(store, "dynamo/llama")
    assert request is not None and request.targets == Replicas(2, 3) and request.decision_id == dec
    clock.now = T0 + timedelta(seconds=30)
    done = acknowledge(store, "llama", request.id, by="test-cluster", at=clock.now)
    assert (done.status, done.running, done.acknowledged_by) == ("acknowledged", Replicas(2, 3), "test-cluster")

    _wait_for(lambda: bool(conn.outcomes))  # the background check saw it
    assert conn.outcomes[0].status == "acknowledged"
    row = _action(store, act)
    assert (row.outcome, row.acknowledged_at) == ("applied", clock.now)
    assert conn.rolling_out() is None and conn.ready_replicas() == Replicas(2, 3)
    conn.close()


def test_ack_late_is_refused_and_the_request_times_out(store):
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    clock = Clock()
    conn = VirtualConnector(_config(scaling_max_wait_time_s=60), store, dep, now=clock)
    dec, act = _decision_id(store, dep, T0, Replicas(1, 4))
    store.record_action_outcome(act, conn.apply(Replicas(1, 4), dec, T0))
    request = pending_request(store, dep)
    clock.now = T0 + timedelta(seconds=61)  # past SCALING_MAX_WAIT_TIME
    _wait_for(lambda: bool(conn.outcomes))
    assert conn.outcomes[0].status == "timed_out"
    assert "not acknowledged within 60 s" in (conn.outcomes[0].note or "")
    row = _action(store, act)
    assert row.outcome == "timed_out" and row.acknowledged_at is None
    with pytest.raises(StoreError, match=f"scaling request {request.id} is timed_out, not pending; none is pending"):
        acknowledge(store, dep, request.id)
    assert conn.rolling_out() is None and conn.current_replicas() == Replicas(None, None)
    conn.close()


def test_never_acked_times_out_on_the_next_cycle_without_the_thread(store):
    """A planner process that exits (one Prefect flow run per cycle) leaves the request to the next one."""
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    clock = Clock()
    first = VirtualConnector(_config(scaling_check_interval_s=3600), store, dep, now=clock)
    dec, act = _decision_id(store, dep, T0, Replicas(3, 3))
    store.record_action_outcome(act, first.apply(Replicas(3, 3), dec, T0))
    request = pending_request(store, dep)
    first.close()  # the process ends
    second = VirtualConnector(_config(scaling_max_wait_time_s=1800), store, dep, now=clock)
    clock.now = T0 + timedelta(seconds=1799)
    assert "waited 1799 s of 1800" in (second.rolling_out() or "")
    clock.now = T0 + timedelta(seconds=1800)
    assert second.rolling_out() is None
    assert get_request(store, request.id).status == "timed_out"
    assert _action(store, act).outcome == "timed_out"


def test_a_newer_decision_supersedes_an_unacknowledged_one(store):
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    clock = Clock()
    conn = VirtualConnector(_config(), store, dep, now=clock)
    dec1, act1 = _decision_id(store, dep, T0, Replicas(2, 2))
    store.record_action_outcome(act1, conn.apply(Replicas(2, 2), dec1, T0))
    first = pending_request(store, dep)
    clock.now = T0 + timedelta(seconds=60)
    dec2, act2 = _decision_id(store, dep, clock.now, Replicas(4, 5))
    store.record_action_outcome(act2, conn.apply(Replicas(4, 5), dec2, clock.now))
    second = pending_request(store, dep)
    assert second.id != first.id and second.targets == Replicas(4, 5)
    assert get_request(store, first.id).status == "superseded"
    assert _action(store, act1).outcome == "superseded"
    # acknowledging the old one is refused and names the current one
    with pytest.raises(StoreError, match=f"is superseded, not pending; the pending one is {second.id}"):
        acknowledge(store, dep, first.id)
    acknowledge(store, dep, running=Replicas(4, 4), at=clock.now)  # the outside system ran 4 decode
    _wait_for(lambda: any(r.id == second.id for r in conn.outcomes))
    assert _action(store, act2).outcome == "applied"
    assert conn.ready_replicas() == Replicas(4, 4) and conn.current_replicas() == Replicas(4, 4)
    with pytest.raises(EmptyTargetsError):
        conn.apply(Replicas(None, None), None, clock.now)
    conn.close()


def test_two_planners_on_one_store(store):
    """Two deployments stay apart; two planners racing on one deployment leave one pending request."""
    dep_a = store.ensure_deployment("a", "dynamo", None, "vllm", "disagg")
    dep_b = store.ensure_deployment("b", "dynamo", None, "vllm", "disagg")
    other = Store(store.url, check_schema=False)  # the second planner's own engine
    try:
        a = VirtualConnector(_config(scaling_check_interval_s=3600), store, dep_a)
        b = VirtualConnector(_config(scaling_check_interval_s=3600), other, dep_b)
        a.apply(Replicas(1, 2), None, T0)
        b.apply(Replicas(5, 6), None, T0)
        assert pending_request(store, "a").targets == Replicas(1, 2)
        assert pending_request(other, "b").targets == Replicas(5, 6)
        acknowledge(other, "b")
        assert pending_request(store, "a") is not None and pending_request(store, "b") is None

        # both planners now write requests for deployment a at once
        racers = [VirtualConnector(_config(scaling_check_interval_s=3600), s, dep_a) for s in (store, other)]
        errors: list[BaseException] = []

        def write(conn: VirtualConnector, k: int) -> None:
            try:
                for i in range(10):
                    conn.apply(Replicas(k, i + 1), None, T0 + timedelta(seconds=i))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(c, k)) for k, c in enumerate(racers, start=1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        from planner_core.store.scaling_requests import REQ

        with store.engine.connect() as conn:
            statuses = conn.execute(select(REQ.c.status).where(REQ.c.deployment_id == dep_a)).scalars().all()
        assert statuses.count("pending") == 1 and len(statuses) == 21
        for c in [a, b, *racers]:
            c.close()
    finally:
        other.close()


def test_cli_pending_and_ack(store, capsys):
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    conn = VirtualConnector(_config(scaling_check_interval_s=3600), store, dep)
    conn.apply(Replicas(2, 3), None, T0)
    assert main(["virtual", "pending", "--db-url", store.url, "--deployment", "dynamo/llama"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["target_prefill"], shown["target_decode"], shown["status"]) == (2, 3, "pending")
    assert main(["virtual", "ack", "--db-url", store.url, "--deployment", "llama", "--decode", "2", "--by", "ops"]) == 0
    acked = json.loads(capsys.readouterr().out)
    assert (acked["status"], acked["running_prefill"], acked["running_decode"]) == ("acknowledged", 2, 2)
    # nothing left: exit code 2, an error naming the problem, no traceback
    assert main(["virtual", "ack", "--db-url", store.url, "--deployment", "llama"]) == 2
    assert "no pending scaling request for deployment 'llama'" in capsys.readouterr().err
    assert main(["virtual", "ack", "--db-url", store.url, "--deployment", "nope"]) == 2
    assert "no deployment named 'nope'" in capsys.readouterr().err
    conn.close()


def test_build_connector_follows_the_environment(store):
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    virtual = build_connector(_config(), store=store, deployment_id=dep)
    assert isinstance(virtual, VirtualConnector)
    dry = build_connector(_config(no_operation=True), store=store, deployment_id=dep)
    assert dry.name == "no-operation(virtual)"
    assert dry.apply(Replicas(1, 1), None, T0).outcome == "dry_run"
    assert pending_request(store, dep) is None  # recorded, nothing requested
    from planner_core.connectors import ConnectorError

    with pytest.raises(ConnectorError, match="virtual connector keeps its requests in the SQL store"):
        build_connector(_config())
    with pytest.raises(ConnectorError, match="DYN_PARENT_DGD_K8S_NAME is not set"):
        build_connector(make_config(environment="kubernetes"), api_client=object())


def test_requests_and_acks_go_through_while_the_cycle_lock_is_held(store):
    """The virtual connector runs inside the cycle, which holds the deployment's cycle lock (on
    PostgreSQL a ``FOR NO KEY UPDATE`` row lock on another connection). Writing the request and
    the outside system's acknowledgement must not wait on that lock: a row lock there deadlocked
    the cycle against itself."""
    dep = store.ensure_deployment("llama", "dynamo", None, "vllm", "disagg")
    clock = Clock()
    conn = VirtualConnector(_config(), store, dep, now=clock)
    dec, act = _decision_id(store, dep, T0, Replicas(2, 2))
    finished: list[str] = []

    def apply_and_ack() -> None:
        store.record_action_outcome(act, conn.apply(Replicas(2, 2), dec, T0))
        request = pending_request(store, dep)
        assert request is not None
        acknowledge(store, dep, request.id, by="test-cluster", at=T0)
        finished.append("done")

    with store.cycle_lock(dep):
        worker = threading.Thread(target=apply_and_ack, daemon=True)
        worker.start()
        worker.join(timeout=30)
        assert finished == ["done"], "the request or its acknowledgement waited on the cycle lock"
    conn.close()
