"""Event-driven simulator of a disaggregated LLM serving cluster, driven by a profile.

Two pools: prefill workers and decode workers, each worker one engine of the profile
(``*_engine_num_gpu`` GPUs, which only matters for the GPU cost). A request

1. arrives and waits for a prefill worker, first come first served across the pool;
2. is prefilled in a batch: an idle prefill engine takes queued prompts, oldest first, up to
   ``max_num_batched_tokens`` tokens per forward pass, and splits (chunks) a prompt that does not
   fit into the rest of the budget; the rest of that prompt leads its next pass. A pass of ``T``
   new tokens takes the profile's ``ttft_ms(T)``, the time of one ``T``-token prompt at
   concurrency 1; a pass that continues a chunked prompt with ``p`` tokens already done takes
   ``ttft_ms(p + T) - ttft_ms(p)``. One request alone therefore takes exactly the profile's
   ``ttft_ms(isl)``, chunked or not, and a full batch runs at the profile's throughput at its
   token count;
3. joins the least-loaded ready decode worker if its KV fits, else it waits in a FIFO queue;
4. decodes ``osl`` tokens in a batch with every other request on that worker, one token per
   step of the current ITL, and leaves. It starts when the worker's running step ends and its
   first token comes out of its first step (the decode engine emits every token the client
   sees), so TTFT = prefill queueing + passes + decode-admission wait + rest of the running
   step + one step; at concurrency 1 exactly the profile's TTFT plus its ITL of one request.

Decode model: :mod:`planner_core.sim.decode_pool` (shared with the oracle). A worker's ITL
follows its resident requests' KV usage and context along the profile's decode surface. KV
admission is ``paged`` (default: a request holds its prompt plus the tokens generated so far;
when a worker's cache overflows, its most recently joined request is preempted and goes back to
the head of the prefill queue to recompute its prompt and generated tokens) or ``reserve`` (each
request reserves its peak ``isl + osl`` at admission; never a preemption). A worker runs at most
``max_num_seqs`` sequences (the engine's cap; None: none). A request's ITL is the mean gap
between its tokens: ``(finish - first_token) / (osl - 1)``, preemption pauses included.

Scaling. ``set_targets`` starts workers that become ready ``startup_s`` later (a scale-up
first takes back draining workers, instantly), and on a scale-down cancels starting workers
(newest first) and then drains ready ones (prefill: idle first, then newest; decode: least
KV in use first, then newest): a draining worker gets no new work, finishes what it has and
is gone. A worker costs GPUs from the moment it is requested until it is gone.

The simulator has no randomness of its own: the same inputs always give the same results.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass
from heapq import heappop, heappush
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from planner_core.profiles import Profile
from planner_core.records import Replicas
from planner_core.sim.decode_pool import KV_ADMISSION_MODES, DecodePool, DecodeWorker, ItlModel

FloatArray = NDArray[np.float64]

# worker states
STARTING, READY, DRAINING, GONE = 0, 1, 2, 3
# event kinds
_EV_PREFILL_DONE, _EV_DECODE_DONE, _EV_READY = 0, 1, 2
# vLLM's and Dynamo's mocker's default token budget of one forward pass
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192


def prefill_service_s(profile: Profile, isl: FloatArray) -> FloatArray:
    """Prefill time in seconds of every request (profile TTFT at its ISL, concurrency 1)."""
    isl = np.asarray(isl, dtype=np.float64)
    if isl.size == 0:
        return np.zeros(0)
    uniq, inverse = np.unique(isl, return_inverse=True)
    table = np.array([profile.prefill.ttft_ms(float(x)) for x in uniq]) / 1000.0
    return table[inverse.reshape(-1)]


class PrefillPassTime:
    """Time of one prefill forward pass, from the profile's concurrency-1 TTFT curve.

    A pass of ``tokens`` new prompt tokens takes ``ttft(tokens)`` (``prefix = 0``). A pass that
    does nothing but continue one chunked prompt whose first ``prefix`` tokens are done takes
    ``ttft(prefix + tokens) - ttft(prefix)``, so the chunks of a prompt alone add up to exactly
    ``ttft(isl)``. ``ttft`` is the profile's curve, extrapolated beyond the profiled ISL by
    :class:`planner_core.profiles.PrefillGrowth` (increasing, so a chunk of a very long prompt
    never takes zero time)."""

    def __init__(self, profile: Profile) -> None:
        self.ttft_ms = profile.prefill.ttft_ms

    def seconds(self, prefix: float, tokens: float) -> float:
        if prefix <= 0.0:
            return self.ttft_ms(tokens) / 1000.0
        return (self.ttft_ms(prefix + tokens) - self.ttft_ms(prefix)) / 1000.0


@dataclass(frozen=True)
class IntervalMetrics:
    """What a Prometheus frontend would report for ``[window_start_s, window_end_s)``.

    ``num_req``/``isl``: requests that arrived in the window. ``ttft_ms``: mean over requests
    whose first token fell in the window. ``itl_ms``/``osl``/``request_duration_s``: means over
    requests that finished in the window. Means are None when no request qualifies. Replica
    counts are the state at ``window_end_s``.
    """

    window_start_s: float
    window_end_s: float
    num_req: int
    isl: float | None
    ttft_ms: float | None
    itl_ms: float | None
    osl: float | None
    request_duration_s: float | None
    num_first_tokens: int
    num_finished: int
    prefill_ready: int
    prefill_starting: int
    prefill_draining: int
    decode_ready: int
    decode_starting: int
    decode_draining: int

    @property
    def interval_s(self) -> float:
        return self.window_end_s - self.window_start_s

    @property
    def prefill_replicas(self) -> int:
        """Prefill replicas the planner has asked for and not removed: ready + starting."""
        return self.prefill_ready + self.prefill_starting

    @property
    def decode_replicas(self) -> int:
        """Decode replicas the planner has asked for and not removed: ready + starting."""
        return self.decode_ready + self.decode_starting

    @property
    def current(self) -> Replicas:
        """``Replicas(prefill_replicas, decode_replicas)``: ready + starting, draining excluded."""
        return Replicas(self.prefill_replicas, self.decode_replicas)


class EventLog(NamedTuple):
    """See :meth:`ClusterSimulator.event_log`. Arrivals cover the whole trace (future ones too);
    the other logs grow as the simulation advances."""

    arrival_s: list[float]
    arrival_isl: list[float]
    first_token_s: list[float]
    first_token_ttft_ms: list[float]
    first_token_isl: list[float]
    finish_s: list[float]
    finish_itl_ms: list[float]  # the request's mean ITL: (finish - first token) / (osl - 1)
    finish_osl: list[float]
    finish_duration_s: list[float]


@dataclass(frozen=True)
class RequestResults:
    """Per-request outcome, in the order the requests were given; NaN = not reached yet."""

    arrival_s: FloatArray
    isl: FloatArray
    osl: FloatArray
    ttft_ms: FloatArray  # arrival -> first token (prefill queue + passes + decode wait + first step)
    itl_ms: FloatArray  # mean gap between its tokens: (finish - first token) / (osl - 1)
    prefill_start_s: FloatArray  # its first prefill pass starts
    prefill_end_s: FloatArray  # the pass that completes its prompt ends (the first time)
    decode_join_s: FloatArray  # it joins a decode engine (the first time)
    first_token_s: FloatArray
    finish_s: FloatArray
    preemptions: NDArray[np.int64]  # times the request was preempted in decode (paged KV)

    @property
    def finished(self) -> NDArray[np.bool_]:
        return ~np.isnan(self.finish_s)

    @property
    def prefill_wait_ms(self) -> FloatArray:
        return (self.prefill_start_s - self.arrival_s) * 1000.0

    def attainment(self, ttft_ms: float, itl_ms: float) -> float:
        """Share of finished requests that met both SLAs (NaN when none finished)."""
        done = self.finished
        if not np.any(done):
            return math.nan
        ok = (self.ttft_ms[done] <= ttft_ms) & (self.itl_ms[done] <= itl_ms)
        return float(np.mean(ok))


class _Worker(DecodeWorker):
    __slots__ = ("batch", "busy", "end_t", "partial", "partial_done", "pool", "start_t", "state", "wid")

    def __init__(self, pool: str, wid: int, state: int, start_t: float) -> None:
        super().__init__(t_last=start_t)
        self.pool = pool
        self.wid = wid
        self.state = state
        self.start_t = start_t
        self.end_t: float | None = None
        # prefill: a forward pass is running; the requests whose prompt it completes; the
        # request whose prompt it has started but not finished (chunked), -1 when none, and
        # how many of its prompt tokens are done when the running pass ends
        self.busy = False
        self.batch: list[int] = []
        self.partial = -1
        self.partial_done = 0.0


class ClusterSimulator:
    """A disaggregated cluster replaying a request trace; see the module docstring.

    The planner-facing interface is narrow: :meth:`set_targets`, :meth:`advance_to`,
    :meth:`metrics` and :meth:`replicas`; :meth:`results`, :meth:`gpu_seconds` and
    :meth:`timeline` are for the report.
    """

    def __init__(
        self,
        profile: Profile,
        arrival_s: FloatArray,
        isl: FloatArray,
        osl: FloatArray,
        prefill_engine_num_gpu: int = 1,
        decode_engine_num_gpu: int = 1,
        initial: Replicas = Replicas(1, 1),  # noqa: B008 (frozen dataclass)
        startup_s: float = 60.0,
        max_num_batched_tokens: int | None = DEFAULT_MAX_NUM_BATCHED_TOKENS,
        kv_admission: str = "paged",
        max_num_seqs: int | None = None,
    ) -> None:
        arrival = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
        isl_a = np.asarray(isl, dtype=np.float64).reshape(-1)
        osl_a = np.asarray(osl, dtype=np.float64).reshape(-1)
        if not (arrival.shape == isl_a.shape == osl_a.shape):
            raise ValueError(
                f"arrival_s, isl, osl must have the same length, got {arrival.size}, {isl_a.size}, {osl_a.size}"
            )
        if arrival.size and not np.all(np.isfinite(arrival)):
            raise ValueError("arrival_s must be finite")
        if startup_s < 0:
            raise ValueError(f"startup_s must be >= 0, got {startup_s}")
        if max_num_batched_tokens is not None and max_num_batched_tokens < 1:
            raise ValueError(
                "max_num_batched_tokens must be >= 1 (or None: one request per prefill pass), "
                f"got {max_num_batched_tokens}"
            )
        if kv_admission not in KV_ADMISSION_MODES:
            raise ValueError(f"kv_admission must be one of {', '.join(KV_ADMISSION_MODES)}, got {kv_admission!r}")
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_admission = kv_admission
        self._pass_time = PrefillPassTime(profile)
        self.profile = profile
        self.prefill_engine_num_gpu = int(prefill_engine_num_gpu)
        self.decode_engine_num_gpu = int(decode_engine_num_gpu)
        self.startup_s = float(startup_s)
        self._order: NDArray[np.intp] | None = None
        if arrival.size > 1 and np.any(np.diff(arrival) < 0):
            self._order = np.argsort(arrival, kind="stable")
            arrival, isl_a, osl_a = arrival[self._order], isl_a[self._order], osl_a[self._order]
        osl_a = np.maximum(osl_a, 1.0)
        isl_a = np.maximum(isl_a, 0.0)
        self._arrival_np, self._isl_np, self._osl_np = arrival, isl_a, osl_a
        n = arrival.size
        self._n = n
        self._arr: list[float] = arrival.tolist()
        self._isl: list[float] = isl_a.tolist()
        self._osl: list[float] = osl_a.tolist()
        # per request, updated when a preempted request resumes: the prompt to prefill (the
        # original prompt plus the tokens generated before the preemption), the tokens left to
        # generate, its ITL weight (prompt + left / 2) and its peak footprint
        self._prompt: list[float] = isl_a.tolist()
        self._left: list[float] = osl_a.tolist()
        self._ctx: list[float] = (isl_a + osl_a / 2.0).tolist()
        self._need: list[float] = (isl_a + osl_a).tolist()
        self._preempt = [0] * n
        self.preemptions = 0
        nan = math.nan
        self._pstart = [nan] * n
        self._pend = [nan] * n
        self._djoin = [nan] * n
        self._first = [nan] * n
        self._finish = [nan] * n
        self._itl = [nan] * n
        # logs in event-time order, for windowed metrics
        self._ft_t: list[float] = []
        self._ft_v: list[float] = []  # ttft ms
        self._ft_isl: list[float] = []  # the request's ISL (the frontend observes it with the first token)
        self._fin_t: list[float] = []
        self._fin_itl: list[float] = []  # ms
        self._fin_osl: list[float] = []
        self._fin_dur: list[float] = []  # s
        self._heap: list[tuple[Any, ...]] = []
        self._seq = itertools.count()
        self._decode = DecodePool(
            ItlModel(profile.decode.surface),
            self._ctx,
            self._need,
            self._left,
            self._schedule,
            kv_admission=kv_admission,
            kv0=self._prompt,
            max_num_seqs=max_num_seqs,
        )
        self._ai = 0
        self.now_s = 0.0
        self._last_event_t = 0.0
        self._wid = itertools.count()
        self._workers: dict[str, list[_Worker]] = {"prefill": [], "decode": []}  # every worker ever
        self._live: dict[str, list[_Worker]] = {"prefill": [], "decode": []}  # not gone, creation order
        self._p_idle: list[_Worker] = []
        self._p_queue: deque[int] = deque()
        self._d_active: list[_Worker] = []  # ready decode workers, creation order
        self._d_queue: deque[int] = deque()
        self._targets = {"prefill": int(initial.prefill or 0), "decode": int(initial.decode or 0)}
        self._hist_t: list[float] = []
        self._hist: list[tuple[int, int, int, int, int, int]] = []
        for pool in ("prefill", "decode"):
            for _ in range(self._targets[pool]):
                w = _Worker(pool, next(self._wid), STARTING, 0.0)
                self._workers[pool].append(w)
                self._live[pool].append(w)
                self._make_ready(w, 0.0)
        self._record(0.0)

    # ------------------------------------------------------------------ event loop

    def advance_to(self, t_s: float) -> None:
        """Process every event (arrivals included) at or before ``t_s``; ``now_s`` becomes ``t_s``.

        ``t_s = math.inf`` runs until nothing is left to happen (every request finished, every
        worker started or drained) and leaves ``now_s`` at the last event (or where it was).
        """
        t_end = float(t_s)
        if math.isnan(t_end):
            raise ValueError("cannot advance to NaN")
        if t_end < self.now_s:
            raise ValueError(f"cannot go back in time: now {self.now_s}, asked {t_end}")
        heap = self._heap
        arr = self._arr
        n = self._n
        ai = self._ai
        arrive = self._arrive
        prefill_done = self._prefill_done
        decode_done = self._decode_done
        last_t = self._last_event_t
        while True:
            ta = arr[ai] if ai < n else math.inf
            if heap and heap[0][0] <= ta:
                t = heap[0][0]
                if t > t_end:
                    break
                _, _, kind, a, b = heappop(heap)
                if kind == _EV_DECODE_DONE:
                    if a.version == b:
                        decode_done(a, t)
                        last_t = t
                elif kind == _EV_PREFILL_DONE:
                    prefill_done(a, t)
                    last_t = t
                elif a.state == STARTING:
                    self._make_ready(a, t)
                    last_t = t
            else:
                if ta > t_end or ai >= n:
                    break
                arrive(ai, ta)
                last_t = ta
                ai += 1
        self._ai = ai
        self._last_event_t = last_t
        if math.isinf(t_end):
            t_end = max(self.now_s, self._last_event_t)
        self.now_s = t_end

    def _arrive(self, r: int, t: float) -> None:
        self._p_queue.append(r)
        if r + 1 < self._n and self._arr[r + 1] <= t:
            return  # requests arriving together are dispatched together, by the last of them
        self._dispatch(t)

    def _dispatch(self, t: float) -> None:
        """Idle prefill workers take the queue, spread evenly over them (as a router would)."""
        idle, queue = self._p_idle, self._p_queue
        while idle and queue:
            self._start_pass(idle.pop(), t, -(-len(queue) // (len(idle) + 1)))

    def _start_pass(self, w: _Worker, t: float, max_prompts: int | None = None) -> bool:
        """Start the worker's next forward pass at ``t``: its chunked prompt first, then queued
        prompts up to the token budget and ``max_prompts`` (a draining worker takes none). False
        if there is nothing to do."""
        budget = self.max_num_batched_tokens
        room = math.inf if budget is None else float(budget)
        prompt = self._prompt
        batch = w.batch
        prefix = 0.0  # prompt tokens already done of the chunked prompt this pass continues
        tokens = 0.0  # new prompt tokens in this pass
        if w.partial >= 0:
            r = w.partial
            prefix = w.partial_done
            take = min(prompt[r] - prefix, room)
            tokens = take
            room -= take
            w.partial_done = prefix + take
            if w.partial_done >= prompt[r]:
                batch.append(r)
                w.partial = -1
        queue = self._p_queue
        fresh = 0
        if w.state != DRAINING:
            pstart = self._pstart
            while queue and room > 0 and w.partial < 0:
                r = queue.popleft()
                fresh += 1
                if math.isnan(pstart[r]):
                    pstart[r] = t
                need = prompt[r]
                if need <= room:
                    batch.append(r)
                    tokens += need
                    room -= need
                else:  # chunked: the rest of its prompt leads the next pass
                    w.partial = r
                    w.partial_done = room
                    tokens += room
                    room = 0.0
                if budget is None or fresh == max_prompts:  # one request per pass, or its share
                    break
        if not batch and w.partial < 0:
            return False
        if fresh:  # a batch of new prompt tokens; only a lone continuation is timed incrementally
            prefix = 0.0
        w.busy = True
        heappush(self._heap, (t + self._pass_time.seconds(prefix, tokens), next(self._seq), _EV_PREFILL_DONE, w, None))
        return True

    def _prefill_done(self, w: _Worker, t: float) -> None:
        w.busy = False
        done, w.batch = w.batch, []
        if not self._start_pass(w, t):
            if w.state == DRAINING:
                self._retire(w, t)
            else:
                self._p_idle.append(w)
        pend = self._pend
        for r in done:
            if math.isnan(pend[r]):
                pend[r] = t
            if self._d_queue or not self._place(r, t):
                self._d_queue.append(r)

    def _place(self, r: int, t: float) -> bool:
        if self._decode.place(self._d_active, r, t) is None:
            return False
        if math.isnan(self._djoin[r]):
            self._djoin[r] = t
        return True

    def _schedule(self, when: float, w: DecodeWorker, version: int) -> None:
        heappush(self._heap, (when, next(self._seq), _EV_DECODE_DONE, w, version))

    def _decode_done(self, w: _Worker, t: float) -> None:
        first, osl, arr = self._first, self._osl, self._arr
        firsts, done, preempted = self._decode.step(w, t)
        for r in firsts:
            if math.isnan(first[r]):  # (a resumed request emitted its first token before)
                first[r] = t
                self._ft_t.append(t)
                self._ft_v.append((t - arr[r]) * 1000.0)
                self._ft_isl.append(self._isl[r])
        if preempted:
            self._requeue(preempted, t)
        for r in done:
            # the mean gap between its tokens (none for a one-token request)
            itl_ms = (t - first[r]) / (osl[r] - 1.0) * 1000.0 if osl[r] > 1.0 else 0.0
            self._finish[r] = t
            self._itl[r] = itl_ms
            self._fin_t.append(t)
            self._fin_itl.append(itl_ms)
            self._fin_osl.append(osl[r])
            self._fin_dur.append(t - arr[r])
        if not w.n and w.state == DRAINING:
            self._retire(w, t)
        if self._d_queue and done:  # after a preemption the cache is full: nothing joins
            self._drain_decode_queue(t)

    def _requeue(self, preempted: list[tuple[int, float]], t: float) -> None:
        """Preempted requests recompute: back to the head of the prefill queue with their
        prompt and the tokens generated so far as the new prompt, to generate the rest."""
        prompt, left, ctx, need = self._prompt, self._left, self._ctx, self._need
        for r, generated in preempted:
            generated = min(generated, left[r] - 1.0)  # at least its last token is still due
            prompt[r] += generated
            left[r] -= generated
            ctx[r] = prompt[r] + left[r] / 2.0
            need[r] = prompt[r] + left[r]
            self._preempt[r] += 1
            self.preemptions += 1
            self._p_queue.appendleft(r)
        self._dispatch(t)

    def _drain_decode_queue(self, t: float) -> None:
        q = self._d_queue
        while q and self._place(q[0], t):
            q.popleft()

    # ------------------------------------------------------------------ workers

    def _make_ready(self, w: _Worker, t: float) -> None:
        if w.state != STARTING:  # cancelled while starting
            return
        w.state = READY
        if w.pool == "prefill":
            if not self._start_pass(w, t):
                self._p_idle.append(w)
        else:
            w.t_last = t
            self._d_active.append(w)
            if self._d_queue:
                self._drain_decode_queue(t)
        self._record(t)

    def _retire(self, w: _Worker, t: float) -> None:
        w.state = GONE
        w.end_t = t
        self._live[w.pool].remove(w)
        self._record(t)

    def _new_worker(self, pool: str, t: float) -> None:
        w = _Worker(pool, next(self._wid), STARTING, t)
        self._workers[pool].append(w)
        self._live[pool].append(w)
        if self.startup_s <= 0:
            self._make_ready(w, t)
        else:
            heappush(self._heap, (t + self.startup_s, next(self._seq), _EV_READY, w, None))

    def set_targets(self, targets: Replicas) -> None:
        """Ask for ``targets`` replicas at ``now_s``; a pool given as None is left unchanged."""
        t = self.now_s
        for pool, target in (("prefill", targets.prefill), ("decode", targets.decode)):
            if target is None:
                continue
            target = int(target)
            if target < 0:
                raise ValueError(f"{pool} target must be >= 0, got {target}")
            self._targets[pool] = target
            self._scale(pool, target, t)
        self._record(t)

    def _scale(self, pool: str, target: int, t: float) -> None:
        live = self._live[pool]
        starting = [w for w in live if w.state == STARTING]
        ready = [w for w in live if w.state == READY]
        active = len(starting) + len(ready)
        if target > active:
            k = target - active
            for w in [w for w in live if w.state == DRAINING][::-1][:k]:  # newest draining first
                w.state = READY
                k -= 1
                if pool == "decode":
                    self._d_active.append(w)
                    self._d_active.sort(key=attrgetter("wid"))
                    if self._d_queue:
                        self._drain_decode_queue(t)
                # a draining prefill worker is busy; it takes the queue when its pass is done
            for _ in range(k):
                self._new_worker(pool, t)
        elif target < active:
            k = active - target
            for w in starting[::-1][:k]:  # newest first; the GPU cost stops now
                w.state = GONE
                w.end_t = t
                live.remove(w)
                k -= 1
            if k <= 0:
                return
            if pool == "prefill":
                order = sorted(ready, key=lambda w: (w.busy, -w.wid))
            else:
                kv = self._decode.kv_in_use
                order = sorted(ready, key=lambda w: (kv(w, t), -w.wid))
            for w in order[:k]:
                if pool == "prefill":
                    if not w.busy:
                        self._p_idle.remove(w)
                        self._retire(w, t)
                    else:
                        w.state = DRAINING
                else:
                    self._d_active.remove(w)
                    if w.n == 0:
                        self._retire(w, t)
                    else:
                        w.state = DRAINING

    def _counts(self, pool: str) -> tuple[int, int, int]:
        ready = starting = draining = 0
        for w in self._live[pool]:
            if w.state == READY:
                ready += 1
            elif w.state == STARTING:
                starting += 1
            elif w.state == DRAINING:
                draining += 1
        return ready, starting, draining

    def _record(self, t: float) -> None:
        state = self._counts("prefill") + self._counts("decode")
        if self._hist and self._hist[-1] == state:
            return
        if self._hist_t and self._hist_t[-1] == t:
            self._hist[-1] = state
            if len(self._hist) > 1 and self._hist[-2] == state:
                self._hist.pop()
                self._hist_t.pop()
            return
        self._hist_t.append(t)
        self._hist.append(state)

    # ------------------------------------------------------------------ reports

    def replicas(self) -> dict[str, dict[str, int]]:
        """Current ready / starting / draining counts and the last target, per pool."""
        out = {}
        for pool in ("prefill", "decode"):
            ready, starting, draining = self._counts(pool)
            out[pool] = {"ready": ready, "starting": starting, "draining": draining, "target": self._targets[pool]}
        return out

    def metrics(self, window_start_s: float, window_end_s: float) -> IntervalMetrics:
        """Frontend metrics of ``[window_start_s, window_end_s)`` (see :class:`IntervalMetrics`).

        The window must end at or before ``now_s`` (call :meth:`advance_to` first).
        """
        ws, we = float(window_start_s), float(window_end_s)
        if we > self.now_s + 1e-9:
            raise ValueError(f"window ends at {we} s, after the simulated time {self.now_s} s; advance first")
        if we < ws:
            raise ValueError(f"window end {we} is before its start {ws}")

        def mean(values: list[float], times: list[float]) -> tuple[int, float | None]:
            i0, i1 = bisect_left(times, ws), bisect_left(times, we)
            if i1 <= i0:
                return 0, None
            return i1 - i0, math.fsum(values[i0:i1]) / (i1 - i0)

        num_req, isl = mean(self._isl, self._arr)
        n_first, ttft = mean(self._ft_v, self._ft_t)
        n_fin, itl = mean(self._fin_itl, self._fin_t)
        _, osl = mean(self._fin_osl, self._fin_t)
        _, dur = mean(self._fin_dur, self._fin_t)
        k = bisect_right(self._hist_t, we) - 1
        p_ready, p_start, p_drain, d_ready, d_start, d_drain = self._hist[max(k, 0)]
        return IntervalMetrics(
            ws,
            we,
            num_req,
            isl,
            ttft,
            itl,
            osl,
            dur,
            n_first,
            n_fin,
            p_ready,
            p_start,
            p_drain,
            d_ready,
            d_start,
            d_drain,
        )

    def event_log(self) -> EventLog:
        """The simulator's event logs, in time order, up to ``now_s`` (live lists: read, never
        modify). What a frontend exporter observes: arrivals, first tokens, finished requests."""
        return EventLog(
            self._arr,
            self._isl,
            self._ft_t,
            self._ft_v,
            self._ft_isl,
            self._fin_t,
            self._fin_itl,
            self._fin_osl,
            self._fin_dur,
        )

    def missed_by_now(self, ttft_ms: float, itl_ms: float, counted: NDArray[np.bool_]) -> int:
        """Requests among ``counted`` (the caller's order) that miss the SLA whatever happens
        after ``now_s``: their first token came more than ``ttft_ms`` after arrival, or has not
        come and ``ttft_ms`` has passed, or they finished with a mean ITL above ``itl_ms``. The
        same arithmetic as :meth:`results`, so a request counted here misses there."""
        first = np.array(self._first)
        waited_ms = (np.where(np.isnan(first), self.now_s, first) - self._arrival_np) * 1000.0
        missed = (waited_ms > ttft_ms) | (np.array(self._itl) > itl_ms)
        mask = np.asarray(counted, dtype=bool)
        if self._order is not None:
            mask = mask[self._order]
        return int(np.count_nonzero(missed & mask))

    def results(self) -> RequestResults:
        """Per-request arrays in the caller's order; NaN where not reached by ``now_s``."""
        arrays = {
            "arrival_s": self._arrival_np.copy(),
            "isl": self._isl_np.copy(),
            "osl": self._osl_np.copy(),
            "ttft_ms": (np.array(self._first) - self._arrival_np) * 1000.0,
            "itl_ms": np.array(self._itl),
            "prefill_start_s": np.array(self._pstart),
            "prefill_end_s": np.array(self._pend),
            "decode_join_s": np.array(self._djoin),
            "first_token_s": np.array(self._first),
            "finish_s": np.array(self._finish),
            "preemptions": np.array(self._preempt, dtype=np.int64),
        }
        if self._order is not None:
            inverse = np.empty_like(self._order)
            inverse[self._order] = np.arange(self._order.size)
            arrays = {k: v[inverse] for k, v in arrays.items()}
        return RequestResults(**arrays)

    def gpu_seconds(self) -> dict[str, float]:
        """GPU-seconds per pool up to ``now_s``: every worker from request to removal."""
        out = {}
        for pool, gpus in (("prefill", self.prefill_engine_num_gpu), ("decode", self.decode_engine_num_gpu)):
            total = 0.0
            for w in self._workers[pool]:
                end = self.now_s if w.end_t is None else min(w.end_t, self.now_s)
                total += max(end - w.start_t, 0.0)
            out[pool] = total * gpus
        return out

    def timeline(self) -> list[tuple[float, int, int, int, int]]:
        """``(t_s, prefill_ready, decode_ready, prefill_allocated, decode_allocated)`` at every change;
        allocated = ready + starting + draining (the workers that cost GPUs)."""
        return [
            (t, pr, dr, pr + ps + pd, dr + ds + dd)
            for t, (pr, ps, pd, dr, ds, dd) in zip(self._hist_t, self._hist, strict=True)
        ]

    @property
    def queued(self) -> dict[str, int]:
        """Requests waiting for a prefill worker / for decode admission right now."""
        return {"prefill": len(self._p_queue), "decode": len(self._d_queue)}
