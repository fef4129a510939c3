"""The Prefect flows under a real (test) Prefect server, over the simulated deployment."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import text

from planner_core.config import PlannerConfig, Policy
from planner_core.runtime import Ports, using_ports
from planner_core.store import Store
from tests.flow_support import BrokenMetrics, SimWorld

pytestmark = pytest.mark.prefect

INTERVAL_S = 60
SETTINGS = PlannerConfig(
    environment="virtual", load_predictor="constant", adjustment_interval_s=INTERVAL_S, max_gpu_budget=16
)


def _rows(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    with Store(url) as store, store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def _state(flow_fn: Any, **params: Any) -> Any:
    return flow_fn(**params, return_state=True)


def test_plan_writes_observation_prediction_decision_and_action(prefect_harness, sqlite_url):
    from flows.plan import plan

    world = SimWorld(SETTINGS)
    with using_ports(world.ports):
        for k in range(3):
            end = world.window_end(k, INTERVAL_S)
            world.clock.set(end)
            state = _state(plan, deployment="llama", settings=SETTINGS, db_url=sqlite_url, window_end=end)
            assert state.is_completed(), state.message
    out = state.result()
    runs = _rows(sqlite_url, "SELECT id, status, trigger, flow_run_id FROM planner_runs ORDER BY id")
    assert [r["trigger"] for r in runs] == ["schedule"] * 3
    assert all(r["flow_run_id"] for r in runs)
    last = runs[-1]["id"]
    assert out["run_id"] == last
    assert _rows(sqlite_url, "SELECT id FROM observations WHERE run_id = :r", r=last)[0]["id"] == out["observation_id"]
    assert len(_rows(sqlite_url, "SELECT id FROM predictions WHERE run_id = :r", r=last)) == 3
    decision = _rows(sqlite_url, "SELECT * FROM decisions WHERE run_id = :r", r=last)[0]
    assert decision["id"] == out["decision_id"] and decision["action"] == "scale"
    action = _rows(sqlite_url, "SELECT * FROM scaling_actions WHERE decision_id = :d", d=decision["id"])[0]
    assert action["outcome"] in ("applied", "unchanged")
    assert (world.replicas().prefill, world.replicas().decode) == (
        decision["prefill_replicas"],
        decision["decode_replicas"],
    )
    # The decision artifact of the last run: a table with the replicas after, and the SQL row ids.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    (artifact,) = artifacts
    assert artifact.key == "decision-llama" and artifact.type == "table"
    assert f"`decisions.id` = {decision['id']}" in artifact.description
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    replicas = {row["quantity"]: row["after"] for row in table if row["quantity"].endswith("replicas")}
    assert replicas == {
        "prefill replicas": decision["prefill_replicas"],
        "decode replicas": decision["decode_replicas"],
    }


def test_failed_metric_fetch_records_a_failed_cycle_and_changes_no_replicas(prefect_harness, sqlite_url, tmp_path):
    import logging

    from flows.plan import plan
    from planner_core.logs import LOG_FILE, LOGGER

    world = SimWorld(SETTINGS)
    world.connector.apply(type(world.replicas())(3, 2), None, world.clock.now())
    broken = BrokenMetrics()
    settings = SETTINGS.model_copy(update={"log_dir": str(tmp_path / "logs")})
    before = list(logging.getLogger(LOGGER).handlers)
    try:
        with using_ports(lambda config, name: Ports(metrics=broken, connector=world.connector, clock=world.clock)):
            state = _state(plan, deployment="llama", settings=settings, db_url=sqlite_url)
    finally:
        for handler in set(logging.getLogger(LOGGER).handlers) - set(before):
            logging.getLogger(LOGGER).removeHandler(handler)
            handler.close()
    # --log-dir holds the planner's own records of the flow run
    assert "planning cycle failed" in (tmp_path / "logs" / LOG_FILE).read_text()
    assert state.is_failed()
    assert "refused" in state.message
    assert broken.calls == 3  # the fetch is retried twice before the cycle fails
    runs = _rows(sqlite_url, "SELECT status, error FROM planner_runs")
    assert [r["status"] for r in runs] == ["error"] and "refused" in runs[0]["error"]
    assert _rows(sqlite_url, "SELECT id FROM decisions") == []
    assert _rows(sqlite_url, "SELECT id FROM scaling_actions") == []
    assert (world.replicas().prefill, world.replicas().decode) == (3, 2)


class _GatedMetrics:
    """Holds the first fetch until the test opens the gate, so two runs overlap for sure."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()

    def observe(self, window_start, window_end):
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.observe(window_start, window_end)


def test_overlapping_runs_for_one_deployment_apply_one_decision(prefect_harness, sqlite_url):
    from flows.plan import plan

    world = SimWorld(SETTINGS)
    gated = _GatedMetrics(world.frontend)
    end = world.window_end(0, INTERVAL_S)
    world.clock.set(end)
    states: dict[str, Any] = {}
    with using_ports(lambda config, name: Ports(metrics=gated, connector=world.connector, clock=world.clock)):
        first = threading.Thread(
            target=lambda: states.setdefault(
                "first", _state(plan, deployment="llama", settings=SETTINGS, db_url=sqlite_url, window_end=end)
            )
        )
        first.start()
        assert gated.entered.wait(60)
        states["second"] = _state(plan, deployment="llama", settings=SETTINGS, db_url=sqlite_url, window_end=end)
        gated.gate.set()
        first.join(60)
    assert states["first"].is_completed() and states["second"].is_completed()
    assert states["second"].result()["status"] == "skipped_locked"
    assert "another run" in states["second"].message
    assert len(_rows(sqlite_url, "SELECT id FROM decisions")) == 1
    assert len(_rows(sqlite_url, "SELECT id FROM scaling_actions")) == 1


def test_manual_replan_with_dry_run_changes_nothing_and_records_its_reason(prefect_harness, sqlite_url):
    from flows.replan import ReplanOverrides, replan

    world = SimWorld(SETTINGS)
    end = world.window_end(0, INTERVAL_S)
    world.clock.set(end)
    before = world.replicas()
    with using_ports(world.ports):
        state = _state(
            replan,
            deployment="llama",
            reason="pin decode to 5 for a load test",
            overrides=ReplanOverrides(decode_replicas=5, dry_run=True),
            settings=SETTINGS,
            db_url=sqlite_url,
        )
    assert state.is_completed(), state.message
    assert world.replicas() == before
    run = _rows(sqlite_url, "SELECT * FROM planner_runs")[0]
    assert run["trigger"] == "manual" and run["status"] == "no_operation"
    assert run["reason"] == "pin decode to 5 for a load test"
    assert run["flow_run_id"] == str(state.state_details.flow_run_id)
    decision = _rows(sqlite_url, "SELECT * FROM decisions")[0]
    assert decision["dry_run"] and decision["decode_replicas"] == 5
    assert _rows(sqlite_url, "SELECT id FROM scaling_actions") == []


def test_replan_requires_a_reason(prefect_harness, sqlite_url):
    from flows.replan import replan
    from planner_core.config import ConfigError

    with pytest.raises(ConfigError, match="reason"):
        replan(deployment="llama", reason=" ", db_url=sqlite_url)
    db_file = Path(sqlite_url.removeprefix("sqlite:///"))
    assert not db_file.exists() or not _rows(sqlite_url, "SELECT id FROM planner_runs")


class _FlakyMetrics:
    """Fails the first fetch (a dropped connection), then answers."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def observe(self, window_start, window_end):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("connection reset by peer")
        return self.inner.observe(window_start, window_end)


def test_each_step_is_a_task_and_a_dropped_fetch_is_retried(prefect_harness, sqlite_url):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    from flows.plan import plan
    from planner_core.cycle import STEPS

    world = SimWorld(SETTINGS)
    flaky = _FlakyMetrics(world.frontend)
    end = world.window_end(0, INTERVAL_S)
    world.clock.set(end)
    with using_ports(lambda config, name: Ports(metrics=flaky, connector=world.connector, clock=world.clock)):
        state = _state(plan, deployment="llama", settings=SETTINGS, db_url=sqlite_url, window_end=end)
    assert state.is_completed(), state.message
    assert state.result()["status"] == "ok" and flaky.calls == 2
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    names = {r.name.split(" ")[0]: r for r in runs}
    assert set(STEPS) <= set(names)
    assert names["observe"].name == "observe llama 2026-03-01 00:01:00"
    assert names["observe"].run_count == 2 and names["size"].run_count == 1


def test_check_queue_scales_prefill_once_on_a_long_queue_and_records_it(prefect_harness, sqlite_url):
    """The check-queue flow over a deployment whose one prefill engine is far behind: the first
    check asks for more engines (a run with trigger ``queue``, its decision and applied action,
    decode untouched); the later checks see those engines on their way and write nothing."""
    from flows.queue import check_queue

    settings = SETTINGS.model_copy(update={"queue_check_interval_s": 0.1})
    world = SimWorld(settings, rate_per_s=120.0, duration_s=300.0)
    world.clock.set(world.window_end(1, INTERVAL_S))  # two minutes of a queue building on 1 engine
    with using_ports(world.ports):
        state = _state(check_queue, deployment="llama", settings=settings, db_url=sqlite_url, duration_s=3.0)
    assert state.is_completed(), state.message
    out = state.result()
    assert out["checks"] >= 2 and out["scaled"] == 1, out
    rows = _rows(
        sqlite_url,
        "SELECT r.trigger, r.status, d.prefill_replicas, d.decode_replicas, d.reason, a.outcome "
        "FROM planner_runs r JOIN decisions d ON d.run_id = r.id JOIN scaling_actions a ON a.decision_id = d.id",
    )
    (row,) = rows
    assert (row["trigger"], row["status"], row["outcome"]) == ("queue", "ok", "applied")
    assert row["prefill_replicas"] > 1 and row["decode_replicas"] == 1
    assert "prompts waiting" in row["reason"]
    assert world.replicas().prefill == row["prefill_replicas"]
    assert _rows(sqlite_url, "SELECT count(*) AS n FROM observations")[0]["n"] == 0


def test_check_queue_is_off_for_dynamos_policy(prefect_harness, sqlite_url):
    from flows.queue import check_queue

    settings = SETTINGS.model_copy(update={"policy": Policy.DYNAMO})
    state = _state(check_queue, deployment="llama", settings=settings, db_url=sqlite_url, duration_s=1.0)
    assert state.is_completed() and "off" in state.message
    assert state.result() == {"checks": 0, "scaled": 0}
