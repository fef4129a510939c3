"""Replays share a database with nothing: not with each other, not with production.

Two replays into one SQLite file used to share the deployment ``replay-<trace>-<policy>`` and
its cycle lock: a cycle meeting the other replay's lock was skipped, the simulated cluster was
not scaled, and both exited 0 with wrong scores. And a replay's simulated cycles were summed
into the production reporting views and `history`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from planner_core.cli import main
from planner_core.config import BUNDLED_TRACE, make_config
from planner_core.profiles import load_profile
from planner_core.records import Observation, Replicas
from planner_core.sim.replay import ReplayError, load_workload, run_policy
from planner_core.store import Store
from planner_core.store.models import VIEW_NAMES

REPLAY_ARGS = ["replay", "--duration-s", "900", "--load-scale", "5", "--predictor", "constant", "--json"]

# Imports first, then wait for the go file, so that both replays run their cycles at the same time.
_WAIT_THEN_RUN = """
import pathlib, sys, time
from planner_core.cli import main
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
sys.exit(main(sys.argv[2:]))
"""


def _summary(stdout: str) -> dict:
    out = json.loads(stdout)
    out.pop("wall_s")
    return out


def test_concurrent_replays_into_one_sqlite_file_reproduce_the_solo_run(tmp_path, capsys):
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WAIT_THEN_RUN, str(go), *REPLAY_ARGS, "--db-url", shared],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        # The reference: the same replay alone, in a database of its own (while the others import).
        assert main([*REPLAY_ARGS, "--db-url", f"sqlite:///{tmp_path / 'solo.db'}"]) == 0
        solo = _summary(capsys.readouterr().out)
        time.sleep(1.0)
        go.touch()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert _summary(out) == solo
    assert solo["scaling_actions"] > 0  # a run whose cycles were skipped would not scale at all

    store = Store(shared)
    rows = store.latest_cycles(None, None, 1000, include_simulated=True)
    store.close()
    deployments = {r["deployment"] for r in rows}
    assert len(deployments) == 2, deployments  # one identity per replay
    assert len(rows) == 2 * solo["intervals"]
    assert {r["status"] for r in rows} <= {"ok", "held"}


class _HeldLock:
    """A store whose deployment lock is always held by someone else."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def cycle_lock(self, deployment_id: int, wait_s: float = 0.0, ttl_s: float | None = None):
        from planner_core.store import LockBusy

        raise LockBusy(deployment_id, holder="elsewhere:1")


def test_a_skipped_cycle_fails_the_replay_loudly(sqlite_url):
    profile = load_profile(make_config().profile_dir())
    workload = load_workload(BUNDLED_TRACE, load_scale=2, seed=0, duration_s=180)
    config = make_config(adjustment_interval_s=60, max_gpu_budget=64, load_predictor="constant")
    store = Store(sqlite_url)
    with pytest.raises(ReplayError, match="skipped_locked"):
        run_policy(workload, config, "default", store=_HeldLock(store), profile=profile)
    store.close()


def test_replay_cli_reports_a_failed_cycle_as_an_error(sqlite_url, capsys, monkeypatch):
    import planner_core.cycle as cycle_module

    def broken_size(*args, **kwargs):
        raise RuntimeError("sizing exploded")

    monkeypatch.setattr(cycle_module, "size", broken_size)
    code = main(["replay", "--duration-s", "180", "--predictor", "constant", "--db-url", sqlite_url])
    err = capsys.readouterr().err
    assert code == 2
    assert "sla-planner replay: error:" in err and "sizing exploded" in err and "Traceback" not in err


def _production_cycle(store: Store) -> int:
    dep = store.ensure_deployment("llama", "prod", "m", "vllm", "disagg")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    run = store.begin_run(dep, "schedule", make_config().model_dump(mode="json"), now)
    start = datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    store.record_observation(run, Observation(start, now, 100.0, 90.0, 20.0, 3000.0, 150.0, 5.0, Replicas(2, 2)))
    store.finish_run(run, "ok", now)
    return dep


def test_simulated_cycles_stay_out_of_views_and_history(sqlite_url, capsys):
    assert main([*REPLAY_ARGS, "--duration-s", "180", "--db-url", sqlite_url]) == 0
    replayed = json.loads(capsys.readouterr().out)["intervals"]
    store = Store(sqlite_url)
    _production_cycle(store)
    with store.engine.connect() as conn:
        simulated = conn.execute(text("SELECT COUNT(*) FROM deployments WHERE simulated")).scalar_one()
        assert simulated == 1
        assert conn.execute(text("SELECT COUNT(*) FROM planner_runs")).scalar_one() == replayed + 1
        for view in VIEW_NAMES:
            names = {row[0] for row in conn.execute(text(f"SELECT deployment FROM {view}"))}
            assert not any(n.startswith("replay-") for n in names), (view, names)
        assert conn.execute(text("SELECT COUNT(*) FROM v_runs")).scalar_one() == 1
        assert conn.execute(text("SELECT SUM(cycles) FROM v_gpu_hours_daily")).scalar_one() == 1
    assert [r["deployment"] for r in store.latest_cycles()] == ["llama"]
    assert len(store.latest_cycles(include_simulated=True)) == replayed + 1
    store.close()
    assert main(["history", "--db-url", sqlite_url, "--json"]) == 0
    assert [json.loads(line)["deployment"] for line in capsys.readouterr().out.splitlines()] == ["llama"]
    assert main(["history", "--db-url", sqlite_url, "--json", "--include-simulated"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == replayed + 1


def test_replay_deployment_names_are_unique_per_run():
    from planner_core.sim.replay import replay_deployment_name

    a, b = replay_deployment_name("azure", "default"), replay_deployment_name("azure", "default")
    assert a != b and a.startswith("replay-azure-default-")
