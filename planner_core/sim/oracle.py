"""Oracle baseline: per interval, the fewest replicas that would have met the SLA for that
interval's actual requests, with no start-up delay.

How one interval ``[start + k*I, start + (k+1)*I)`` is sized (see ``docs/oracle.md``):

* Only the requests that arrive in the interval are simulated, with their true arrival times,
  ISL and OSL, on pools that are empty and ready at the interval start; every request runs to
  completion even past the interval end (nothing carries over between intervals).
* **Prefill**: ``n`` prefill workers serve the requests first come first served, each taking the
  profile's ``ttft_ms(isl)`` (exactly the simulator's prefill pool). TTFT = queueing + prefill
  time. ``n`` is enough when at least ``attainment`` of the interval's requests have
  TTFT <= the TTFT SLA.
* **Decode**, checked with ample prefill so the pools are independent: each request joins the
  decode pool when its own prefill would end without queueing (arrival + ``ttft_ms(isl)``), and
  ``n`` decode workers run exactly the simulator's decode model (least-loaded placement, KV
  reservations, batched token clock). ``n`` is enough when at least ``attainment`` of the
  requests have mean ITL <= the ITL SLA and were admitted without waiting for KV space.
* Requests that cannot meet an SLA with any number of replicas (prefill time alone above the
  TTFT SLA; ITL alone on an empty worker above the ITL SLA) are left out of that pool's
  attainment count (they still load the pool).
* The smallest ``n`` is found by a galloping search from an analytic guess followed by bisection
  (it assumes attainment does not drop when a replica is added), bounded by
  ``[min_replicas, max_replicas]``; an interval without requests gets ``min_replicas``; if even
  ``max_replicas`` misses, the answer is ``max_replicas``.

Because each interval is sized for exactly its own requests, with replicas ready at once and no
carry-over from earlier intervals, the resulting GPU-hours are a lower bound that no causal
planner (which must predict the load and pay start-up delays) can beat in practice.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush

import numpy as np
from numpy.typing import ArrayLike

from planner_core.profiles import Profile
from planner_core.records import Replicas
from planner_core.sim.cluster import DEFAULT_MAX_NUM_BATCHED_TOKENS, PrefillPassTime, prefill_service_s
from planner_core.sim.decode_pool import DecodePool, DecodeWorker, ItlModel


def _prefill_misses(
    arrival: list[float],
    isl: list[float],
    counted: list[bool],
    n: int,
    sla_s: float,
    max_misses: float,
    pass_time: PrefillPassTime,
    budget: int | None = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> int:
    """Misses of the TTFT SLA with ``n`` prefill workers serving one FCFS queue in batched,
    chunked forward passes exactly as the simulator's prefill pool does (``budget`` tokens per
    pass; None: one request per pass). Stops once above ``max_misses``.

    Idle workers are interchangeable, so the earliest-free worker always starts the next pass:
    at once if it holds a chunked prompt, else when it is free and a request has arrived,
    taking every queued prompt that has arrived by then up to the budget."""
    num = len(arrival)
    if not num or n <= 0:
        return num  # nothing to serve, or nobody to serve it
    room0 = math.inf if budget is None else float(budget)
    seconds = pass_time.seconds
    # (free at, worker id, chunked request or -1, its tokens done)
    free: list[tuple[float, int, int, float]] = [(arrival[0], w, -1, 0.0) for w in range(n)]
    i = 0  # next request not yet taken
    misses = 0
    active = 0  # workers holding a chunked prompt
    while i < num or active:
        f, wid, part, done = heappop(free)
        room = room0
        prefix = 0.0
        tokens = 0.0
        finished: list[int] = []
        if part >= 0:
            start = f
            prefix = done
            take = min(isl[part] - done, room)
            tokens = take
            room -= take
            done += take
            if done >= isl[part]:
                finished.append(part)
                part = -1
                active -= 1
        elif i >= num:
            continue  # idle for good; the workers still holding a chunked prompt finish it
        else:
            start = f if arrival[i] <= f else arrival[i]
        fresh = 0
        while i < num and room > 0 and part < 0 and arrival[i] <= start:
            need = isl[i]
            fresh += 1
            if need <= room:
                finished.append(i)
                tokens += need
                room -= need
            else:
                part, done = i, room
                active += 1
                tokens += room
                room = 0.0
            i += 1
            if budget is None:
                break
        end = start + seconds(0.0 if fresh else prefix, tokens)
        for r in finished:
            if counted[r] and end - arrival[r] > sla_s:
                misses += 1
        if misses > max_misses:
            return misses
        heappush(free, (end, wid, part, done))
    return misses


def simulate_decode_pool(
    join_s: list[float],
    ctx: list[float],
    need: list[float],
    osl: list[float],
    n_workers: int,
    model: ItlModel,
    itl_sla_s: float = math.inf,
    counted: list[bool] | None = None,
    max_misses: float = math.inf,
    itl_out: list[float] | None = None,
    wait_out: list[float] | None = None,
    max_num_seqs: int | None = None,
) -> int:
    """Run ``n_workers`` decode workers (:class:`DecodePool`, the simulator's decode model) over
    requests joining at ``join_s`` (ascending), all ready from the start. Returns the number of
    counted requests that missed (mean ITL above ``itl_sla_s`` or any wait for KV space),
    stopping early once above ``max_misses``. ``itl_out``/``wait_out``, when given, receive
    per-request ITL (s) and admission wait (s)."""
    num = len(join_s)
    if counted is None:
        counted = [True] * num
    events: list[tuple[float, int, DecodeWorker, int]] = []  # (time, seq, worker, version)
    seq = itertools.count()

    def schedule(when: float, w: DecodeWorker, version: int) -> None:
        heappush(events, (when, next(seq), w, version))

    pool = DecodePool(model, ctx, need, osl, schedule, max_num_seqs=max_num_seqs)
    workers = [DecodeWorker() for _ in range(n_workers)]
    place = pool.place
    first = [0.0] * num  # first-token time, set when it comes
    queue: deque[int] = deque()
    misses = 0
    ji = 0
    while ji < num or events:
        tj = join_s[ji] if ji < num else math.inf
        if events and events[0][0] < tj:
            t, _, w, version = heappop(events)
            if w.version != version:
                continue
            firsts, done, _ = pool.step(w, t)  # reserve admission: never a preemption
            for r in firsts:
                first[r] = t
            for r in done:
                itl = (t - first[r]) / (osl[r] - 1.0) if osl[r] > 1.0 else 0.0
                if itl_out is not None:
                    itl_out[r] = itl
                if counted[r] and itl > itl_sla_s:
                    misses += 1
            while queue and place(workers, queue[0], t) is not None:
                r = queue.popleft()
                wait = t - join_s[r]
                if wait_out is not None:
                    wait_out[r] = wait
                if counted[r] and wait > 0:
                    misses += 1
            if misses > max_misses:
                return misses
        else:
            r = ji
            ji += 1
            if queue or place(workers, r, tj) is None:
                queue.append(r)
            elif wait_out is not None:
                wait_out[r] = 0.0
    return misses


def _smallest(ok: Callable[[int], bool], guess: int, lo: int, hi: int) -> int:
    """Smallest n in [lo, hi] with ok(n) (ok assumed monotone), galloping from ``guess``; hi if none."""
    guess = min(max(guess, lo), hi)
    if ok(guess):
        good, step = guess, 1
        while True:
            cand = max(good - step, lo)
            if cand == good:
                return good
            if ok(cand):
                good = cand
                step *= 2
            else:
                bad = cand
                break
    else:
        bad, step = guess, 1
        while True:
            cand = min(bad + step, hi)
            if cand == bad:
                return hi
            if ok(cand):
                good = cand
                break
            bad = cand
            step *= 2
    while good - bad > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def oracle_replicas(
    profile: Profile,
    arrival_s: ArrayLike,
    isl: ArrayLike,
    osl: ArrayLike,
    interval_s: float,
    ttft_ms: float,
    itl_ms: float,
    prefill_engine_num_gpu: int = 1,
    decode_engine_num_gpu: int = 1,
    attainment: float = 0.99,
    max_replicas: int = 256,
    *,
    min_replicas: int = 1,
    start_s: float = 0.0,
    num_intervals: int | None = None,
    max_num_batched_tokens: int | None = DEFAULT_MAX_NUM_BATCHED_TOKENS,
    max_num_seqs: int | None = None,
) -> list[Replicas]:
    """Per interval ``[start_s + k*interval_s, start_s + (k+1)*interval_s)``, the fewest prefill
    and decode replicas that meet the TTFT / ITL SLAs for >= ``attainment`` of that interval's
    requests, with no start-up delay (module docstring and ``docs/oracle.md`` give the exact
    definition). Intervals run until the last arrival unless ``num_intervals`` is given; arrivals
    before ``start_s`` are ignored. The GPUs per engine do not change the counts (the profile is
    per engine); see :func:`oracle_gpu_seconds` for the cost. ``max_num_seqs``: the decode
    engines' running-sequence cap, as the simulator enforces it (None: no cap).
    """
    del prefill_engine_num_gpu, decode_engine_num_gpu  # counts are per engine; GPUs only price them
    if interval_s <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    if not 0 < attainment <= 1:
        raise ValueError(f"attainment must be in (0, 1], got {attainment}")
    if max_replicas < max(min_replicas, 1):
        raise ValueError(f"max_replicas ({max_replicas}) must be >= max(min_replicas, 1)")
    arrival = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
    isl_a = np.maximum(np.asarray(isl, dtype=np.float64).reshape(-1), 0.0)
    osl_a = np.maximum(np.asarray(osl, dtype=np.float64).reshape(-1), 1.0)
    if not (arrival.shape == isl_a.shape == osl_a.shape):
        raise ValueError("arrival_s, isl and osl must have the same length")
    order = np.argsort(arrival, kind="stable")
    arrival, isl_a, osl_a = arrival[order], isl_a[order], osl_a[order]
    if num_intervals is None:
        if arrival.size == 0 or arrival[-1] < start_s:
            num_intervals = 0
        else:
            num_intervals = math.floor((float(arrival[-1]) - start_s) / interval_s) + 1
    svc = prefill_service_s(profile, isl_a)
    pass_time = PrefillPassTime(profile)
    ctx = isl_a + osl_a / 2.0
    need = isl_a + osl_a
    model = ItlModel(profile.decode.surface)
    ttft_s, itl_s = ttft_ms / 1000.0, itl_ms / 1000.0
    # ITL of a request alone on a worker: above the SLA means no replica count can meet it
    solo_itl = np.array([model.itl_s(c, 1) for c in ctx.tolist()]) if ctx.size else np.zeros(0)
    surface = profile.decode.surface
    lo = max(min_replicas, 1)

    edges = start_s + interval_s * np.arange(num_intervals + 1)
    bounds = np.searchsorted(arrival, edges, side="left")
    out: list[Replicas] = []
    # The search starts from the previous interval's answer when there is one: load changes
    # little from one interval to the next, so the gallop mostly checks n and n - 1 (the answer
    # is the same, ok() being monotone; a day-long replay's oracle runs several times faster).
    prev_p: int | None = None
    prev_d: int | None = None
    for k in range(num_intervals):
        i0, i1 = int(bounds[k]), int(bounds[k + 1])
        if i1 <= i0:
            out.append(Replicas(min_replicas, min_replicas))
            continue
        arr_k = arrival[i0:i1]
        svc_k = svc[i0:i1]
        isl_k = isl_a[i0:i1]
        # prefill
        p_counted = svc_k <= ttft_s
        p_allowed = math.floor(int(p_counted.sum()) * (1.0 - attainment) + 1e-9)
        if p_counted.any():
            arr_l, isl_l, pc_l = arr_k.tolist(), isl_k.tolist(), p_counted.tolist()

            def p_ok(n: int, arr_l=arr_l, isl_l=isl_l, pc_l=pc_l, allowed=p_allowed) -> bool:
                misses = _prefill_misses(arr_l, isl_l, pc_l, n, ttft_s, allowed, pass_time, max_num_batched_tokens)
                return misses <= allowed

            p_guess = prev_p if prev_p is not None else math.ceil(float(svc_k.sum()) / interval_s)
            n_prefill = prev_p = _smallest(p_ok, p_guess, lo, max_replicas)
        else:
            n_prefill = lo
        # decode
        join = arr_k + svc_k
        d_order = np.argsort(join, kind="stable")
        d_counted = solo_itl[i0:i1][d_order] <= itl_s
        d_allowed = math.floor(int(d_counted.sum()) * (1.0 - attainment) + 1e-9)
        if d_counted.any():
            join_l = join[d_order].tolist()
            ctx_l = ctx[i0:i1][d_order].tolist()
            need_l = need[i0:i1][d_order].tolist()
            osl_l = osl_a[i0:i1][d_order].tolist()
            dc_l = d_counted.tolist()

            def d_ok(
                n: int, join_l=join_l, ctx_l=ctx_l, need_l=need_l, osl_l=osl_l, dc_l=dc_l, allowed=d_allowed
            ) -> bool:
                misses = simulate_decode_pool(
                    join_l, ctx_l, need_l, osl_l, n, model, itl_s, dc_l, allowed, max_num_seqs=max_num_seqs
                )
                return misses <= allowed

            ctx_mean = float(np.mean(ctx_l))
            op = surface.best_operating_point(itl_ms, ctx_mean)
            if op.meets_target and op.kv_usage > 0:
                per_engine_tok_s = op.kv_usage * model.max_kv_tokens / ctx_mean / (op.itl_ms / 1000.0)
                d_guess = math.ceil(float(np.sum(osl_l)) / interval_s / per_engine_tok_s)
                if max_num_seqs:  # the cap may bind first: sequences in flight / cap
                    in_flight = float(np.sum(osl_l)) * op.itl_ms / 1000.0 / interval_s
                    d_guess = max(d_guess, math.ceil(in_flight / max_num_seqs))
            else:
                d_guess = lo
            n_decode = prev_d = _smallest(d_ok, d_guess if prev_d is None else prev_d, lo, max_replicas)
        else:
            n_decode = lo
        out.append(Replicas(max(n_prefill, min_replicas), max(n_decode, min_replicas)))
    return out


def prefill_lower_bound(
    profile: Profile,
    arrival_s: ArrayLike,
    isl: ArrayLike,
    interval_s: float,
    ttft_ms: float,
    plan: list[Replicas],
    attainment: float = 0.99,
    *,
    start_s: float = 0.0,
    max_num_batched_tokens: int | None = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> int:
    """Fewest prefill replica-intervals with which *any* policy that sets replicas per interval
    could meet the TTFT SLA for ``attainment`` of all requests together (not of each interval).

    The oracle gives every interval its own 99 %; a policy may instead spend the 1 % where
    replicas are dearest. Per interval, the misses with ``n`` FCFS workers, an empty queue and no
    start-up delay (the best case any policy can have) are counted for every ``n`` up to the
    oracle's; a dynamic programme over intervals then finds the cheapest choice whose misses
    stay within the budget. Decode is left out (count at least ``min_endpoint`` per interval on
    top), so this is a lower bound on what reaching ``attainment`` costs in this model.
    """
    arrival = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
    order = np.argsort(arrival, kind="stable")
    arrival = arrival[order]
    isl_a = np.maximum(np.asarray(isl, dtype=np.float64).reshape(-1)[order], 0.0)
    svc = prefill_service_s(profile, isl_a)
    pass_time = PrefillPassTime(profile)
    sla_s = ttft_ms / 1000.0
    budget = math.floor(arrival.size * (1.0 - attainment) + 1e-9)
    edges = np.searchsorted(arrival, start_s + interval_s * np.arange(len(plan) + 1), side="left")
    # cheapest[m]: fewest replica-intervals so far with m misses in total
    cheapest = [0] + [math.inf] * budget
    for k, replicas in enumerate(plan):
        a = arrival[edges[k] : edges[k + 1]].tolist()
        s = svc[edges[k] : edges[k + 1]].tolist()
        x = isl_a[edges[k] : edges[k + 1]].tolist()
        if not a:
            options = [(1, 0)]
        else:
            counted = [x <= sla_s for x in s]
            options = []
            for n in range(max(int(replicas.prefill or 1), 1), 0, -1):
                misses = _prefill_misses(a, x, counted, n, sla_s, budget, pass_time, max_num_batched_tokens)
                if misses > budget:
                    break  # fewer workers only miss more
                options.append((n, misses))
        nxt: list[float] = [math.inf] * (budget + 1)
        for m, cost in enumerate(cheapest):
            if cost == math.inf:
                continue
            for n, misses in options:
                if m + misses <= budget and cost + n < nxt[m + misses]:
                    nxt[m + misses] = cost + n
        cheapest = nxt
    best = min(cheapest)
    return int(best) if best != math.inf else sum(int(r.prefill or 0) for r in plan)


def oracle_gpu_seconds(
    replicas: list[Replicas], interval_s: float, prefill_engine_num_gpu: int = 1, decode_engine_num_gpu: int = 1
) -> dict[str, float]:
    """GPU-seconds of holding the oracle's replicas for each whole interval."""
    prefill = sum(int(r.prefill or 0) for r in replicas) * interval_s * prefill_engine_num_gpu
    decode = sum(int(r.decode or 0) for r in replicas) * interval_s * decode_engine_num_gpu
    return {"prefill": float(prefill), "decode": float(decode)}


__all__ = ["oracle_gpu_seconds", "oracle_replicas", "prefill_lower_bound", "simulate_decode_pool"]
