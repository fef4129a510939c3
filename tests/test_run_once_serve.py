"""`sla-planner run-once` (no Prefect) and the deployments `sla-planner serve` builds from prefect.yaml."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from planner_core.cli import main
from planner_core.config import PlannerConfig
from planner_core.runtime import using_ports
from planner_core.store import Store
from tests.flow_support import SimWorld

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--environment", "virtual", "--load-predictor", "constant", "--adjustment-interval", "60"]


def test_run_once_runs_one_recorded_cycle(sqlite_url, capsys):
    world = SimWorld(PlannerConfig(environment="virtual"))
    end = world.window_end(0, 60)
    world.clock.set(end)
    args = ["run-once", "--deployment", "llama", "--db-url", sqlite_url, "--window-end", end.isoformat(), *FLAGS]
    with using_ports(world.ports):
        assert main([*args, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "ok" and out["decision_id"] and out["action_id"]
        assert (out["prefill_replicas"], out["decode_replicas"]) == tuple(world.replicas().__dict__.values())
        assert main([*args, "--reason", "checking after an incident"]) == 0
    with Store(sqlite_url) as store, store.engine.connect() as conn:
        runs = conn.execute(text("SELECT trigger, reason FROM planner_runs ORDER BY id")).all()
    assert [tuple(r) for r in runs] == [("schedule", None), ("manual", "checking after an incident")]


def test_run_once_bad_settings_exit_2_naming_the_flag(sqlite_url, capsys):
    assert main(["run-once", "--deployment", "llama", "--db-url", sqlite_url, "--max-gpu-budget", "0"]) == 2
    assert "max_gpu_budget (--max-gpu-budget)" in capsys.readouterr().err
    assert main(["run-once", "--deployment", "llama", "--db-url", sqlite_url, "--window-end", "yesterday"]) == 2
    assert "--window-end" in capsys.readouterr().err


def test_serve_builds_every_prefect_yaml_deployment_with_its_schedule():
    from flows.serve import load_prefect_file, runner_deployments, with_interval

    doc = load_prefect_file(REPO / "prefect.yaml")
    deployments = {d.name: d for d in runner_deployments(doc)}
    assert set(deployments) == {"llama-8b-disagg", "llama-8b-chat", "replan", "refit", "replay", "replay-history"}
    plan = deployments["llama-8b-disagg"]
    assert plan.concurrency_limit == 1
    assert [s.schedule.interval.total_seconds() for s in plan.schedules] == [60.0]
    assert plan.parameters["settings"]["adjustment_interval_s"] == 60
    assert deployments["replan"].schedules == [] or deployments["replan"].schedules is None

    fast = {d.name: d for d in runner_deployments(with_interval(doc, 5), only=["llama-8b-chat"])}
    assert list(fast) == ["llama-8b-chat"]
    assert [s.schedule.interval.total_seconds() for s in fast["llama-8b-chat"].schedules] == [5.0]
    assert fast["llama-8b-chat"].parameters["settings"]["adjustment_interval_s"] == 5


def test_serve_rejects_an_unknown_deployment(capsys):
    assert main(["serve", "--prefect-file", str(REPO / "prefect.yaml"), "--only", "nope"]) == 2
    assert "--only" in capsys.readouterr().err
