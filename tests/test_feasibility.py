"""Requests no scaling can serve: the replay's mask and the planner's estimate from a histogram."""

import math

import numpy as np
import pytest

from planner_core.config import BUNDLED_PROFILE_DIR
from planner_core.feasibility import (
    FeasibleLoad,
    feasible_load,
    infeasible_mask,
    isl_histogram,
    max_feasible_isl,
    unloaded_latency_ms,
)
from planner_core.profiles import load_profile

PROFILE = load_profile(BUNDLED_PROFILE_DIR)
INF = math.inf


def test_unloaded_latency_is_the_profile_alone_on_idle_engines():
    ttft, itl = unloaded_latency_ms(PROFILE, [3000, 40_000], [100, 10])
    surface = PROFILE.decode.surface
    assert itl[0] == pytest.approx(surface.itl_ms(1, 3050))
    # the prefill, then the decode engine's first step emits the first token
    assert ttft[0] == pytest.approx(PROFILE.prefill.ttft_ms(3000) + itl[0])
    assert ttft[1] == pytest.approx(PROFILE.prefill.ttft_ms(40_000) + itl[1])  # extrapolated, > 1 s
    assert ttft[1] > 1000


def test_unloaded_latency_is_the_simulators_alone():
    from planner_core.records import Replicas
    from planner_core.sim import ClusterSimulator

    isl, osl = np.array([100.0, 3000.0, 9000.0, 25_000.0]), np.array([7.0, 300.0, 20.0, 50.0])
    arrival = np.arange(isl.size) * 100.0  # one at a time
    sim = ClusterSimulator(PROFILE, arrival, isl, osl, initial=Replicas(1, 1))
    sim.advance_to(math.inf)
    res = sim.results()
    ttft, itl = unloaded_latency_ms(PROFILE, isl, osl)
    assert res.ttft_ms == pytest.approx(ttft, rel=1e-9)
    assert res.itl_ms == pytest.approx(itl, rel=1e-9)


def test_infeasible_mask_counts_prompts_too_long_for_the_ttft_sla_and_itl_too_slow_alone():
    limit = max_feasible_isl(PROFILE, 500.0)
    isl = np.array([100, 3000, limit - 10, limit + 10, 191_000])
    osl = np.full(isl.size, 100)
    assert infeasible_mask(PROFILE, isl, osl, 500.0, 50.0).tolist() == [False, False, False, True, True]
    # an ITL SLA below what one request alone gets: every request is infeasible
    assert infeasible_mask(PROFILE, isl, osl, 500.0, 1.0).all()


def test_isl_histogram_is_cumulative_with_prometheus_le_rule():
    assert isl_histogram([100, 100.5, 5000, 2e5], [100, 1000, 10_000]) == (
        (100.0, 1.0),
        (1000.0, 2.0),
        (10_000.0, 3.0),
        (INF, 4.0),
    )
    assert isl_histogram([], [100]) == ((100.0, 0.0), (INF, 0.0))


HIST = ((1000.0, 50.0), (10_000.0, 80.0), (30_000.0, 90.0), (INF, 100.0))


@pytest.mark.parametrize(
    ("histogram", "mean_isl", "max_isl", "expected"),
    [
        # no histogram, an empty one, no limit: nothing left out
        (None, 2000.0, 20_000.0, FeasibleLoad(20_000.0, 0.0, 0.0, 2000.0)),
        (((1000.0, 0.0), (INF, 0.0)), 2000.0, 20_000.0, FeasibleLoad(20_000.0, 0.0, 0.0, 2000.0)),
        (HIST, 2000.0, INF, FeasibleLoad(INF, 0.0, 0.0, 2000.0)),
        # threshold on a bucket bound: the 10 prompts of the +Inf bucket (30k-60k) are out. The
        # midpoints (500, 5,500, 20,000, 45,000) carry 840,000 tokens against the mean's 500,000:
        # scaled by 500/840 they are 298, 3,274, 11,905 and 26,786, which is below its bucket:
        # held at 30,000
        (
            HIST,
            5000.0,
            30_000.0,
            FeasibleLoad(
                30_000.0, 100.0, 10.0, (50 * 500 + 30 * 5500 + 10 * 20_000) / 90 * 500 / 840, ((10.0, 30_000.0),)
            ),
        ),
        # threshold inside the 10k-30k bucket: split at it, half of its 10 prompts are out (at
        # 20,000, the lower bound of their part) with the 10 above
        (
            HIST,
            5000.0,
            20_000.0,
            FeasibleLoad(20_000.0, 100.0, 15.0, 1918.7675070028013, ((5.0, 20_000.0), (10.0, 30_000.0))),
        ),
        (
            HIST,
            5000.0,
            10_000.0,
            FeasibleLoad(10_000.0, 100.0, 20.0, 1413.6904761904761, ((10.0, 20_000 * 500 / 840), (10.0, 30_000.0))),
        ),
        # a mean far above the midpoints: every part at its bucket's upper edge; feasible mean capped
        (
            HIST,
            40_000.0,
            20_000.0,
            FeasibleLoad(20_000.0, 100.0, 15.0, 5294.117647058823, ((5.0, 30_000.0), (10.0, 60_000.0))),
        ),
        # a threshold inside the +Inf bucket (taken as 30k-60k): a third of it is out
        (HIST, 5000.0, 50_000.0, FeasibleLoad(50_000.0, 100.0, 10 / 3, 4470.443349753695, ((10 / 3, 50_000.0),))),
        # every prompt too long
        (((10.0, 0.0), (100.0, 0.0), (INF, 7.0)), 50_000.0, 50.0, FeasibleLoad(50.0, 7.0, 7.0, 50.0, ((7.0, 200.0),))),
    ],
)
def test_feasible_load_from_a_histogram(histogram, mean_isl, max_isl, expected):
    got = feasible_load(histogram, mean_isl, max_isl)
    assert got.max_feasible_isl == expected.max_feasible_isl
    assert got.observed == expected.observed
    assert got.infeasible == pytest.approx(expected.infeasible)
    assert got.feasible_isl == pytest.approx(expected.feasible_isl)
    assert [n for n, _ in got.infeasible_parts] == pytest.approx([n for n, _ in expected.infeasible_parts])
    assert [x for _, x in got.infeasible_parts] == pytest.approx([x for _, x in expected.infeasible_parts])


def test_feasible_load_on_real_prompts_estimates_the_long_prompts_prefill_time():
    """Mooncake-like lengths: the histogram estimate against the exact requests."""
    from planner_core.metrics.exporter import BUCKETS
    from planner_core.metrics.promql import ISL

    rng = np.random.default_rng(0)
    isl = np.concatenate([rng.uniform(500, 16_000, 600), rng.uniform(16_000, 120_000, 400)])
    limit = max_feasible_isl(PROFILE, 500.0)
    est = feasible_load(isl_histogram(isl.tolist(), BUCKETS[ISL]), float(isl.mean()), limit)
    out = isl > limit
    # the 15k-31k bucket holding the limit is split evenly: 410 found for 380
    assert 0.95 * out.sum() <= est.infeasible <= 1.1 * out.sum()
    assert est.feasible_isl <= limit
    assert est.feasible_isl == pytest.approx(float(isl[~out].mean()), rel=0.1)
    # what the sizing needs from them: their prefill time, within 1 % here (exact 1,342 s)
    exact_s = sum(PROFILE.prefill.ttft_ms(float(x)) for x in isl[out]) / 1000.0
    est_s = sum(n * PROFILE.prefill.ttft_ms(x) for n, x in est.infeasible_parts) / 1000.0
    assert est_s == pytest.approx(exact_s, rel=0.01)


def test_replay_scores_all_requests_and_the_feasible_ones():
    from planner_core.config import make_config
    from planner_core.sim.replay import score_requests

    config = make_config()  # 500 ms / 50 ms
    nan = math.nan
    ttft = np.array([100.0, 600.0, 100.0, 9000.0, nan, 400.0])
    itl = np.array([10.0, 10.0, 60.0, 10.0, nan, 10.0])
    infeasible = np.array([False, False, False, True, False, True])
    s = score_requests(ttft, itl, infeasible, config)
    assert s["sla_attainment"] == pytest.approx(2 / 6)  # requests 0 and 5
    assert s["feasible_sla_attainment"] == pytest.approx(1 / 4)  # of 0, 1, 2, 4: only 0
    assert s["infeasible_requests"] == 2
    assert s["unfinished"] == 1
    # no feasible request at all: nothing to miss
    assert score_requests(ttft[:1], itl[:1], np.array([True]), config)["feasible_sla_attainment"] == 1.0


def test_replay_result_reports_infeasible_prompts_beyond_the_profile():
    from planner_core.config import make_config
    from planner_core.sim.replay import Workload, run_policy

    rng = np.random.default_rng(1)
    arrival = np.sort(rng.uniform(0, 300, 600))
    isl = np.where(np.arange(600) % 10 == 0, 50_000.0, 1000.0)  # every tenth prompt takes ~2 s alone
    workload = Workload(arrival, isl, np.full(600, 100.0), "long-prompts")
    config = make_config(adjustment_interval_s=60, max_gpu_budget=64, load_predictor="constant")
    result = run_policy(workload, config, "oracle", profile=PROFILE)
    assert result.infeasible_requests == 60
    assert result.sla_attainment <= 0.9  # the long ones cannot meet 500 ms
    assert result.feasible_sla_attainment > result.sla_attainment
    assert result.summary()["feasible_sla_attainment"] == result.feasible_sla_attainment
