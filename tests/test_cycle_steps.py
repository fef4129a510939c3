"""The cycle as named steps through a caller's step runner, with its writes in audit-first order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from planner_core.config import PlannerConfig
from planner_core.cycle import STEPS
from planner_core.records import Observation
from planner_core.runtime import Ports, open_cycle
from planner_core.sim.world import SimWorld
from planner_core.store import Store

CONFIG = PlannerConfig(environment="virtual", load_predictor="constant", adjustment_interval_s=60)


class Recorder:
    """Wraps the store and runs the steps, logging both in one sequence."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.log: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def logged(*args: Any, **kwargs: Any) -> Any:
            self.log.append(name)
            return attr(*args, **kwargs)

        return logged

    def step(self, name: str, fn: Any, /, *args: Any) -> Any:
        self.log.append(f"step:{name}")
        return fn(*args)


def test_steps_and_writes_run_in_audit_first_order(sqlite_url):
    world = SimWorld(CONFIG)
    with Store(sqlite_url) as store:
        recorder = Recorder(store)
        cycle = open_cycle(CONFIG, "llama", store, ports=world.ports(CONFIG, "llama"), step=recorder.step)
        cycle.store = recorder
        end = world.window_end(0, 60)
        world.clock.set(end)
        result = cycle.run(window_end=end)
    assert result.status == "ok" and result.outcome is not None
    assert [e.removeprefix("step:") for e in recorder.log if e.startswith("step:")] == list(STEPS)
    writes = [e for e in recorder.log if e != "cycle_lock"]
    assert writes == [
        "pending_actions",
        "close_abandoned_runs",
        "load_cycle_state",
        "begin_run",
        "step:observe",
        "record_observation",
        "step:predict",
        "record_predictions",
        "step:size",
        "step:stabilise",
        "record_decision",
        "record_action_requested",  # the audit row exists before the connector is called
        "step:scale",
        "record_action_outcome",
        "step:record",
        "save_cycle_state",
        "finish_run",
    ]


class ErrorMetrics:
    def observe(self, window_start: datetime, window_end: datetime) -> Observation:
        return Observation(
            window_start, window_end, None, None, None, None, None, None, quality="error", error="HTTP 503"
        )


def test_an_unreadable_source_is_recorded_and_fails_the_cycle_without_deciding(sqlite_url):
    world = SimWorld(CONFIG)
    before = world.replicas()
    with Store(sqlite_url) as store:
        ports = Ports(metrics=ErrorMetrics(), connector=world.connector, clock=world.clock)
        result = open_cycle(CONFIG, "llama", store, ports=ports).run(window_end=datetime(2026, 3, 1, 0, 1, tzinfo=UTC))
        with store.engine.connect() as conn:
            from sqlalchemy import text

            obs = conn.execute(text("SELECT quality, error FROM observations")).all()
            decisions = conn.execute(text("SELECT id FROM decisions")).all()
            run = conn.execute(text("SELECT status, error FROM planner_runs")).one()
    assert result.status == "error" and "HTTP 503" in (result.error or "")
    assert [tuple(o) for o in obs] == [("error", "HTTP 503")] and decisions == []
    assert run.status == "error" and world.replicas() == before


def test_a_restarted_cycle_loads_the_state_the_last_one_saved(sqlite_url):
    world = SimWorld(CONFIG.model_copy(update={"load_predictor": "kalman"}))
    config = CONFIG.model_copy(update={"load_predictor": "kalman"})
    with Store(sqlite_url) as store:
        for k in range(4):
            end = world.window_end(k, 60)
            world.clock.set(end)
            last = open_cycle(config, "llama", store, ports=world.ports(config, "llama"))
            last.run(window_end=end)
        fresh = open_cycle(config, "llama", store, ports=world.ports(config, "llama"))
        fresh._load_state(store, fresh.deployment_id, world.window_end(4, 60))
    assert fresh.state is not None and fresh.state.loaded
    assert fresh.state.recent_bursts == last.state.recent_bursts and len(fresh.state.recent_bursts) == 3
    assert fresh.state.predictor_state == last.state.predictor_state


def test_the_observed_isl_histogram_reaches_the_sizing_and_its_count_the_store(sqlite_url):
    """Prompts too long for the TTFT SLA: the frontend's histogram goes with the forecast, the
    default policy sets them no TTFT target, and the decision row holds how many."""
    from dataclasses import replace

    from sqlalchemy import select

    from planner_core.store.models import DecisionRow

    world = SimWorld(CONFIG)

    class WithLongPrompts:
        def observe(self, window_start: datetime, window_end: datetime) -> Observation:
            obs = world.frontend.observe(window_start, window_end)
            total = float(obs.num_req or 0)
            # a tenth of the window's prompts above 31,000 tokens, none from 15,000 (the bundled
            # profile meets 500 ms to ~20,350)
            hist = ((15_000.0, 0.9 * total), (31_000.0, 0.9 * total), (float("inf"), total))
            return replace(obs, isl_histogram=hist)

    ports = world.ports(CONFIG, "llama")
    ports = replace(ports, metrics=WithLongPrompts())
    with Store(sqlite_url) as store:
        cycle = open_cycle(CONFIG, "llama", store, ports=ports)
        end = world.window_end(0, 60)
        world.clock.set(end)
        result = cycle.run(window_end=end)
        assert result.status == "ok" and result.decision is not None
        assert result.forecast is not None and result.forecast.isl_histogram is not None
        planned = result.decision.details["planned_num_req"]
        assert result.decision.prefill_infeasible_num_req == pytest.approx(0.1 * planned)
        with store.engine.connect() as conn:
            stored = conn.execute(select(DecisionRow.prefill_infeasible_num_req)).scalar()
        assert stored == pytest.approx(0.1 * planned)
