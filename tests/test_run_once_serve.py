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
    assert set(deployments) == {
        "llama-8b-disagg", "llama-8b-disagg-queue", "llama-8b-chat", "replan", "refit", "replay", "replay-history"
    }  # fmt: skip
    plan = deployments["llama-8b-disagg"]
    # the queue checks run with the plan's own settings, on the same schedule
    queue = deployments["llama-8b-disagg-queue"]
    assert queue.parameters == plan.parameters
    assert [s.schedule.interval.total_seconds() for s in queue.schedules] == [60.0]
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


class LiveClock:
    """The simulated world's epoch plus the real seconds since the test started: ``sla-planner
    run`` waits for real interval boundaries, and the simulated frontend serves those windows."""

    def __init__(self) -> None:
        import time

        from tests.flow_support import EPOCH

        self._t0, self._epoch = time.time(), EPOCH

    def now(self):
        import time
        from datetime import timedelta

        return self._epoch + timedelta(seconds=time.time() - self._t0)


def test_seconds_to_boundary_waits_for_a_whole_interval():
    from planner_core.commands.run_once import seconds_to_boundary

    assert [seconds_to_boundary(t, 60) for t in (0.0, 1.5, 59.0, 60.0, 125.0)] == [60.0, 58.5, 1.0, 60.0, 55.0]


def test_run_plans_every_interval_and_serves_its_metrics(sqlite_url, capsys):
    import httpx

    from planner_core.metrics.planner_metrics import default_metrics
    from planner_core.runtime import Ports
    from planner_core.stack import free_port

    world = SimWorld(PlannerConfig(environment="virtual"), duration_s=120)
    clock = LiveClock()
    port = free_port()
    args = [
        "run", "--deployment", "llama", "--db-url", sqlite_url, "--cycles", "2",
        "--environment", "virtual", "--load-predictor", "constant",
        "--adjustment-interval", "1", "--arrival-resolution-s", "1",
        "--metric-reporting-prometheus-port", str(port),
    ]  # fmt: skip
    try:
        with using_ports(lambda c, d: Ports(metrics=world.frontend, connector=world.connector, clock=clock)):
            assert main(args) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"sla-planner run: planner metrics on http://127.0.0.1:{port}/metrics"
        assert len(lines) == 3 and all(": ok," in line for line in lines[1:]), lines
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        default_metrics().stop()
    assert 'planner_cycles_total{deployment="llama",model="",outcome="ok",reason="unchanged"} 2.0' in scraped, scraped
    assert 'planner_desired_replicas{deployment="llama",model="",pool="prefill"}' in scraped
    with Store(sqlite_url) as store, store.engine.connect() as conn:
        runs = conn.execute(
            text(
                "SELECT r.status, o.window_end FROM planner_runs r JOIN observations o ON o.run_id = r.id ORDER BY r.id"
            )
        ).all()
    assert [r.status for r in runs] == ["ok", "ok"]
    assert runs[0].window_end != runs[1].window_end  # one cycle per interval


def test_run_refuses_a_bad_cycle_count(sqlite_url, capsys):
    assert main(["run", "--deployment", "llama", "--db-url", sqlite_url, "--cycles", "0"]) == 2
    assert "--cycles" in capsys.readouterr().err


def test_run_checks_the_queue_between_cycles():
    """``sla-planner run`` waits for the boundary checking the queue every few seconds
    (here 0.2 s in a 1 s interval); a stop request ends the wait."""
    import threading

    from planner_core.commands.run_once import seconds_to_boundary, wait_checking_queue

    class Cycle:
        clock = LiveClock()
        checks = 0

        def check_queue(self):
            Cycle.checks += 1
            return None

    stop = threading.Event()
    expected = int(seconds_to_boundary(Cycle.clock.now().timestamp(), 1.0) / 0.2 - 1e-9)
    assert wait_checking_queue(Cycle(), 1.0, 0.2, stop) is False
    assert expected - 1 <= Cycle.checks <= expected + 1, (Cycle.checks, expected)
    Cycle.checks = 0
    assert wait_checking_queue(Cycle(), 1.0, 0.0, stop) is False
    assert Cycle.checks == 0  # checks off: one wait for the boundary
    stop.set()
    assert wait_checking_queue(Cycle(), 1.0, 0.2, stop) is True
