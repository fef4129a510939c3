"""The planner process killed mid-cycle (SIGKILL: no cleanup of any kind), as a flow run's pod is
when it is evicted or OOM-killed. ``sla-planner run-once`` runs the production cycle in a
subprocess against the suite's Prometheus, the Kubernetes API stand-in (through a kubeconfig,
as in a cluster) and a real database; the test kills it at a hook point the servers create:

* in ``observe``: Prometheus answers slowly (a delaying proxy), the run is ``running``;
* in ``scale``: the API server holds the PATCH; the request is recorded ``pending``.

The next cycle takes the lock by itself (PostgreSQL dropped the dead session's row lock; the
SQLite lease names a dead process), reports what the dead run left, closes it (``abandoned``;
a pending request ``unknown``), reads the cluster as it is and plans from there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fault_world import (
    BUDGET,
    DGD,
    DGD_MODEL,
    INTERVAL_S,
    NAMESPACE,
    REPO,
    START,
    SlowProxy,
    World,
    assert_audit_complete,
    assert_recovered,
    cluster_replicas,
    fault_config,
    patches,
    rows,
)

from planner_core.records import Replicas
from planner_core.store import Store

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "planner", "user": {}}],
                "contexts": [
                    {"name": "fake", "context": {"cluster": "fake", "user": "planner", "namespace": "dynamo"}}
                ],
                "current-context": "fake",
            }
        )
    )
    return path


def _run_once(world: World, prometheus_url: str, kubeconfig: Path) -> subprocess.Popen[str]:
    args = [
        sys.executable, "-m", "planner_core.cli", "run-once", "--deployment", world.deployment,
        "--db-url", world.db_url, "--environment", "kubernetes", "--dgd-name", DGD,
        "--kubernetes-namespace", "dynamo", "--namespace", NAMESPACE, "--model-name", DGD_MODEL,
        "--metric-pulling-prometheus-endpoint", prometheus_url, "--adjustment-interval", str(INTERVAL_S),
        "--arrival-resolution-s", "1", "--max-gpu-budget", str(BUDGET), "--load-predictor", "constant",
        "--isl", "1000", "--osl", "100",
    ]  # fmt: skip
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _wait_for(world: World, sql: str, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run-once ended before the hook point: {proc.communicate()}")
        try:
            if rows(world.db_url, sql):
                return
        except Exception:  # the schema is still being created by the subprocess
            pass
        time.sleep(0.1)
    raise AssertionError(f"no row for {sql!r} within {timeout_s} s")


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def _world(metrics, kube, url: str) -> World:
    with Store(url, check_schema=False) as store:
        store.upgrade()
    return World(metrics, kube, url)


@pytest.fixture
def pg_world(metrics, kube, postgres_url) -> World:
    """The kill while scaling on PostgreSQL: the dead session's row lock goes with it."""
    return _world(metrics, kube, postgres_url)


@pytest.fixture
def sqlite_world(metrics, kube, sqlite_url) -> World:
    """The kill while observing on SQLite: the lease names a dead process and is taken over."""
    return _world(metrics, kube, sqlite_url)


def _next_cycle_recovers(world: World, dead_status: str) -> None:
    before = cluster_replicas(world.kube)
    result = world.cycle(config=fault_config(DGD_MODEL))
    assert result.status == "ok", (result.status, result.error)
    if dead_status == "pending":  # reported once, then closed
        assert any("check the cluster" in note for note in result.notes), result.notes
    assert_recovered(result, world.kube, before)
    runs = assert_audit_complete(world.db_url, 2)
    assert [r["status"] for r in runs] == ["abandoned", "ok"]
    assert runs[0]["error"] == "the planner stopped before finishing this run"
    actions = rows(world.db_url, "SELECT outcome, error FROM scaling_actions ORDER BY id")
    if dead_status == "pending":
        assert actions[0]["outcome"] == "unknown" and "check the cluster" in actions[0]["error"]


@pytest.mark.postgres
def test_killed_while_scaling(pg_world, tmp_path):
    world = pg_world
    world.kube.fault("PATCH", "dynamographdeployments/" + DGD, hang_s=2.0, times=1)  # then it lands
    proc = _run_once(world, world.metrics.url, _kubeconfig(tmp_path / "kubeconfig", world.kube.url))
    try:
        _wait_for(world, "SELECT id FROM scaling_actions WHERE outcome = 'pending'", proc)
        deadline = time.monotonic() + 30
        while not patches(world.kube):  # the request is recorded first, then sent
            assert time.monotonic() < deadline and proc.poll() is None, "the PATCH never came"
            time.sleep(0.05)
    finally:
        _kill(proc)
    left = rows(world.db_url, "SELECT r.status, a.outcome FROM planner_runs r JOIN decisions d ON d.run_id = r.id "
                              "JOIN scaling_actions a ON a.decision_id = d.id")  # fmt: skip
    assert left == [{"status": "running", "outcome": "pending"}]  # the dead run, as it was left
    time.sleep(2.2)  # the held PATCH lands after its client died: the cluster changed anyway
    assert cluster_replicas(world.kube) == Replicas(2, 2)
    _next_cycle_recovers(world, "pending")


def test_killed_while_observing(sqlite_world, tmp_path):
    world = sqlite_world
    proxy = SlowProxy(world.metrics.url, delay_s=30.0)
    try:
        proc = _run_once(world, proxy.url, _kubeconfig(tmp_path / "kubeconfig", world.kube.url))
        try:
            _wait_for(world, "SELECT id FROM planner_runs WHERE status = 'running'", proc)
            time.sleep(0.3)  # inside the metrics query
        finally:
            _kill(proc)
    finally:
        proxy.stop()
    assert rows(world.db_url, "SELECT id FROM decisions") == []
    assert patches(world.kube) == [] and cluster_replicas(world.kube) == START
    _next_cycle_recovers(world, "running")
