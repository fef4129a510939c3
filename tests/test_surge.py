"""The queue check between cycles (planner_core/surge.py): the rule as a table, and in the loop."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import text

from planner_core.config import make_config
from planner_core.cycle import PlanningCycle
from planner_core.feasibility import feasible_load, isl_histogram, max_feasible_isl
from planner_core.metrics import promql
from planner_core.metrics.exporter import BUCKETS
from planner_core.policies import prefill_mix
from planner_core.ports import SimulatedClock
from planner_core.profiles import load_profile
from planner_core.records import Observation, Replicas, ScalingOutcome
from planner_core.sim.replay import Workload, queue_check_times, run_policy
from planner_core.store import Store
from planner_core.surge import queue_check, queue_check_window_s

CONFIG = make_config(adjustment_interval_s=60, max_gpu_budget=64, load_predictor="constant")
PROFILE = load_profile(CONFIG.profile_dir())
# A busy engine prefills a full 8,192-token pass in the profile's time for 8,192 tokens.
PASS_S = PROFILE.prefill.curves.ttft_ms(8192) / 1000.0
SERVICE_S = 2000 * PASS_S / 8192  # engine seconds per 2,000-token prompt
BUDGET_S = 0.5 - PASS_S


def check(**over):
    args = dict(
        queued_requests=0.0,
        num_req=100.0,
        window_s=10.0,
        isl=2000.0,
        ready_prefill=2,
        target_prefill=2,
        target_decode=1,
        profile=PROFILE,
        config=CONFIG,
    )
    args.update(over)
    return queue_check(**args)


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"queued_requests": None}, "does not export the queue"),
        ({"queued_requests": math.nan}, "does not export the queue"),
        ({"queued_requests": 0.0}, "no prompt waiting"),
        ({"queued_requests": 50.0, "isl": None}, "no mean prompt length"),
        # 5 prompts on 2 engines drain in ~60 ms: within the budget
        ({"queued_requests": 5.0}, "within the TTFT budget"),
        # a long queue, but 40 engines are already on their way
        ({"queued_requests": 200.0, "num_req": 600.0, "target_prefill": 40}, "already cover it"),
        # a long queue while the arrivals leave the ready prefill engines mostly idle: the prompts
        # wait for decode, and more prefill engines would not help them
        ({"queued_requests": 200.0, "num_req": 100.0}, "not a prefill queue"),
        # a long queue, and the decode pool holds every GPU of the budget
        ({"queued_requests": 200.0, "num_req": 600.0, "target_decode": 62}, "no GPU budget left"),
    ],
)
def test_no_scale(over, reason):
    result = check(**over)
    assert result.prefill_replicas is None
    assert reason in result.reason


def test_scale_up_numbers_by_hand():
    # 200 prompts ahead of a new one on 2 engines: 200 x 48.8 ms / 2 = 4.9 s, far past the budget.
    result = check(queued_requests=200.0, num_req=600.0)
    d = result.details
    assert d["queue_wait_ms"] == pytest.approx(200 * SERVICE_S / 2 * 1000)
    assert d["queue_wait_budget_ms"] == pytest.approx(BUDGET_S * 1000)
    rate = 60.0  # 600 arrivals in the 10 s window
    assert d["queue_arrival_rate_per_s"] == pytest.approx(rate)
    # Until new engines are ready (one interval) the 2 asked for fall behind by rate - 2/service.
    growth = (rate - 2 / SERVICE_S) * 60
    assert d["queue_backlog_at_ready"] == pytest.approx(200 + growth)
    assert d["queue_replicas_drain"] == math.ceil((200 + growth) * SERVICE_S / 60)
    # keeping up alone needs more than the offered load in engines
    assert d["queue_replicas_keep_up"] > rate * SERVICE_S
    assert result.prefill_replicas == d["queue_replicas_keep_up"] + d["queue_replicas_drain"]
    assert result.prefill_replicas > 2
    assert "prefill 2 -> " in result.reason


def test_scale_up_capped_by_the_budget_left_by_decode():
    result = check(queued_requests=2000.0, num_req=3000.0, target_decode=60)
    assert result.prefill_replicas == 4  # 64 GPUs - 60 decode
    assert "capped at 4" in result.reason


def test_window_and_times():
    assert queue_check_window_s(CONFIG) == 10.0  # two 5 s counter steps
    assert queue_check_window_s(CONFIG.model_copy(update={"queue_check_interval_s": 30.0})) == 30.0
    assert queue_check_times(60.0, 120.0, 5.0) == [65.0 + 5 * i for i in range(11)]
    assert queue_check_times(0.0, 60.0, 0.0) == []
    assert queue_check_times(0.0, 60.0, 25.0) == [25.0, 50.0]


def _naive(value) -> datetime:
    """A stored timestamp (SQLite hands back text) as a naive UTC datetime."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=None)


def _burst_after_a_cycle() -> Workload:
    """Three calm minutes (8 req/s), then from 185 s, just after a cycle, a 100 s burst at 70 req/s."""
    rng = np.random.default_rng(3)
    calm = np.sort(rng.uniform(0, 185, 8 * 185))
    burst = np.sort(rng.uniform(185, 285, 70 * 100))
    tail = np.sort(rng.uniform(285, 420, 8 * 135))
    arrival = np.concatenate([calm, burst, tail])
    n = arrival.size
    return Workload(arrival, np.full(n, 2000.0), np.full(n, 20.0), "burst-after-cycle")


def test_the_check_scales_before_the_next_cycle_and_is_recorded(tmp_path):
    workload = _burst_after_a_cycle()
    off = run_policy(workload, CONFIG.model_copy(update={"queue_check_interval_s": 0}), "default", profile=PROFILE)
    with Store(f"sqlite:///{tmp_path / 'q.db'}") as store:
        on = run_policy(workload, CONFIG, "default", profile=PROFILE, store=store, deployment_name="q")
        with store.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.trigger, d.decided_at, d.prefill_replicas, d.decode_replicas, d.reason, a.outcome "
                    "FROM planner_runs r JOIN decisions d ON d.run_id = r.id "
                    "LEFT JOIN scaling_actions a ON a.decision_id = d.id ORDER BY d.decided_at, d.id"
                )
            ).all()
            queue_observations = conn.execute(
                text(
                    "SELECT count(*) FROM observations o JOIN planner_runs r ON r.id = o.run_id "
                    "WHERE r.trigger = 'queue'"
                )
            ).scalar_one()
    checks = [r for r in rows if r.trigger == "queue"]
    assert checks, rows
    first = checks[0]
    # seen within the interval the burst began in, before the 240 s cycle
    decided_s = (_naive(first.decided_at) - workload.start.replace(tzinfo=None)).total_seconds()
    assert 185 < decided_s < 240
    assert first.outcome == "applied"
    assert "queue check" in first.reason
    before = [r for r in rows if r.trigger == "replay" and _naive(r.decided_at) < _naive(first.decided_at)][-1]
    assert first.prefill_replicas > before.prefill_replicas
    assert first.decode_replicas == before.decode_replicas  # decode is the cycle's business
    assert queue_observations == 0  # observation rows stay whole intervals
    # earlier engines, fewer late prompts
    assert on.sla_attainment > off.sla_attainment + 0.02, (on.sla_attainment, off.sla_attainment)


class _Connector:
    """Two prefill and one decode engine, all ready; records what it is asked for."""

    name = "recording"

    def __init__(self) -> None:
        self.applied: list[Replicas] = []

    def current_replicas(self) -> Replicas:
        return Replicas(2, 1)

    def ready_replicas(self) -> Replicas:
        return Replicas(2, 1)

    def rolling_out(self):
        return None

    def apply(self, targets, decision_id, requested_at):
        self.applied.append(targets)
        return ScalingOutcome(connector=self.name, requested=targets, outcome="applied", requested_at=requested_at)


class _Metrics:
    """A frontend read over the check's window: ``queued`` waiting, 600 arrivals, 2,000-token prompts;
    ``fail`` raises as an unreachable Prometheus would."""

    def __init__(self, queued: float | None, fail: bool = False) -> None:
        self.queued, self.fail = queued, fail

    def observe(self, window_start, window_end):
        if self.fail:
            raise ConnectionError("Prometheus at http://127.0.0.1:1 refused the connection")
        return Observation(
            window_start, window_end, 600.0, 900.0, 20.0, 2000.0, 100.0, 2.0, queued_requests=self.queued,
            sample_time=window_end,
        )


def _cycle(store, metrics, connector):
    dep = store.ensure_deployment("q", "dynamo", None, "vllm", "disagg")
    return PlanningCycle(
        config=CONFIG,
        profile=PROFILE,
        metrics=metrics,
        connector=connector,
        clock=SimulatedClock(datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)),
        predictor=None,
        store=store,
        deployment_id=dep,
        stabilizer=PlanningCycle.default_stabilizer(CONFIG),
    )


@pytest.mark.parametrize(
    ("metrics", "why"),
    [
        (_Metrics(None), "the frontend exports no queue"),
        (_Metrics(5.0), "a short queue"),
        (_Metrics(500.0, fail=True), "the frontend cannot be read"),
    ],
)
def test_a_check_that_does_not_scale_writes_nothing(sqlite_url, metrics, why):
    connector = _Connector()
    with Store(sqlite_url) as store:
        assert _cycle(store, metrics, connector).check_queue() is None, why
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM planner_runs")).scalar_one() == 0
    assert connector.applied == []


def test_a_check_that_scales_is_audited_and_remembered(sqlite_url):
    connector = _Connector()
    with Store(sqlite_url) as store:
        cycle = _cycle(store, _Metrics(500.0), connector)
        result = cycle.check_queue()
        assert result is not None and result.outcome is not None and result.outcome.outcome == "applied"
        (targets,) = connector.applied
        assert targets.prefill > 2 and targets.decode == 1
        with store.engine.connect() as conn:
            run = conn.execute(text("SELECT id, trigger, status FROM planner_runs")).one()
            decision = conn.execute(
                text("SELECT prefill_replicas, prefill_replicas_after_cap, decode_replicas FROM decisions")
            ).one()
            action = conn.execute(text("SELECT outcome FROM scaling_actions")).scalar_one()
        assert (run.trigger, run.status, action) == ("queue", "ok", "applied")
        assert decision.prefill_replicas == decision.prefill_replicas_after_cap == targets.prefill
        # the stabiliser holds the check's target for the scale-down window
        assert cycle.stabilizer is not None and cycle.stabilizer.recent[-1][1] == targets.prefill


def test_the_check_weighs_long_prompts_as_the_cycle_does():
    # The window's prompts: 60 % of 2,000 tokens and 40 % of 40,000, far beyond what meets a 500 ms
    # TTFT, so they are prefilled alone for their whole unloaded prefill time. Weighed at the
    # mean ISL at full-pass throughput, as the check did before, the arrivals would look like
    # a light load on 8 ready engines (15 req/s x 0.36 s = 5.4 busy); weighed as the sizing weighs
    # them (x 0.53 s = 8.0 busy), they keep the pool busy.
    histogram = isl_histogram([2000.0] * 6 + [40000.0] * 4, BUCKETS[promql.ISL])  # the frontend's buckets
    mean_isl = (6 * 2000 + 4 * 40000) / 10
    over = dict(queued_requests=30.0, num_req=150.0, isl=mean_isl, ready_prefill=8, target_prefill=8)
    at_the_mean = check(**over)
    weighed = check(**over, isl_histogram=histogram)
    feasible = feasible_load(histogram, mean_isl, max_feasible_isl(PROFILE, CONFIG.ttft_ms))
    mix = prefill_mix(PROFILE.prefill.curves, mean_isl, feasible, CONFIG)
    assert weighed.details["queue_service_ms"] == pytest.approx(mix.mean_service_s * 1000)
    assert weighed.details["queue_infeasible_share"] == pytest.approx(feasible.infeasible_share)
    assert feasible.infeasible_share > 0.3  # the 40,000-token prompts (their bucket is split at the limit)
    # the long prompts' unloaded prefill (prefill time grows faster than the prompt) makes each
    # prompt's mean engine time half as long again as the mean length at full-pass throughput
    assert mix.mean_service_s > 1.4 * mean_isl * PASS_S / 8192
    assert at_the_mean.prefill_replicas is None and "not a prefill queue" in at_the_mean.reason
    assert weighed.prefill_replicas is not None and weighed.prefill_replicas > 8
