"""Kubernetes API faults, through whole planning cycles: the connector (official client) against
the API stand-in answering 409, 429, 500, 403 or hanging, on the write (the DGD patch) and on
the read (current replicas). Metrics from the suite's real Prometheus; a SQLite store.

Transient faults (one 409 from a concurrent writer, a 429 with Retry-After, one 500, one hang)
are retried and the cycle applies; persistent ones end the cycle in error with the outcome
recorded on its scaling_actions row, the cluster untouched, and the next cycle applies by itself."""

from __future__ import annotations

import time

import pytest
from fault_world import (
    FAST,
    START,
    assert_audit_complete,
    assert_held,
    assert_recovered,
    cluster_replicas,
    patches,
    rows,
)

pytestmark = pytest.mark.prometheus

PATCH_PATH = "dynamographdeployments/vllm-disagg"
# (fault keyword arguments, what the error says); times=10 outlasts every retry
PERSISTENT = {
    "409": (dict(status=409, message="the object has been modified", times=10), "still conflicting"),
    "429": (dict(status=429, retry_after="0", times=10), "429"),
    "500": (dict(status=500, times=10), "500"),
    "403": (dict(status=403, times=10), "needs verb 'patch' on 'dynamographdeployments'"),
    "hang": (dict(hang_s=0.8, times=10), "Read timed out"),
}
TRANSIENT = {
    "409 once (a concurrent writer)": dict(concurrent_write=True, times=1),
    "429 once, Retry-After 0": dict(status=429, retry_after="0", times=1),
    "500 once": dict(status=500, times=1),
    "hang once": dict(hang_s=0.8, times=1),
}


@pytest.mark.parametrize("fault", list(PERSISTENT))
def test_persistent_write_fault_is_recorded_and_the_next_cycle_applies(world, fault):
    kwargs, says = PERSISTENT[fault]
    world.kube.fault("PATCH", PATCH_PATH, **kwargs)
    started = time.monotonic()
    result = world.cycle()
    elapsed_s = time.monotonic() - started
    assert result.status == "error" and result.outcome is not None and result.outcome.outcome == "error"
    assert says in (result.error or ""), result.error
    if fault == "hang":
        # The API server received the write; the client gave up waiting. It may land later: the
        # cluster then runs the decided targets, never anything else, and the next cycle reads it.
        assert cluster_replicas(world.kube) in (START, result.decision.targets)
    else:
        assert_held(START, cluster_replicas(world.kube))
    action = rows(world.db_url, "SELECT outcome, error, target_prefill, target_decode FROM scaling_actions")
    assert len(action) == 1 and action[0]["outcome"] == "error" and says in action[0]["error"]
    run = rows(world.db_url, "SELECT status, error FROM planner_runs")[0]
    assert run["status"] == "error" and says in run["error"]
    if fault == "403":  # no retry of a permission error
        assert len(patches(world.kube)) == 1
    else:
        assert len(patches(world.kube)) == (FAST.conflict_attempts if fault == "409" else FAST.attempts)
    assert elapsed_s < 10, f"{fault}: the cycle took {elapsed_s:.1f} s"

    world.kube.faults.clear()
    time.sleep(0.9 if fault == "hang" else 0.0)  # the hung calls finish
    before = cluster_replicas(world.kube)
    assert_recovered(world.cycle(), world.kube, before)
    assert_audit_complete(world.db_url, 2)


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_transient_write_fault_is_retried_and_applied(world, fault):
    world.kube.fault("PATCH", PATCH_PATH, **TRANSIENT[fault])
    result = world.cycle()
    assert_recovered(result, world.kube)
    assert result.outcome is not None and result.outcome.outcome == "applied"
    assert len(patches(world.kube)) == 2  # the failed attempt and the retry
    assert_audit_complete(world.db_url, 1)


@pytest.mark.parametrize("status", [403, 500])
def test_read_fault_fails_the_cycle_before_any_decision(world, status):
    """The current replicas cannot be read: nothing is decided or scaled; the run says why."""
    world.kube.fault("GET", PATCH_PATH, status=status, times=10)
    result = world.cycle()
    assert result.status == "error" and result.decision is None
    assert patches(world.kube) == []
    assert rows(world.db_url, "SELECT id FROM decisions") == []
    run = rows(world.db_url, "SELECT status, error FROM planner_runs")[0]
    assert run["status"] == "error"
    assert str(status) in run["error"] or "needs verb 'get'" in run["error"], run["error"]
    world.kube.faults.clear()
    assert_recovered(world.cycle(), world.kube)
    assert_audit_complete(world.db_url, 2)
