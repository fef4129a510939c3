"""Frontiers (pure), the static-best staircase search, and the hindsight baselines on a short replay."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pytest

from planner_core.cli import main
from planner_core.config import BUNDLED_TRACE, make_config
from planner_core.profiles import load_profile
from planner_core.sim.baselines import (
    TUNED_DECODE_FACTORS,
    TUNED_PREFILL_FACTORS,
    StaticSearch,
    dynamo_tuned,
    pick_in_hindsight,
    replay_runner,
    run_compared,
    tuned_setting,
)
from planner_core.sim.frontier import FrontierPoint, cheapest_staircase, gpu_hours_at, pareto
from planner_core.sim.replay import compute_oracle, load_workload

PROFILE = load_profile(make_config().profile_dir())


def pts(*pairs: tuple[float, float]) -> list[FrontierPoint]:
    return [FrontierPoint(f"p{i}", g, a) for i, (g, a) in enumerate(pairs)]


def test_pareto_keeps_only_points_nothing_beats():
    points = pts((5.0, 0.90), (4.0, 0.95), (6.0, 0.99), (6.0, 0.97), (7.0, 0.98), (3.0, 0.80))
    front = pareto(points)
    assert [(p.gpu_hours, p.attainment) for p in front] == [(3.0, 0.80), (4.0, 0.95), (6.0, 0.99)]


@pytest.mark.parametrize(
    ("target", "step", "gpu_hours", "how"),
    [
        (0.95, False, 4.0, "exact"),  # at a point
        (0.97, False, 5.0, "interpolated"),  # halfway between (4, 0.95) and (6, 0.99)
        (0.98, False, 5.5, "interpolated"),
        (0.97, True, 6.0, "step"),  # replica counts: the cheapest point reaching it
        (0.80, False, 3.0, "exact"),
        (0.50, False, 3.0, "at_most"),  # below the cheapest point: its cost bounds the answer
        (0.995, False, None, "not_reached"),
    ],
)
def test_gpu_hours_at_matched_attainment(target, step, gpu_hours, how):
    points = pts((3.0, 0.80), (4.0, 0.95), (6.0, 0.99), (7.0, 0.985))  # the last is dominated
    matched = gpu_hours_at(points, target, step=step)
    assert matched.how == how
    if gpu_hours is None:
        assert matched.gpu_hours is None and str(matched) == "not reached"
    else:
        assert matched.gpu_hours == pytest.approx(gpu_hours)


def test_gpu_hours_at_on_no_points():
    assert gpu_hours_at([], 0.99).how == "not_reached"


def staircase(need: dict[int, int], big: int = 99):
    """Attainment 1 where decode >= need[prefill] (a monotone staircase), else 0; counts calls."""
    calls: list[tuple[int, int]] = []

    def attainment(p: int, d: int) -> float:
        calls.append((p, d))
        return 1.0 if d >= need.get(p, 0 if p >= max(need) else big) else 0.0

    return attainment, calls


@pytest.mark.parametrize(
    ("need", "cost", "best"),
    [
        # fewer prefill engines need more decode engines (they queue into decode later)
        ({1: 99, 2: 9, 3: 5, 4: 4, 5: 4, 6: 4}, (1, 1), (3, 5)),  # (4, 4) ties: the first found stays
        ({1: 99, 2: 9, 3: 5, 4: 4, 5: 4, 6: 4}, (1, 3), (4, 4)),  # decode GPUs dearer: more prefill
        ({1: 99, 2: 9, 3: 6, 4: 4, 5: 4, 6: 4}, (4, 1), (2, 9)),  # prefill dearer: fewer prefill
        ({1: 3, 2: 3, 3: 3, 4: 3, 5: 3, 6: 3}, (1, 1), (1, 3)),  # independent pools
    ],
)
def test_static_best_staircase_finds_the_cheapest_pair(need, cost, best):
    attainment, calls = staircase(need)
    price = lambda p, d: float(cost[0] * p + cost[1] * d)  # noqa: E731
    found = cheapest_staircase(attainment, 0.99, (1, 6), (1, 12), cost=price, guess=(3, 3))
    brute = min(
        ((p, d) for p, d in itertools.product(range(1, 7), range(1, 13)) if attainment(p, d) >= 0.99),
        key=lambda pd: (price(*pd), pd),
    )
    assert price(found.prefill, found.decode) == price(*brute)
    assert (found.prefill, found.decode) == best
    # a search, not the grid: each pair at most once, far fewer than the 72 pairs
    searched = calls[: found.evaluations]
    assert len(set(searched)) == found.evaluations < 25


def test_static_best_staircase_says_when_nothing_reaches_the_target():
    found = cheapest_staircase(lambda p, d: 0.5, 0.99, (1, 4), (1, 4))
    assert found.prefill is None and found.decode is None and math.isinf(found.cost) and found.evaluations == 1


@pytest.fixture(scope="module")
def short_replay():
    workload = load_workload(BUNDLED_TRACE, load_scale=3, seed=1, duration_s=300, copy_jitter_s=1.0)
    config = make_config(adjustment_interval_s=60, max_gpu_budget=64, load_predictor="constant")
    plan = compute_oracle(workload, PROFILE, config)
    return workload, config, plan, replay_runner(workload, PROFILE, plan)


def test_compared_dynamo_tuned_runs_the_grid_it_is_given(short_replay):
    """A smaller grid where each replay takes minutes (the mocker): only its points run."""
    _, config, plan, run = short_replay
    results, swept = run_compared(
        ["dynamo-tuned"], lambda p: run(config, p, None), run, config, plan, tuned_grid=((0.5, 1.0), (1.0,))
    )
    assert [r.setting for r in swept["dynamo-tuned"]] == [tuned_setting(0.5, 1.0), tuned_setting(1.0, 1.0)]
    assert results[0].setting in {tuned_setting(0.5, 1.0), tuned_setting(1.0, 1.0)}


def test_dynamo_tuned_picks_a_grid_point_in_hindsight_and_reports_it(short_replay):
    _, config, _, run = short_replay
    seen = []

    def counting(cfg, policy, fixed):
        seen.append((cfg.prefill_throughput_factor, cfg.decode_target_factor, cfg.load_predictor, policy))
        return run(cfg, policy, fixed)

    chosen = dynamo_tuned(counting, config)
    grid = {(p, d) for p in TUNED_PREFILL_FACTORS for d in TUNED_DECODE_FACTORS}
    assert {(p, d) for p, d, *_ in seen} == grid and len(seen) == len(grid)
    assert chosen.policy == "dynamo-tuned" and chosen.predictor == "constant"
    assert chosen.setting in {tuned_setting(p, d) for p, d in grid}
    # the pick is the cheapest grid point reaching the target, else the best attainment
    p, d = (float(x.split("x")[1]) for x in chosen.setting.split(", "))
    again = run(
        config.model_copy(update={"prefill_throughput_factor": p, "decode_target_factor": d}), "dynamo-tuned", None
    )
    assert again.gpu_hours == chosen.gpu_hours and again.feasible_sla_attainment == chosen.feasible_sla_attainment
    # less prefill throughput assumed, more GPUs: the knob does something
    low = run(config.model_copy(update={"prefill_throughput_factor": 0.5}), "dynamo-tuned", None)
    high = run(config.model_copy(update={"prefill_throughput_factor": 1.0}), "dynamo-tuned", None)
    assert low.prefill_gpu_hours > high.prefill_gpu_hours


def test_pick_in_hindsight_prefers_the_cheapest_that_reaches_the_target(short_replay):
    _, config, _, run = short_replay
    r = run(config, "oracle", None)
    a = dataclasses.replace(r, gpu_hours=5.0, feasible_sla_attainment=0.995)
    b = dataclasses.replace(r, gpu_hours=4.0, feasible_sla_attainment=0.991)
    c = dataclasses.replace(r, gpu_hours=3.0, feasible_sla_attainment=0.95)
    assert pick_in_hindsight([a, b, c], 0.99) is b
    assert pick_in_hindsight([a, b, c], 0.999) is a  # none reaches: the highest attainment


def test_static_best_reaches_the_target_with_fewer_gpus_than_one_less_engine(short_replay):
    _, config, plan, run = short_replay
    search = StaticSearch(run, config, plan)
    best = search.best(0.99)
    p, d = (int(x[:-1]) for x in best.setting.split("+"))
    assert best.policy == "static-best" and best.feasible_sla_attainment >= 0.99
    # one engine fewer in either pool misses the target (or is below the floor)
    for fewer in ((p - 1, d), (p, d - 1)):
        if min(fewer) >= 1:
            assert search.attainment(*fewer) < 0.99
    # every pair reaching the target costs at least as much
    assert all(search.cost(*pd) >= p + d for pd, r in search.tried.items() if r.feasible_sla_attainment >= 0.99)


def test_replay_cli_frontier_writes_the_plot_and_the_matched_table(tmp_path, capsys):
    code = main(
        [
            "replay", "--duration-s", "240", "--load-scale", "2", "--no-store", "--json",
            "--load-predictor", "constant", "--report-dir", str(tmp_path / "r"), "--frontier",
            "--compare", "default,static-best,oracle",
        ]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in out["results"]] == ["default", "static-best", "oracle"]
    assert out["results"][1]["setting"].endswith("D")
    frontier = out["frontier"]
    assert set(frontier["points"]) == {"default", "static-best"}
    assert frontier["targets"][0] == 0.99 and frontier["lower_bound_gpu_hours"] > 0
    assert (tmp_path / "r" / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="frontier.png"' in (tmp_path / "r" / "index.html").read_text()


@pytest.mark.parametrize(
    ("num_req", "factors", "prefill", "decode", "cap_binds"),
    [
        # light load: the cap does not bind, factor 1 / 1 is Dynamo's arithmetic exactly
        (600, (1.0, 1.0), None, None, False),
        # conv x10-like load: Dynamo plans ~700 sequences per engine (3 engines), the engines run
        # 256: 40,000 tok/s x 34.9 ms (the ITL at 256) = 1,394 in flight / 256 -> 6
        (12000, (1.0, 1.0), None, 6, True),
        # 0.6 of the profiled prefill throughput: 1 / 0.6 as many prefill engines (rounded up)
        (12000, (0.6, 1.0), 13, 6, True),
        # decode at 0.8 of the ITL SLA and of the cap: 50,000 tok/s x 30.5 ms / 205 -> 8 (7 at 1.0)
        (15000, (1.0, 0.8), None, 8, True),
    ],
)
def test_dynamo_tuned_sizing(num_req, factors, prefill, decode, cap_binds):
    from planner_core.records import LoadForecast
    from planner_core.sizing import size

    forecast = LoadForecast(float(num_req), 1155.0, 200.0)
    base = dict(adjustment_interval_s=60, max_gpu_budget=256)
    dynamo = size(forecast, PROFILE, make_config(policy="dynamo", **base))
    tuned = size(
        forecast,
        PROFILE,
        make_config(
            policy="dynamo-tuned", prefill_throughput_factor=factors[0], decode_target_factor=factors[1], **base
        ),
    )
    assert tuned.prefill_replicas == (prefill if prefill is not None else dynamo.prefill_replicas)
    if prefill is not None:
        assert tuned.prefill_replicas == math.ceil(
            dynamo.prefill_demand_tokens_per_s / (0.6 * dynamo.prefill_thpt_per_gpu)
        )
    assert tuned.decode_replicas == (decode if decode is not None else dynamo.decode_replicas)
    assert (tuned.decode_replicas > dynamo.decode_replicas) == cap_binds
    assert tuned.details["decode_replicas_for_max_num_seqs"] <= tuned.decode_replicas


def test_frontier_table_compares_at_matched_attainment():
    from planner_core.sim.frontier import FrontierReport

    report = FrontierReport(
        points={
            "default": pts((5.0, 0.95), (6.0, 0.97)),
            "static-best": pts((4.0, 0.96), (8.0, 0.999)),
            "dynamo-tuned": pts((3.0, 0.90)),
        },
        singles=[FrontierPoint("dynamo", 2.0, 0.01)],
        oracle=FrontierPoint("oracle", 3.0, 0.999),
        lower_bound_gpu_hours=2.5,
        lower_bound_attainment=0.99,
        targets=[0.99, 0.96],
    )
    m = report.matched
    assert [str(x) for x in m["default"]] == ["not reached", "5.50"]
    assert [str(x) for x in m["static-best"]] == ["8.00", "4.00"]
    assert [x.how for x in m["dynamo-tuned"]] == ["not_reached", "not_reached"]
    table = report.table()
    assert "at 96.00%: default needs 1.38x static-best's GPU-hours" in table
    assert "below 2.50 GPU-h" in table
    summary = report.summary()
    assert summary["gpu_hours_at_target"]["default"] == [None, pytest.approx(5.5)]
    json.dumps(summary)  # the bench's JSON line


def test_static_best_stops_failing_pairs_early_and_picks_the_same_pair():
    # checks every 60 intervals: every 5 minutes at a 5 s interval; at x10 the pairs with one or
    # two prefill engines, or two decode engines, miss most requests from the first minutes
    workload = load_workload(BUNDLED_TRACE, load_scale=10, seed=1, duration_s=600, copy_jitter_s=1.0)
    config = make_config(adjustment_interval_s=5, max_gpu_budget=64, load_predictor="constant")
    plan = compute_oracle(workload, PROFILE, config)
    full = StaticSearch(replay_runner(workload, PROFILE, plan), config, plan)
    cut = StaticSearch(replay_runner(workload, PROFILE, plan, stop_failing_static=True), config, plan)
    target = config.sla_attainment

    def same(a, b):
        return {k: v for k, v in dataclasses.asdict(a).items() if k != "wall_s"} == {
            k: v for k, v in dataclasses.asdict(b).items() if k != "wall_s"
        }

    assert same(full.best(target), cut.best(target))
    assert set(full.tried) == set(cut.tried)
    stopped = [pair for pair, r in cut.tried.items() if r.unfinished]
    assert stopped, "no pair stopped early: the test no longer exercises stop_below"
    for pair, r in cut.tried.items():
        if pair in stopped:  # a stopped pair fails, as its full replay does, and scores no higher
            assert r.feasible_sla_attainment < target and full.tried[pair].feasible_sla_attainment < target
            assert r.feasible_sla_attainment <= full.tried[pair].feasible_sla_attainment
        else:  # a pair replayed to the end is the same replay
            assert same(r, full.tried[pair])
