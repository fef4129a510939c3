"""Oracle baseline: minimality against the simulator, search correctness, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner_core.config import BUNDLED_PROFILE_DIR
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim import ClusterSimulator, oracle_gpu_seconds, oracle_replicas
from planner_core.sim.cluster import PrefillPassTime, prefill_service_s
from planner_core.sim.decode_pool import ItlModel
from planner_core.sim.oracle import _prefill_misses, _smallest, simulate_decode_pool

TTFT_MS = 300.0
ITL_MS = 20.0


@pytest.fixture(scope="module")
def profile():
    return load_profile(BUNDLED_PROFILE_DIR)


def poisson_interval(rate: float, seconds: float, seed: int):
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * seconds)
    arrival = np.sort(rng.uniform(0, seconds, n))
    isl = rng.integers(100, 6000, n).astype(float)
    osl = rng.integers(10, 600, n).astype(float)
    return arrival, isl, osl


def sim_attainment(profile, arrival, isl, osl, replicas: Replicas) -> tuple[float, float]:
    """TTFT and ITL attainment of the cluster simulator with these replicas ready at t=0 (decode
    with the oracle's reserve admission; prefill batched as in both)."""
    sim = ClusterSimulator(profile, arrival, isl, osl, initial=replicas, startup_s=0, kv_admission="reserve")
    sim.advance_to(float(arrival[-1]) + 3600)
    res = sim.results()
    assert res.finished.all()
    return float(np.mean(res.ttft_ms <= TTFT_MS)), float(np.mean(res.itl_ms <= ITL_MS))


@pytest.mark.parametrize("seed", [0, 1])
def test_oracle_is_minimal_in_the_simulator(profile, seed):
    """The oracle's counts meet 99 % in the full simulator (other pool ample), one fewer does not."""
    arrival, isl, osl = poisson_interval(60.0, 60.0, seed)
    (plan,) = oracle_replicas(profile, arrival, isl, osl, 60.0, TTFT_MS, ITL_MS)
    assert plan.prefill >= 2 and plan.decode >= 2
    ample = 64
    ttft_ok, _ = sim_attainment(profile, arrival, isl, osl, Replicas(plan.prefill, ample))
    ttft_short, _ = sim_attainment(profile, arrival, isl, osl, Replicas(plan.prefill - 1, ample))
    assert ttft_ok >= 0.99 > ttft_short
    _, itl_ok = sim_attainment(profile, arrival, isl, osl, Replicas(ample, plan.decode))
    _, itl_short = sim_attainment(profile, arrival, isl, osl, Replicas(ample, plan.decode - 1))
    assert itl_ok >= 0.99 > itl_short


def test_decode_pool_matches_simulator(profile):
    arrival, isl, osl = poisson_interval(40.0, 60.0, 3)
    n_decode = 3
    sim = ClusterSimulator(
        profile, arrival, isl, osl, initial=Replicas(64, n_decode), startup_s=0, kv_admission="reserve"
    )
    sim.advance_to(4000)
    res = sim.results()
    join = arrival + prefill_service_s(profile, isl)
    order = np.argsort(join, kind="stable")
    itl = [math.nan] * arrival.size
    wait = [math.nan] * arrival.size
    simulate_decode_pool(
        join[order].tolist(),
        (isl + osl / 2)[order].tolist(),
        (isl + osl)[order].tolist(),
        osl[order].tolist(),
        n_decode,
        ItlModel(profile.decode.surface),
        itl_out=itl,
        wait_out=wait,
    )
    assert np.allclose(np.array(itl) * 1000, res.itl_ms[order], rtol=1e-9)
    assert np.all(np.array(wait) == 0)


def test_constant_load_prefill_count(profile):
    # evenly spaced identical requests, SLA barely above the prefill time: no queueing allowed,
    # so the oracle needs ceil(service / gap) workers
    isl = 4000.0
    svc = prefill_service_s(profile, np.array([isl]))[0]
    gap = svc / 2.5
    n = int(60 / gap)
    arrival = np.arange(n) * gap
    (plan,) = oracle_replicas(profile, arrival, np.full(n, isl), np.full(n, 50.0), 60.0, svc * 1000 * 1.01, 50.0)
    assert plan.prefill == 3


def test_intervals_empty_and_bounds(profile):
    arrival = np.array([5.0, 6.0, 130.0])
    isl = np.full(3, 1000.0)
    osl = np.full(3, 100.0)
    plan = oracle_replicas(profile, arrival, isl, osl, 60.0, TTFT_MS, ITL_MS)
    assert plan == [Replicas(1, 1), Replicas(1, 1), Replicas(1, 1)]
    plan = oracle_replicas(profile, arrival, isl, osl, 60.0, TTFT_MS, ITL_MS, min_replicas=0)
    assert plan[1] == Replicas(0, 0) and plan[0] == Replicas(1, 1)
    plan = oracle_replicas(profile, arrival, isl, osl, 60.0, TTFT_MS, ITL_MS, start_s=60.0, num_intervals=4)
    assert len(plan) == 4
    assert oracle_replicas(profile, np.zeros(0), np.zeros(0), np.zeros(0), 60.0, TTFT_MS, ITL_MS) == []
    with pytest.raises(ValueError):
        oracle_replicas(profile, arrival, isl, osl, 0.0, TTFT_MS, ITL_MS)
    with pytest.raises(ValueError):
        oracle_replicas(profile, arrival, isl, osl, 60.0, TTFT_MS, ITL_MS, attainment=1.5)


def test_unreachable_sla_is_excused_and_max_caps(profile):
    arrival, isl, osl = poisson_interval(30.0, 60.0, 4)
    # a TTFT SLA below every prefill time: no count can help, so the pool stays at the minimum
    (plan,) = oracle_replicas(profile, arrival, isl, osl, 60.0, 1.0, ITL_MS)
    assert plan.prefill == 1
    (plan,) = oracle_replicas(profile, arrival, isl, osl, 60.0, TTFT_MS, ITL_MS, max_replicas=2)
    assert plan.prefill <= 2 and plan.decode <= 2


def test_heavier_load_needs_more(profile):
    light = oracle_replicas(profile, *poisson_interval(20.0, 60.0, 5), 60.0, TTFT_MS, ITL_MS)[0]
    heavy = oracle_replicas(profile, *poisson_interval(80.0, 60.0, 5), 60.0, TTFT_MS, ITL_MS)[0]
    assert heavy.prefill > light.prefill and heavy.decode > light.decode


def test_gpu_seconds():
    plan = [Replicas(2, 3), Replicas(1, 1)]
    assert oracle_gpu_seconds(plan, 60.0, 2, 4) == {"prefill": 3 * 60 * 2, "decode": 4 * 60 * 4}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300))
def test_smallest_finds_threshold(threshold, guess, hi):
    calls = []

    def ok(n: int) -> bool:
        calls.append(n)
        return n >= threshold

    got = _smallest(ok, guess, 1, hi)
    assert got == (threshold if threshold <= hi else hi)
    assert len(calls) <= 2 * math.ceil(math.log2(300)) + 3


def test_prefill_lower_bound_spends_the_miss_budget_where_replicas_are_dearest(profile):
    from planner_core.sim.oracle import prefill_lower_bound

    rng = np.random.default_rng(7)
    # a calm minute, a bursty one (600 requests in its first 2 s), a calm one
    arrival = np.sort(np.concatenate([rng.uniform(0, 60, 600), rng.uniform(60, 62, 600), rng.uniform(120, 180, 600)]))
    isl = rng.choice([500.0, 2000.0, 6000.0], arrival.size)
    osl = np.full(arrival.size, 50.0)
    args = (profile, arrival, isl, 60.0, 500.0)

    strict = oracle_replicas(profile, arrival, isl, osl, 60.0, 500.0, 50.0, attainment=1.0)
    assert prefill_lower_bound(*args, strict, attainment=1.0) == sum(r.prefill for r in strict)

    plan = oracle_replicas(profile, arrival, isl, osl, 60.0, 500.0, 50.0, attainment=0.99)
    bound = prefill_lower_bound(*args, plan, attainment=0.99)
    # Each interval alone may miss 1 %; together they may miss 18 requests anywhere, which
    # saves a replica-interval (20 -> 19) but cannot make the burst minute cheap.
    assert bound < sum(r.prefill for r in plan)
    assert bound >= sum(r.prefill for r in plan) - plan[1].prefill + 1


@pytest.mark.parametrize(("rate", "n_prefill", "budget"), [(60.0, 1, 8192), (150.0, 2, 2048), (40.0, 1, None)])
def test_prefill_misses_are_the_simulators_batched_prefill(profile, rate, n_prefill, budget):
    """The oracle's prefill count runs the simulator's batched, chunked passes: the same misses
    at every threshold."""
    arrival, isl, osl = poisson_interval(rate, 60.0, 9)
    sim = ClusterSimulator(
        profile, arrival, isl, osl, initial=Replicas(n_prefill, 64), startup_s=0, max_num_batched_tokens=budget
    )
    sim.advance_to(4000)
    res = sim.results()
    ttft_s = res.prefill_end_s - res.arrival_s  # the prefill pool's part of the TTFT
    counted = [True] * arrival.size
    pass_time = PrefillPassTime(profile)
    for sla_s in np.quantile(ttft_s, [0.1, 0.5, 0.9, 0.99]):
        misses = _prefill_misses(
            arrival.tolist(), isl.tolist(), counted, n_prefill, float(sla_s), math.inf, pass_time, budget
        )
        assert misses == int(np.sum(ttft_s > sla_s + 1e-9)) or misses == int(np.sum(ttft_s > sla_s - 1e-9))
