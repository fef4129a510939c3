"""The mocker replay engine (Dynamo 1.6.1's simulator, the optional ``mocker`` extra).

The input and bookkeeping tests need no mocker. The engine tests skip when the extra is not
installed, except under CI=true, where scripts/test.sh installs it: there they must run.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from planner_core.config import BUNDLED_TRACE, make_config
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim.mocker import (
    MockerConnector,
    MockerEngine,
    MockerFrontend,
    fixed_capacity_per_s,
    mocker_available,
    poisson_workload,
    replay_fixed,
    run_mocker_policy,
    waiting_for_first_token,
    worker_seconds,
    write_mooncake_trace,
    write_perf_npz,
)
from planner_core.sim.replay import Workload, compute_oracle, first_interval_replicas
from planner_core.traces import read_trace

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _need_mocker() -> None:
    if mocker_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("CI installs the mocker extra (scripts/test.sh): ai-dynamo-runtime is missing")
    pytest.skip("the optional mocker extra is not installed (pip install -e '.[mocker]')")


@pytest.fixture(scope="module")
def profile():  # type: ignore[no-untyped-def]
    return load_profile(make_config().profile_dir())


@pytest.fixture(scope="module")
def conv():  # type: ignore[no-untyped-def]
    return read_trace(BUNDLED_TRACE)


# ---------------------------------------------------------------------------------------------
# Inputs and bookkeeping (no mocker needed)
# ---------------------------------------------------------------------------------------------


def test_perf_npz_is_our_interpolation(profile, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_perf_npz(profile, tmp_path / "perf.npz")
    with np.load(path) as npz:
        assert set(npz.files) == {
            "prefill_isl",
            "prefill_ttft_ms",
            "decode_active_kv_tokens",
            "decode_context_length",
            "decode_itl",
        }
        isl, ttft = npz["prefill_isl"], npz["prefill_ttft_ms"]
        kv, ctx, itl = npz["decode_active_kv_tokens"], npz["decode_context_length"], npz["decode_itl"]
    assert isl[0] == profile.prefill.min_isl and isl[-1] == profile.prefill.max_isl
    # the profile's own measurements at its end points, our curve in between
    assert ttft[0] == pytest.approx(float(profile.prefill.ttft_ms_points[0]))
    assert ttft[-1] == pytest.approx(float(profile.prefill.ttft_ms_points[-1]))
    assert ttft[100] == pytest.approx(profile.prefill.ttft_ms(float(isl[100])))
    assert itl.shape == (kv.size, ctx.size)
    assert kv[-1] == profile.decode.max_kv_tokens
    i, j = 30, 40
    assert itl[i, j] == pytest.approx(profile.decode.surface.itl_ms_at_kv(kv[i] / kv[-1], ctx[j]))
    assert np.all(np.diff(itl[:, 50]) >= -1e-9), "ITL grows with the KV in use"


def test_mooncake_trace_has_unique_blocks_and_ms_timestamps(tmp_path: Path) -> None:
    workload = Workload(np.array([0.0, 0.5, 2.25]), np.array([100.0, 64.0, 1.4]), np.array([10.0, 0.0, 3.0]), "t")
    lines = [json.loads(x) for x in write_mooncake_trace(workload, tmp_path / "t.jsonl", 64).read_text().splitlines()]
    assert [x["timestamp"] for x in lines] == [0.0, 500.0, 2250.0]
    assert [x["input_length"] for x in lines] == [100, 64, 1]
    assert [x["output_length"] for x in lines] == [10, 1, 3]  # at least one output token
    assert [len(x["hash_ids"]) for x in lines] == [2, 1, 1]
    ids = [h for x in lines for h in x["hash_ids"]]
    assert len(ids) == len(set(ids)), "no request shares a KV block with another: prefix caching off"


def _snapshot(now_s: float, done: int, isl: float, osl: float, ttft: float, itl: float, num_req: int = 0) -> dict:
    return {
        "now_ms": now_s * 1000.0,
        "active_prefill_count": 2,
        "active_decode_count": 3,
        "traffic": {
            "duration_s": 1.0,
            "num_req": num_req,
            "avg_isl": isl,
            "avg_osl": osl,
            "avg_ttft_ms": ttft,
            "avg_itl_ms": itl,
            "shape_count": done,
            "ttft_count": done,
            "itl_count": done,
        },
    }


def test_frontend_counts_arrivals_and_weights_means_by_counts() -> None:
    # arrivals in [1, 4): none in the second to 2 s, six in the next, one in the last
    arrival_s = np.array([0.5, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 3.5, 4.5])
    isl = np.full(arrival_s.size, 100.0)
    frontend = MockerFrontend(EPOCH, arrival_s, isl)
    # the mocker's own per-tick arrival counts are off at a burst; the frontend does not read them
    frontend.record(_snapshot(1, 1, 1000, 100, 50, 10, num_req=4))
    frontend.record(_snapshot(2, 3, 2000, 200, 90, 20, num_req=2))
    frontend.record(_snapshot(3, 0, 0, 0, 0, 0, num_req=4))  # nothing finished this second
    frontend.record(_snapshot(4, 1, 500, 50, 30, 5, num_req=1))
    obs = frontend.observe(EPOCH + timedelta(seconds=1), EPOCH + timedelta(seconds=4))
    assert obs.num_req == 7 and obs.arrival_counts == (0, 6, 1) and obs.arrival_window_s == 1.0
    assert obs.isl == pytest.approx((3 * 2000 + 500) / 4)
    assert obs.osl == pytest.approx((3 * 200 + 50) / 4)
    assert obs.ttft_ms == pytest.approx((3 * 90 + 30) / 4)
    assert obs.itl_ms == pytest.approx((3 * 20 + 5) / 4)
    assert obs.request_duration_s == pytest.approx((obs.ttft_ms + obs.itl_ms * (obs.osl - 1)) / 1000)
    assert obs.current == Replicas(2, 3) and obs.quality == "ok"
    idle = frontend.observe(EPOCH + timedelta(seconds=10), EPOCH + timedelta(seconds=20))
    assert idle.num_req is None and idle.quality == "no_data", "no snapshot is no data, not zero traffic"
    partial = frontend.observe(EPOCH + timedelta(seconds=2), EPOCH + timedelta(seconds=6))
    assert partial.quality == "partial" and partial.num_req == 7, "up to the newest tick (4 s) only"


def test_frontend_reads_the_counter_at_the_scrape_step_and_counts_prompts_per_bucket() -> None:
    """Both engines' frontends read the request counter at ``arrival_resolution_s``: the burst
    pattern the sizing plans from is the same on either engine."""
    arrival_s = np.array([0.5, 1.5, 2.5, 3.5, 4.2])
    isl = np.array([100.0, 200.0, 30_000.0, 400.0, 500.0])
    frontend = MockerFrontend(EPOCH, arrival_s, isl, resolution_s=2.0)
    for second in range(1, 7):
        frontend.record(_snapshot(second, 0, 0, 0, 0, 0))
    obs = frontend.observe(EPOCH, EPOCH + timedelta(seconds=4))
    assert obs.arrival_counts == (2, 2) and obs.arrival_window_s == 2.0 and obs.num_req == 4
    assert obs.isl_histogram is not None and obs.isl_histogram[-1][1] == 4, "the prompts accepted in [0, 4)"
    cumulative = dict(obs.isl_histogram)
    assert (cumulative[15_000.0], cumulative[31_000.0]) == (3, 4), "the 30,000-token prompt in its bucket"
    with pytest.raises(ValueError, match="arrival_resolution_s"):
        MockerFrontend(EPOCH, arrival_s, isl, resolution_s=0.0)


def test_router_mode_is_checked() -> None:
    assert MockerEngine().router_mode == "kv_router"
    with pytest.raises(ValueError, match="router_mode: unknown 'least_loaded'; choose kv_router or round_robin"):
        MockerEngine(router_mode="least_loaded")


def test_connector_keeps_a_pool_it_is_not_asked_to_change() -> None:
    connector = MockerConnector(Replicas(2, 3))
    out = connector.apply(Replicas(4, None), None, EPOCH)
    assert connector.current_replicas() == Replicas(4, 3) and out.outcome == "applied"
    assert connector.apply(Replicas(4, 3), None, EPOCH).outcome == "unchanged"


def test_worker_seconds_from_lifecycle_operations() -> None:
    ops = [
        {"at_ms": 1000.0, "pool": "prefill", "operation_ordinal": 0,
         "transitions": [{"worker_id": 1, "prior_state": None, "state": "starting"}]},
        {"at_ms": 61000.0, "pool": "prefill", "operation_ordinal": 1,
         "transitions": [{"worker_id": 1, "prior_state": "starting", "state": "active"}]},
        {"at_ms": 90000.0, "pool": "decode", "operation_ordinal": 2,
         "transitions": [{"worker_id": 0, "prior_state": "active", "state": "draining"}]},
        {"at_ms": 95000.0, "pool": "decode", "operation_ordinal": 3,
         "transitions": [{"worker_id": 0, "prior_state": "draining", "state": "removed"}]},
    ]  # fmt: skip
    seconds = worker_seconds(ops, Replicas(1, 2), end_ms=100_000.0)
    # prefill: worker 0 all along, worker 1 from its request (start-up costs); decode: 0 until removed
    assert seconds == {"prefill": pytest.approx(100 + 99), "decode": pytest.approx(95 + 100)}


# ---------------------------------------------------------------------------------------------
# The engine itself
# ---------------------------------------------------------------------------------------------


def test_one_request_is_the_profile_on_both_engines(profile) -> None:  # type: ignore[no-untyped-def]
    _need_mocker()
    workload = Workload(np.array([0.0]), np.array([3000.0]), np.array([150.0]), "one")
    ours = replay_fixed("ours", workload, profile, Replicas(1, 1))
    mocker = replay_fixed("mocker", workload, profile, Replicas(1, 1))
    prefill_ms = profile.prefill.ttft_ms(3000)
    itl_ms = profile.decode.surface.itl_ms(1, 3000 + 75)
    # Both: the prefill, then the first token out of the decode engine's first step.
    assert ours.ttft_ms[0] == pytest.approx(prefill_ms + itl_ms, rel=1e-9)
    assert mocker.ttft_ms[0] == pytest.approx(ours.ttft_ms[0], rel=0.02)
    assert mocker.itl_ms[0] == pytest.approx(ours.itl_ms[0], rel=0.1)


def test_a_batch_of_prompts_takes_the_same_pass_on_both_engines(profile) -> None:  # type: ignore[no-untyped-def]
    """Four 1,000-token prompts at once: one 4,000-token prefill pass on both engines."""
    _need_mocker()
    workload = Workload(np.zeros(4), np.full(4, 1000.0), np.full(4, 10.0), "batch")
    ours = replay_fixed("ours", workload, profile, Replicas(1, 1))
    mocker = replay_fixed("mocker", workload, profile, Replicas(1, 1))
    expected = profile.prefill.ttft_ms(4000) + profile.decode.surface.itl_ms(4, 1005)
    assert ours.ttft_ms == pytest.approx(np.full(4, expected), rel=0.02)
    assert mocker.ttft_ms == pytest.approx(np.full(4, expected), rel=0.02)


@pytest.mark.slow
def test_engines_agree_at_fixed_replicas_from_light_to_saturated(profile, conv) -> None:  # type: ignore[no-untyped-def]
    """The same requests on both engines (docs/mocker.md states the tolerances and why): 2 + 2
    engines, 60 s of Poisson arrivals at 25, 60 and 90 % of the cluster's capacity."""
    _need_mocker()
    replicas = Replicas(2, 2)
    capacity = fixed_capacity_per_s(profile, conv.isl, conv.osl, replicas)["cluster"]
    for name, fraction in (("light", 0.25), ("medium", 0.6), ("saturated", 0.9)):
        workload = poisson_workload(fraction * capacity, 60.0, conv.isl, conv.osl, seed=1, name=name)
        ours = replay_fixed("ours", workload, profile, replicas)
        mocker = replay_fixed("mocker", workload, profile, replicas)
        assert ours.completed == mocker.completed == len(workload), name
        po, pm = ours.percentiles(), mocker.percentiles()
        # the target: p50 and p90 TTFT and ITL within 15 %
        for key in ("p50_ttft_ms", "p90_ttft_ms", "p50_itl_ms", "p90_itl_ms", "p99_itl_ms"):
            assert po[key] == pytest.approx(pm[key], rel=0.15), (name, key)
        # the TTFT tail: the mocker's sequence cap and per-worker routing queue a little more
        assert po["p99_ttft_ms"] == pytest.approx(pm["p99_ttft_ms"], rel=0.35), name


@pytest.mark.slow
def test_production_cycle_runs_in_the_mocker_loop(profile, conv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _need_mocker()
    from planner_core.store import Store

    # the loop is under test, not the forecast: the cheapest predictor
    config = make_config(adjustment_interval_s=30, max_gpu_budget=32, load_predictor="constant")
    # A load step: light for two intervals, then about four times as much.
    quiet = poisson_workload(8.0, 60.0, conv.isl, conv.osl, seed=2)
    busy = poisson_workload(40.0, 90.0, conv.isl, conv.osl, seed=3)
    workload = Workload(
        np.concatenate([quiet.arrival_s, busy.arrival_s + 60.0]),
        np.concatenate([quiet.isl, busy.isl]),
        np.concatenate([quiet.osl, busy.osl]),
        "step",
    )
    store = Store(f"sqlite:///{tmp_path / 'planner.db'}")
    plan = compute_oracle(workload, profile, config)
    result = run_mocker_policy(workload, config, "default", startup_s=10.0, store=store, oracle_plan=plan)
    assert result.requests == len(workload) and result.unfinished == 0
    assert result.intervals == math.ceil(workload.duration_s / 30)
    start = first_interval_replicas(workload, profile, config)
    targets = [t for t in result.timeline["prefill_target"] if t is not None]
    assert targets[0] == start.prefill and max(targets) > start.prefill, "the cycle scaled prefill up for the step"
    observed = [n for n in result.timeline["num_req"] if n is not None]
    assert observed[0] == pytest.approx(np.sum(workload.arrival_s < 30), abs=2)
    assert result.gpu_hours > 0 and result.scaling_actions >= 1
    with store.engine.connect() as conn:
        from sqlalchemy import text

        cycles = conn.execute(text("select count(*) from planner_runs where trigger = 'replay'")).scalar_one()
        checks = conn.execute(text("select count(*) from planner_runs where trigger = 'queue'")).scalar_one()
    assert cycles == result.intervals, "every interval's cycle was persisted"
    # the step's queue is seen between cycles, as on our engine, and the check that scaled is recorded
    assert checks >= 1


def test_both_engines_plan_the_same_replicas_for_the_same_requests(profile) -> None:  # type: ignore[no-untyped-def]
    """The planning cycle sees the same load on either engine and decides the same: the same
    burst pattern (the counter read at the scrape step, 5 s: at 1 s this trace's bursts size
    prefill for 5 engines, not 3), and the same stabiliser memory of the replicas the replay
    starts with (the first window is quiet but the second is not: without that memory the first
    decision scales down for the busy interval). Every request has the same lengths, so the
    windows' mean ISL and OSL agree whichever requests each engine's frontend counts in them."""
    _need_mocker()
    from planner_core.sim.replay import run_policy

    config = make_config(adjustment_interval_s=30, max_gpu_budget=64, load_predictor="constant")
    rng = np.random.default_rng(7)
    background = rng.uniform(0.0, 240.0, 2400)
    bursts = [t + rng.uniform(0.0, 1.0, 120) for t in range(30, 90, 10)]  # 120 requests within 1 s
    arrival_s = np.sort(np.concatenate([background, *bursts]))
    workload = Workload(arrival_s, np.full(arrival_s.size, 1500.0), np.full(arrival_s.size, 150.0), "bursts")
    plan = compute_oracle(workload, profile, config)
    ours = run_policy(workload, config, "default", startup_s=10.0, oracle_plan=plan, profile=profile)
    mocker = run_mocker_policy(workload, config, "default", startup_s=10.0, oracle_plan=plan, profile=profile)
    for key in ("prefill_target", "decode_target"):
        assert mocker.timeline[key] == ours.timeline[key], key
    start = first_interval_replicas(workload, profile, config, 10.0)
    assert ours.timeline["prefill_target"][:2] == [start.prefill] * 2, "the quiet first window scaled nothing down"
    assert max(ours.timeline["prefill_target"]) == start.prefill, "5 s steps: the bursts need no more"


def test_cli_says_which_engine_runs_dynamo16_and_how_to_get_the_mocker(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from planner_core import cli
    from planner_core.sim import mocker

    assert cli.main(["replay", "--policy", "dynamo-1.6", "--no-store", "--duration-s", "60"]) == 2
    assert "--engine mocker" in capsys.readouterr().err
    monkeypatch.setattr(mocker, "mocker_available", lambda: False)
    assert cli.main(["replay", "--engine", "mocker", "--no-store", "--duration-s", "60"]) == 2
    assert "pip install -e '.[mocker]'" in capsys.readouterr().err


def test_replay_policy_is_not_the_config_policy(capsys) -> None:  # type: ignore[no-untyped-def]
    """`--policy static` once failed: the namespace's `policy` was read as the sizing policy."""
    from planner_core import cli

    assert cli.main(["replay", "--policy", "static", "--no-store", "--duration-s", "60", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["policy"] == "static"


def test_hindsight_baselines_run_on_the_mocker(profile, conv) -> None:  # type: ignore[no-untyped-def]
    """static holds the replicas it is given; dynamo-tuned runs its grid point and reports it."""
    _need_mocker()
    from functools import partial

    from planner_core.sim.baselines import pick_in_hindsight, sweep_dynamo_tuned
    from planner_core.sim.mocker import mocker_inputs

    config = make_config(adjustment_interval_s=30, max_gpu_budget=32, load_predictor="constant")
    workload = poisson_workload(30.0, 90.0, conv.isl, conv.osl, seed=4)
    plan = compute_oracle(workload, profile, config)
    with mocker_inputs(workload, profile) as inputs:
        run = partial(run_mocker_policy, workload, oracle_plan=plan, profile=profile, inputs=inputs, startup_s=10.0)
        static = run(config, "static", fixed=Replicas(2, 3))
        assert set(static.timeline["prefill_target"]) == {2} and set(static.timeline["decode_target"]) == {3}
        assert static.gpu_hours == pytest.approx(5 * (workload.duration_s + 1) / 3600, rel=0.2)
        grid = sweep_dynamo_tuned(
            lambda cfg, policy, fixed: run(cfg, policy, fixed=fixed),
            config,
            prefill_factors=(0.5, 1.0),
            decode_factors=(1.0,),
        )
    assert [r.setting for r in grid] == ["prefill x0.5, decode x1", "prefill x1, decode x1"]
    assert all(r.policy == "dynamo-tuned" and r.predictor == "constant" and r.unfinished == 0 for r in grid)
    assert grid[0].prefill_gpu_hours >= grid[1].prefill_gpu_hours  # half the throughput assumed: more engines
    assert pick_in_hindsight(grid, 0.99).setting in {r.setting for r in grid}


def test_frontend_reports_the_prompts_waiting_for_a_first_token() -> None:
    """The queue the check between cycles reads: prompts queued or in a pass on the prefill
    workers, and those prefilled and waiting for a decode worker, at the newest tick."""
    frontend = MockerFrontend(EPOCH, np.array([0.5]), np.array([100.0]))
    tick = _snapshot(1, 0, 0, 0, 0, 0)
    tick["prefill_fpm_snapshots"] = [
        {"num_queued_prefill": 7, "num_prefill_requests": 2},
        {"num_queued_prefill": 0, "num_prefill_requests": 1},
    ]
    tick["decode_fpm_snapshots"] = [{"num_queued_decode": 4, "num_decode_requests": 256}]
    assert waiting_for_first_token(tick) == 14
    frontend.record(_snapshot(0.5, 0, 0, 0, 0, 0))  # an older tick with nothing in the snapshots
    frontend.record(tick)
    obs = frontend.observe(EPOCH, EPOCH + timedelta(seconds=1))
    assert obs.queued_requests == 14.0
    connector = MockerConnector(Replicas(5, 3))
    assert connector.ready_replicas() == Replicas(5, 3), "before any tick: the targets"
    connector.ready = obs.current
    assert connector.ready_replicas() == Replicas(2, 3) and connector.current_replicas() == Replicas(5, 3)
