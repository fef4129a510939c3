"""Cluster simulator: agreement with the profile, queueing theory, scaling behaviour, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from planner_core.config import BUNDLED_PROFILE_DIR
from planner_core.profiles import load_profile
from planner_core.records import Replicas
from planner_core.sim import ClusterSimulator, IntervalMetrics, load_scale
from planner_core.sim.cluster import DRAINING, GONE, ItlModel, prefill_service_s


@pytest.fixture(scope="module")
def profile():
    return load_profile(BUNDLED_PROFILE_DIR)


def run(sim: ClusterSimulator, until: float) -> ClusterSimulator:
    sim.advance_to(until)
    return sim


# --------------------------------------------------------------------------- profile agreement


def test_itl_model_matches_surface(profile):
    model = ItlModel(profile.decode.surface)
    rng = np.random.default_rng(1)
    for _ in range(500):
        n = int(rng.integers(1, 400))
        ctx = float(rng.uniform(100, 16000))
        expected = profile.decode.surface.itl_ms_at_kv(n * ctx / profile.decode.max_kv_tokens, ctx)
        assert model.itl_s(n * ctx, n) * 1000 == pytest.approx(expected, rel=1e-9)


def test_prefill_service_is_profile_ttft(profile):
    isl = np.array([100.0, 1155.0, 3151.0, 20000.0, 1155.0])
    svc = prefill_service_s(profile, isl)
    assert svc.tolist() == pytest.approx([profile.prefill.ttft_ms(x) / 1000 for x in isl], rel=1e-12)


def test_constant_load_ttft_matches_profile(profile):
    # one request per second, prefill 45 ms: no queueing anywhere. The prefill takes the profiled
    # TTFT; the first token comes out of the decode engine's first step (the profile's ITL of one
    # request), as in a disaggregated deployment
    n = 300
    arrival = np.arange(n, dtype=float)
    isl = np.full(n, 2000.0)
    osl = np.full(n, 50.0)
    sim = run(ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(1, 1)), n + 100)
    res = sim.results()
    assert np.all(res.finished)
    prefill_ms = profile.prefill.ttft_ms(2000)
    step_ms = profile.decode.surface.itl_ms(1, 2025)
    assert np.allclose((res.prefill_end_s - arrival) * 1000, prefill_ms, rtol=1e-12)
    assert np.allclose(res.decode_join_s, res.prefill_end_s, rtol=0, atol=0)
    assert np.allclose(res.ttft_ms, prefill_ms + step_ms, rtol=1e-9)
    assert np.allclose(res.itl_ms, step_ms, rtol=1e-9)


@pytest.mark.parametrize(("n_decode", "gap_s", "isl", "osl"), [(1, 0.05, 2000, 200), (3, 0.01, 1000, 300)])
def test_constant_load_itl_matches_profile(profile, n_decode, gap_s, isl, osl):
    """Evenly spaced identical requests: each decode worker settles at the concurrency c with
    c = (arrival rate per worker) * osl * ITL(c); its ITL must be the profile's ITL at c."""
    n = 6000
    arrival = np.arange(n) * gap_s
    sim = ClusterSimulator(
        profile, arrival, np.full(n, float(isl)), np.full(n, float(osl)), initial=Replicas(4, n_decode)
    )
    res = run(sim, arrival[-1] + 600).results()
    assert np.all(res.finished)
    ctx = isl + osl / 2
    rate = 1.0 / gap_s / n_decode

    def gap(c: float) -> float:
        itl_s = profile.decode.surface.itl_ms_at_kv(c * ctx / profile.decode.max_kv_tokens, ctx) / 1000
        return c - rate * osl * itl_s

    c_star = brentq(gap, 0.5, 600)
    expected = profile.decode.surface.itl_ms_at_kv(c_star * ctx / profile.decode.max_kv_tokens, ctx)
    steady = slice(n // 3, 2 * n // 3)
    assert np.mean(res.itl_ms[steady]) == pytest.approx(expected, rel=0.05)
    # and the prefill is still the bare profiled time (no KV pressure, prefill keeps up)
    prefill_ms = (res.prefill_end_s - res.arrival_s) * 1000
    assert np.mean(prefill_ms[steady]) == pytest.approx(profile.prefill.ttft_ms(isl), rel=0.05)
    # the first token: the rest of the running decode step and one step of its own
    wait_ms = (res.first_token_s - res.decode_join_s)[steady] * 1000
    assert expected < np.mean(wait_ms) < 2 * expected


def test_simultaneous_batch_gets_profile_itl_exactly(profile):
    # 20 identical requests on one decode worker, 20 prefill workers so they all join at once
    n = 20
    sim = ClusterSimulator(profile, np.zeros(n), np.full(n, 3000.0), np.full(n, 100.0), initial=Replicas(n, 1))
    res = run(sim, 100).results()
    ctx = 3050.0
    expected = profile.decode.surface.itl_ms_at_kv(n * ctx / profile.decode.max_kv_tokens, ctx)
    assert np.allclose(res.itl_ms, expected, rtol=1e-9)
    assert np.allclose(res.first_token_s - res.decode_join_s, expected / 1000, rtol=1e-9)
    assert np.allclose(res.finish_s - res.first_token_s, 99 * expected / 1000, rtol=1e-9)


def test_single_prefill_worker_matches_mg1(profile):
    """Poisson arrivals, one prefill worker: mean queueing wait = lambda E[S^2] / (2 (1 - rho))."""
    rng = np.random.default_rng(7)
    n = 150_000
    isl = rng.integers(200, 8000, n).astype(float)
    svc = prefill_service_s(profile, isl)
    rho = 0.6
    lam = rho / float(np.mean(svc))
    arrival = np.cumsum(rng.exponential(1 / lam, n))
    osl = np.full(n, 5.0)
    # one request per forward pass (no batching): the M/G/1 queue
    sim = ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(1, 2), max_num_batched_tokens=None)
    res = run(sim, arrival[-1] + 600).results()
    assert np.all(res.finished)
    wait_s = res.prefill_start_s - res.arrival_s
    # the prefill ends after its wait and its own time
    assert np.allclose(res.prefill_end_s - res.arrival_s, wait_s + svc, rtol=1e-9, atol=1e-9)
    expected = lam * float(np.mean(svc**2)) / (2 * (1 - lam * float(np.mean(svc))))
    assert float(np.mean(wait_s)) == pytest.approx(expected, rel=0.10)


# --------------------------------------------------------------------------- batched prefill


@pytest.mark.parametrize("budget", [8192, 2048, None])
def test_one_request_at_a_time_is_the_profile_exactly(profile, budget):
    """Concurrency 1: every prompt, chunked or not, takes exactly the profile's TTFT."""
    isl = np.array([100.0, 1155.0, 3000.0, 8192.0, 8193.0, 12000.0, 16000.0, 40.0])
    arrival = np.arange(isl.size) * 10.0
    sim = ClusterSimulator(profile, arrival, isl, np.full(isl.size, 20.0), max_num_batched_tokens=budget)
    res = run(sim, 200).results()
    assert res.finished.all()
    expected = [profile.prefill.ttft_ms(x) for x in isl]
    assert ((res.prefill_end_s - arrival) * 1000).tolist() == pytest.approx(expected, rel=1e-12)
    step = [profile.decode.surface.itl_ms(1, x + 10) for x in isl]
    assert res.ttft_ms.tolist() == pytest.approx(np.add(expected, step).tolist(), rel=1e-9)
    assert res.preemptions.tolist() == [0] * isl.size


def test_queued_prompts_share_a_pass_timed_at_their_total_tokens(profile):
    # r0 alone; r1..r9 (1,000 tokens each) arrive while it runs: the next pass takes 8 of them
    # whole and the first 192 tokens of the ninth (budget 8,192); the pass after that, the rest
    arrival = np.array([0.0] + [0.001 * k for k in range(1, 10)])
    isl = np.array([2000.0] + [1000.0] * 9)
    sim = ClusterSimulator(profile, arrival, isl, np.full(10, 5.0), initial=Replicas(1, 1))
    res = run(sim, 100).results()
    ttft = profile.prefill.ttft_ms
    t1 = ttft(2000) / 1000
    t2 = t1 + ttft(8192) / 1000
    t3 = t2 + (ttft(1000) - ttft(192)) / 1000  # the rest of the ninth alone: its prompt's increment
    assert res.prefill_end_s.tolist() == pytest.approx([t1] + [t2] * 8 + [t3], rel=1e-12)
    assert res.prefill_start_s.tolist() == pytest.approx([0.0] + [t1] * 9, rel=1e-12)


def test_saturated_prefill_engine_runs_at_the_profile_throughput_plateau(profile):
    # 2,000 prompts of 1,000 tokens queued at once: full 8,192-token passes back to back
    n = 2000
    sim = ClusterSimulator(profile, np.zeros(n), np.full(n, 1000.0), np.ones(n), initial=Replicas(1, 4))
    res = run(sim, 1000).results()
    span_s = float(np.max(res.prefill_end_s))
    tokens_per_s = n * 1000 / span_s
    plateau = 8192 / (profile.prefill.ttft_ms(8192) / 1000)
    assert tokens_per_s == pytest.approx(plateau, rel=0.01)
    one_at_a_time = 1000 / (profile.prefill.ttft_ms(1000) / 1000)
    assert tokens_per_s > 1.3 * one_at_a_time
    # the same queue one request per pass takes the profile's time for each
    legacy = ClusterSimulator(
        profile, np.zeros(n), np.full(n, 1000.0), np.ones(n), initial=Replicas(1, 4), max_num_batched_tokens=None
    )
    span_legacy = float(np.max(run(legacy, 1000).results().prefill_end_s))
    assert span_legacy == pytest.approx(n * profile.prefill.ttft_ms(1000) / 1000, rel=1e-9)


# --------------------------------------------------------------------------- KV capacity


def test_full_decode_worker_makes_requests_wait(profile):
    # three requests of 400k tokens on one engine of 945k tokens: the third waits for the first
    arrival = np.array([0.0, 1.0, 2.0])
    isl = np.full(3, 400_000.0)
    osl = np.full(3, 100.0)
    sim = run(ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(3, 1)), 1000)
    res = sim.results()
    assert np.all(res.finished)
    assert res.decode_join_s[2] == pytest.approx(res.finish_s[0])
    step_s = profile.decode.surface.itl_ms_at_kv(800_100 / profile.decode.max_kv_tokens, 400_050) / 1000
    assert res.first_token_s[2] == pytest.approx(res.finish_s[0] + step_s)
    assert res.ttft_ms[2] > 1000 * (res.prefill_end_s[2] - 2.0) + 10


def test_request_larger_than_an_engine_still_runs(profile):
    # 2M tokens: a prefill of about half an hour (extrapolated), then decode on an empty worker
    sim = run(ClusterSimulator(profile, np.array([0.0]), np.array([2e6]), np.array([10.0])), 10_000)
    assert sim.results().finished.all()


def test_prompts_beyond_the_profile_take_their_extrapolated_prefill_time(profile):
    isl = np.array([16_372.0, 40_000.0, 191_000.0])
    arrival = np.array([0.0, 100.0, 200.0])  # one at a time: no queueing
    sim = run(ClusterSimulator(profile, arrival, isl, np.full(3, 10.0), initial=Replicas(1, 1)), math.inf)
    res = sim.results()
    prefill_ms = (res.prefill_end_s - arrival) * 1000
    for i, x in enumerate(isl):
        assert prefill_ms[i] == pytest.approx(profile.prefill.ttft_ms(x), rel=1e-9)
    assert prefill_ms[0] == pytest.approx(375.482618)  # the profile's last point, exactly
    assert prefill_ms[1] > 1000 and prefill_ms[2] > 10_000  # no longer clamped to 375 ms


def test_decode_worker_runs_at_most_max_num_seqs_sequences(profile):
    """Five requests ready for decode at once on one worker capped at 2: two join, the third
    joins when the first leaves (its wait is TTFT), and so on; without the cap all five join."""
    n = 5
    arrival = np.zeros(n)
    isl, osl = np.full(n, 100.0), np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    capped = run(
        ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(5, 1), startup_s=0.0, max_num_seqs=2),
        math.inf,
    )
    free = run(ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(5, 1), startup_s=0.0), math.inf)
    res_c, res_f = capped.results(), free.results()
    svc = prefill_service_s(profile, isl)[0]
    assert np.allclose(res_f.decode_join_s, svc)  # no cap: all join when their prefill ends
    first, finish = res_c.decode_join_s, res_c.finish_s
    assert np.allclose(first[:2], svc)
    # each later request joins exactly when an earlier one leaves; never more than 2 resident
    assert first[2] == pytest.approx(finish[0]) and first[3] == pytest.approx(finish[1])
    events = sorted([(t, 1) for t in first] + [(t, -1) for t in finish], key=lambda e: (e[0], e[1]))
    resident = np.cumsum([d for _, d in events])
    assert resident.max() == 2
    assert np.all(res_c.ttft_ms[2:] > res_f.ttft_ms[2:] + 10)
    assert capped.results().finished.all()


def test_max_num_seqs_places_on_the_least_loaded_worker_below_the_cap(profile):
    # two workers capped at 1: the second request goes to the other worker, the third waits
    arrival = np.zeros(3)
    sim = run(
        ClusterSimulator(
            profile,
            arrival,
            np.full(3, 100.0),
            np.full(3, 20.0),
            initial=Replicas(3, 2),
            startup_s=0.0,
            max_num_seqs=1,
        ),
        math.inf,
    )
    res = sim.results()
    svc = prefill_service_s(profile, np.array([100.0]))[0]
    assert np.allclose(res.decode_join_s[:2], svc)
    assert res.decode_join_s[2] == pytest.approx(min(res.finish_s[:2]))


def test_paged_kv_preempts_the_newest_request_when_the_cache_overflows(profile):
    # Two 400k-token prompts join one decode engine (945,029 tokens) together; each then grows by
    # one token per step: the cache overflows at 72,514.5 tokens each and the later one is
    # preempted (LIFO), recomputes its prompt + generated tokens in prefill and finishes later.
    cap = profile.decode.max_kv_tokens
    isl = np.full(2, 400_000.0)
    osl = np.full(2, 100_000.0)
    sim = ClusterSimulator(profile, np.zeros(2), isl, osl, initial=Replicas(2, 1))
    res = run(sim, math.inf).results()
    assert res.finished.all()
    assert res.preemptions.tolist() == [0, 1] and sim.preemptions == 1
    assert res.first_token_s[0] == res.first_token_s[1], "both joined at once; the first token is not re-emitted"
    assert res.decode_join_s[0] == res.decode_join_s[1] == res.prefill_end_s[0]
    assert res.finish_s[1] > res.finish_s[0]
    # the survivor's ITL is the profile's: one resident before and after, two in between
    tok_full = (cap - 800_000) / 2
    assert tok_full == pytest.approx(72_514.5)
    # reserve admission: the second one waits for the first instead (peak 500k each)
    reserve = ClusterSimulator(profile, np.zeros(2), isl, osl, initial=Replicas(2, 1), kv_admission="reserve")
    rres = run(reserve, math.inf).results()
    assert rres.preemptions.tolist() == [0, 0] and reserve.preemptions == 0
    assert rres.decode_join_s[1] == pytest.approx(rres.finish_s[0])


def test_paged_kv_admits_more_than_reserve_and_counts_preemptions(profile):
    """Long prompts and outputs on two decode engines: paged admission packs more requests (less
    waiting for KV) and pays for it in preemptions, counted per request and in total."""
    rng = np.random.default_rng(5)
    n = 300
    arrival = np.sort(rng.uniform(0, 60, n))
    isl = rng.integers(20_000, 60_000, n).astype(float)
    osl = rng.integers(2_000, 8_000, n).astype(float)

    def replay(mode: str) -> tuple[ClusterSimulator, object]:
        sim = ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(8, 2), kv_admission=mode)
        return sim, run(sim, math.inf).results()

    paged, pres = replay("paged")
    reserve, rres = replay("reserve")
    assert pres.finished.all() and rres.finished.all()
    assert paged.preemptions > 0 and paged.preemptions == int(pres.preemptions.sum())
    assert reserve.preemptions == 0
    assert np.median(pres.ttft_ms) < np.median(rres.ttft_ms)
    again, ares = replay("paged")
    assert again.preemptions == paged.preemptions
    for field in ("ttft_ms", "itl_ms", "finish_s", "preemptions"):
        assert np.array_equal(getattr(ares, field), getattr(pres, field))


def test_same_seed_same_result_with_batching_and_preemption(profile):
    rng = np.random.default_rng(11)
    base_arrival = np.sort(rng.uniform(0, 120, 400))
    base_isl = rng.integers(500, 40_000, 400).astype(float)
    base_osl = rng.integers(100, 6_000, 400).astype(float)

    def replay(seed: int):
        arrival, isl, osl = load_scale(base_arrival, base_isl, base_osl, 3, seed=seed)
        sim = ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(3, 3), startup_s=10)
        for k in range(1, 6):
            sim.advance_to(30.0 * k)
            sim.set_targets(Replicas(1 + k % 3, 2 + k % 2))
        sim.advance_to(math.inf)
        return sim.results(), sim.preemptions, sim.gpu_seconds()

    a, b, c = replay(1), replay(1), replay(2)
    assert a[1] > 0, "the workload preempts"
    assert a[1] == b[1] and a[2] == b[2]
    for field in ("ttft_ms", "itl_ms", "finish_s", "prefill_start_s", "preemptions"):
        assert np.array_equal(getattr(a[0], field), getattr(b[0], field), equal_nan=True)
    assert not np.array_equal(a[0].ttft_ms, c[0].ttft_ms)


# --------------------------------------------------------------------------- scaling


def test_startup_delay_and_gpu_seconds(profile):
    n = 200
    arrival = np.linspace(0, 199, n)
    sim = ClusterSimulator(profile, arrival, np.full(n, 1000.0), np.full(n, 20.0), startup_s=60)
    sim.advance_to(10)
    sim.set_targets(Replicas(3, None))
    reps = sim.replicas()
    assert reps["prefill"] == {"ready": 1, "starting": 2, "draining": 0, "target": 3}
    assert reps["decode"] == {"ready": 1, "starting": 0, "draining": 0, "target": 1}
    sim.advance_to(69.999)
    assert sim.replicas()["prefill"]["starting"] == 2
    m = sim.metrics(60, 69.999)
    assert (m.prefill_ready, m.prefill_starting) == (1, 2)
    assert m.current == Replicas(3, 1)
    sim.advance_to(70.0)
    assert sim.replicas()["prefill"] == {"ready": 3, "starting": 0, "draining": 0, "target": 3}
    sim.advance_to(100)
    gpu = sim.gpu_seconds()
    assert gpu["prefill"] == pytest.approx(100 + 2 * 90)
    assert gpu["decode"] == pytest.approx(100)
    # timeline: allocated jumps at 10, ready at 70
    tl = sim.timeline()
    assert tl[0] == (0.0, 1, 1, 1, 1)
    assert (10.0, 1, 1, 3, 1) in tl
    assert (70.0, 3, 1, 3, 1) in tl


def test_startup_zero_is_instant_and_gpu_scales_with_engine_size(profile):
    sim = ClusterSimulator(
        profile,
        np.array([50.0]),
        np.array([100.0]),
        np.array([5.0]),
        startup_s=0,
        prefill_engine_num_gpu=2,
        decode_engine_num_gpu=4,
    )
    sim.set_targets(Replicas(2, 2))
    assert sim.replicas()["decode"]["ready"] == 2
    sim.advance_to(10)
    assert sim.gpu_seconds() == {"prefill": pytest.approx(2 * 2 * 10), "decode": pytest.approx(4 * 2 * 10)}


def test_queued_requests_wait_for_startup(profile):
    # no decode worker at all until one is started at t=0 with a 30 s start-up
    sim = ClusterSimulator(
        profile, np.array([1.0, 2.0]), np.full(2, 500.0), np.full(2, 10.0), initial=Replicas(1, 0), startup_s=30
    )
    sim.set_targets(Replicas(None, 1))
    sim.advance_to(100)
    res = sim.results()
    assert res.decode_join_s.tolist() == pytest.approx([30.0, 30.0])
    step_s = profile.decode.surface.itl_ms(2, 505) / 1000  # the two start their first step together
    assert res.first_token_s.tolist() == pytest.approx([30.0 + step_s] * 2)
    assert res.ttft_ms.tolist() == pytest.approx([(29 + step_s) * 1000, (28 + step_s) * 1000])


def test_cancel_starting_workers(profile):
    sim = ClusterSimulator(profile, np.array([500.0]), np.array([100.0]), np.array([5.0]), startup_s=60)
    sim.advance_to(10)
    sim.set_targets(Replicas(4, 1))
    sim.advance_to(30)
    sim.set_targets(Replicas(2, 1))  # cancels two of the three starting, newest first
    assert sim.replicas()["prefill"] == {"ready": 1, "starting": 1, "draining": 0, "target": 2}
    sim.advance_to(100)
    assert sim.replicas()["prefill"]["ready"] == 2
    # 1 x 100 s + 1 x 90 s + 2 x 20 s
    assert sim.gpu_seconds()["prefill"] == pytest.approx(100 + 90 + 40)


def test_decode_draining_finishes_its_requests_then_goes(profile):
    n = 400
    arrival = np.arange(n) * 0.05
    sim = ClusterSimulator(profile, arrival, np.full(n, 1000.0), np.full(n, 2000.0), initial=Replicas(2, 2))
    sim.advance_to(5.0)
    workers = sim._workers["decode"]
    loads = [w.n for w in workers]
    assert min(loads) > 0
    sim.set_targets(Replicas(None, 1))
    reps = sim.replicas()["decode"]
    assert (reps["ready"], reps["draining"]) == (1, 1)
    drained = next(w for w in workers if w.state == DRAINING)
    residents = set(drained.members)
    count = drained.n
    t = 5.0
    while drained.state != GONE:
        t += 1.0
        sim.advance_to(t)
        assert drained.n <= count  # never gets new work
        count = drained.n
        assert t < 600
    res = sim.results()
    assert drained.end_t == pytest.approx(max(res.finish_s[list(residents)]))
    assert sim.replicas()["decode"] == {"ready": 1, "starting": 0, "draining": 0, "target": 1}
    # every request the drained worker held had finished when it went away
    assert res.finished[sorted(residents)].all()
    sim.advance_to(1000)
    assert sim.results().finished.all()
    gpu = sim.gpu_seconds()["decode"]
    assert gpu == pytest.approx(1000 + drained.end_t)


def test_prefill_draining_finishes_current_request(profile):
    # two long prefills in flight; scale to 1: the newest busy worker drains after its request
    arrival = np.array([0.0, 0.001, 0.002])
    isl = np.full(3, 6000.0)
    svc = prefill_service_s(profile, isl)[0]
    sim = ClusterSimulator(profile, arrival, isl, np.full(3, 5.0), initial=Replicas(2, 1))
    sim.advance_to(svc / 2)
    sim.set_targets(Replicas(1, None))
    assert sim.replicas()["prefill"] == {"ready": 1, "starting": 0, "draining": 1, "target": 1}
    sim.advance_to(10)
    res = sim.results()
    assert res.finished.all()
    # the third request was served by the remaining worker after its first request
    assert res.prefill_start_s.tolist() == pytest.approx([0.0, 0.001, 0.001 + svc])
    assert sim.gpu_seconds()["prefill"] == pytest.approx(10 + svc)
    assert sim.replicas()["prefill"]["draining"] == 0


def test_scale_up_reuses_draining_workers_first(profile):
    n = 100
    sim = ClusterSimulator(profile, np.arange(n) * 0.02, np.full(n, 1000.0), np.full(n, 3000.0), initial=Replicas(1, 3))
    sim.advance_to(1.9)
    sim.set_targets(Replicas(None, 1))
    assert sim.replicas()["decode"]["draining"] == 2
    sim.advance_to(2.0)
    sim.set_targets(Replicas(None, 2))
    assert sim.replicas()["decode"] == {"ready": 2, "starting": 0, "draining": 1, "target": 2}
    sim.set_targets(Replicas(None, 4))
    assert sim.replicas()["decode"] == {"ready": 3, "starting": 1, "draining": 0, "target": 4}


def test_idle_prefill_scale_down_is_immediate(profile):
    sim = ClusterSimulator(profile, np.array([100.0]), np.array([100.0]), np.array([5.0]), initial=Replicas(3, 2))
    sim.advance_to(10)
    sim.set_targets(Replicas(1, 1))
    assert sim.replicas()["prefill"] == {"ready": 1, "starting": 0, "draining": 0, "target": 1}
    assert sim.replicas()["decode"] == {"ready": 1, "starting": 0, "draining": 0, "target": 1}
    sim.advance_to(20)
    assert sim.gpu_seconds() == {"prefill": pytest.approx(20 + 2 * 10), "decode": pytest.approx(20 + 10)}
    with pytest.raises(ValueError):
        sim.set_targets(Replicas(-1, None))


# --------------------------------------------------------------------------- metrics


def test_metrics_window_semantics(profile):
    arrival = np.array([0.5, 1.5, 2.5, 70.0])
    isl = np.array([1000.0, 2000.0, 3000.0, 500.0])
    osl = np.array([10.0, 20.0, 30.0, 40.0])
    sim = ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(2, 2))
    sim.advance_to(60)
    m = sim.metrics(0, 60)
    assert isinstance(m, IntervalMetrics)
    res = sim.results()
    assert m.num_req == 3 and m.isl == pytest.approx(2000.0)
    assert m.num_first_tokens == 3 and m.num_finished == 3
    assert m.ttft_ms == pytest.approx(np.mean(res.ttft_ms[:3]))
    assert m.itl_ms == pytest.approx(np.mean(res.itl_ms[:3]))
    assert m.osl == pytest.approx(20.0)
    assert m.request_duration_s == pytest.approx(np.mean(res.finish_s[:3] - arrival[:3]))
    assert (m.prefill_ready, m.decode_ready, m.interval_s) == (2, 2, 60)
    assert np.isnan(res.ttft_ms[3]) and np.isnan(res.finish_s[3])
    with pytest.raises(ValueError):
        sim.metrics(60, 120)  # not simulated yet
    sim.advance_to(120)
    empty = sim.metrics(30, 60)
    assert empty.num_req == 0 and empty.isl is None and empty.ttft_ms is None and empty.itl_ms is None
    later = sim.metrics(60, 120)
    assert later.num_req == 1 and later.osl == 40.0


def test_window_boundaries_are_half_open(profile):
    sim = ClusterSimulator(profile, np.array([0.0, 60.0]), np.full(2, 100.0), np.full(2, 2.0))
    sim.advance_to(60)  # the arrival at exactly 60 is processed but belongs to the next window
    assert sim.metrics(0, 60).num_req == 1
    sim.advance_to(120)
    assert sim.metrics(60, 120).num_req == 1


def test_unsorted_input_results_keep_caller_order(profile):
    arrival = np.array([5.0, 1.0, 3.0])
    isl = np.array([100.0, 8000.0, 2000.0])
    osl = np.array([10.0, 20.0, 30.0])
    sim = run(ClusterSimulator(profile, arrival, isl, osl), 100)
    res = sim.results()
    assert res.arrival_s.tolist() == [5.0, 1.0, 3.0]
    assert res.isl.tolist() == [100.0, 8000.0, 2000.0]
    assert np.all(res.first_token_s > res.arrival_s)
    assert res.prefill_end_s[0] - res.arrival_s[0] == pytest.approx(profile.prefill.ttft_ms(100) / 1000)


def test_same_inputs_same_result(profile):
    rng = np.random.default_rng(3)
    n = 20_000
    arrival = np.sort(rng.uniform(0, 600, n))
    isl = rng.integers(100, 6000, n).astype(float)
    osl = rng.integers(1, 800, n).astype(float)

    def replay():
        sim = ClusterSimulator(profile, arrival, isl, osl, initial=Replicas(2, 2), startup_s=30)
        metrics = []
        for k in range(1, 15):
            sim.advance_to(60.0 * k)
            m = sim.metrics(60.0 * (k - 1), 60.0 * k)
            metrics.append(m)
            sim.set_targets(Replicas(1 + (k * 7) % 6, 1 + (k * 5) % 4))
        return sim.results(), metrics, sim.gpu_seconds(), sim.timeline()

    a, b = replay(), replay()
    for field in ("ttft_ms", "itl_ms", "finish_s", "first_token_s"):
        assert np.array_equal(getattr(a[0], field), getattr(b[0], field), equal_nan=True)
    assert a[1] == b[1] and a[2] == b[2] and a[3] == b[3]
    assert a[0].finished.all()
    # attainment is the share of requests meeting both SLAs, counted here from the raw latencies
    met = (a[0].ttft_ms <= 500) & (a[0].itl_ms <= 50)
    assert a[0].attainment(500, 50) == met.sum() / met.size
    assert 0 < met.sum() < met.size  # this schedule both meets and misses: the count is tested
    assert a[0].attainment(1e9, 1e9) == 1.0 and a[0].attainment(0.0, 0.0) == 0.0


# --------------------------------------------------------------------------- load_scale


def test_load_scale_integer_factor():
    arrival = np.array([0.0, 10.0, 20.0])
    isl = np.array([1.0, 2.0, 3.0])
    osl = np.array([4.0, 5.0, 6.0])
    a, i, o = load_scale(arrival, isl, osl, 3, seed=1, copy_jitter_s=1.0)
    assert a.size == 9
    assert np.all(np.diff(a) >= 0)
    for t, x, y in zip(arrival, isl, osl, strict=True):
        mine = i == x
        assert mine.sum() == 3 and np.all(o[mine] == y)
        shifts = np.mod(a[mine] - t, 20.0)  # the last request's copies wrap to the trace's start
        assert shifts.min() == 0.0 and np.all((shifts >= 0) & (shifts < 1))
    assert np.all((a >= 0) & (a <= 20))  # nothing past the trace's span
    again = load_scale(arrival, isl, osl, 3, seed=1, copy_jitter_s=1.0)
    assert all(np.array_equal(p, q) for p, q in zip((a, i, o), again, strict=True))
    other = load_scale(arrival, isl, osl, 3, seed=2, copy_jitter_s=1.0)
    assert not np.array_equal(a, other[0])


def test_load_scale_spreads_copies_over_the_jitter_window_as_independent_users():
    n = 5000
    arrival = np.sort(np.random.default_rng(7).uniform(0, 3600, n))
    ones = np.ones(n)
    burst, _, _ = load_scale(arrival, ones, ones, 10, seed=3, copy_jitter_s=1.0)
    spread, _, _ = load_scale(arrival, ones, ones, 10, seed=3)  # default: 60 s, the replay's interval
    assert spread.size == burst.size == 10 * n
    # copies land anywhere in [t, t + 60): per-second counts far less bursty than K copies in 1 s
    per_s = lambda a: np.bincount(a.astype(int))  # noqa: E731
    assert per_s(burst).max() > per_s(spread).max()
    # per-second counts of K independent streams: variance close to the mean (Poisson-like),
    # while the 1 s copies make every second a multiple of 10-ish
    counts = per_s(spread)[60:3600]
    assert counts.var() / counts.mean() < 2.0
    b = per_s(burst)[60:3600]
    assert b.var() / b.mean() > 5.0
    # the load over longer spans is kept (each copy moves by less than a minute)
    per_10min = lambda a: np.bincount((a // 600).astype(int))[1:6]  # noqa: E731 (the first loses copies to the second)
    assert np.allclose(per_10min(spread), per_10min(burst), rtol=0.03)
    # deterministic per seed, and the window scales the same draws
    assert np.array_equal(spread, load_scale(arrival, ones, ones, 10, seed=3)[0])
    jitter_0, _, _ = load_scale(arrival, ones, ones, 10, seed=3, copy_jitter_s=0.0)
    assert np.array_equal(np.sort(jitter_0), np.sort(np.repeat(arrival, 10)))
    with pytest.raises(ValueError, match="jitter"):
        load_scale(arrival, ones, ones, 10, copy_jitter_s=-1.0)


def test_speed_up_divides_inter_arrival_times():
    from planner_core.sim.workload import speed_up

    assert speed_up([0.0, 10.0, 30.0], 10).tolist() == [0.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="speed-up"):
        speed_up([1.0], 0)


def test_load_scale_fraction():
    n = 20_000
    arrival = np.arange(n, dtype=float)
    a, _, _ = load_scale(arrival, np.ones(n), np.ones(n), 2.5, seed=0)
    assert a.size == pytest.approx(2.5 * n, rel=0.02)
    a, _, _ = load_scale(arrival, np.ones(n), np.ones(n), 0.3, seed=0)
    assert a.size == pytest.approx(0.3 * n, rel=0.05)
    assert np.all(np.isin(a, arrival))  # a single copy keeps its arrival
    assert load_scale(arrival, np.ones(n), np.ones(n), 0, seed=0)[0].size == 0
    with pytest.raises(ValueError):
        load_scale(arrival, np.ones(n), np.ones(n), -1, seed=0)
    assert math.isclose(load_scale(arrival[:1], [5.0], [6.0], 1.0)[1][0], 5.0)


def test_advance_to_infinity_runs_until_idle(profile):
    n = 50
    arrival = np.arange(n) * 0.5
    sim = ClusterSimulator(profile, arrival, np.full(n, 1000.0), np.full(n, 100.0), startup_s=60)
    sim.advance_to(5)
    sim.set_targets(Replicas(2, 1))
    sim.advance_to(math.inf)
    res = sim.results()
    assert res.finished.all()
    assert sim.now_s == pytest.approx(max(float(np.max(res.finish_s)), 65.0))
    assert math.isfinite(sim.gpu_seconds()["prefill"])
    m = sim.metrics(0, 30)
    assert m.prefill_replicas == m.current.prefill == 2 and m.decode_replicas == 1
    sim.advance_to(math.inf)  # nothing left: stays put
    assert math.isfinite(sim.now_s)
    with pytest.raises(ValueError):
        sim.advance_to(math.nan)
