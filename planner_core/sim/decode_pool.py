"""The decode pool's model, once: how requests join decode workers, batch, and finish.

Both the cluster simulator (:mod:`planner_core.sim.cluster`, workers that start, run and drain)
and the oracle (:mod:`planner_core.sim.oracle`, a fixed pool ready from the start) run requests
through :class:`DecodePool`, so they cannot drift apart.

A worker's ITL at any moment is ``surface.itl_ms_at_kv(kv, ctx)`` with
``kv = sum(isl + osl/2) / max_kv_tokens`` and ``ctx = mean(isl + osl/2)`` over its resident
requests (the accounting Dynamo's profiler used to produce the profile), so the ITL only changes
when a request joins or leaves. Each worker keeps a token clock ``tok`` that advances at
``1 / ITL``: its forward passes (decode steps) end where ``tok`` crosses a whole number. A request
that joins during a step waits for it to end (``tok0 = ceil(tok)``; at once on an idle worker),
emits its first token at the end of its first step (``tok0 + 1``) and its last at
``tok0 + osl``, as a disaggregated decode engine does (Dynamo's mocker likewise). The next event
is at ``t_last + (tok_next - tok) * ITL``, rescheduled whenever the ITL changes.

KV capacity, two ways (``kv_admission``):

* ``reserve``: a request joins the least-loaded worker (by reserved tokens) if its peak
  footprint ``isl + osl`` fits next to the others' reservations, else it waits; nothing is ever
  preempted.
* ``paged`` (vLLM's way): a request holds the tokens it has now, its prompt at the join plus one
  per token generated, so a worker's KV in use is ``S + n * tok`` with
  ``S = sum(kv0 - tok0)`` over its ``n`` residents. A request joins the worker with the least KV
  in use if its prompt plus one block fits now. When the growing batch would overflow the cache,
  the most recently joined resident is preempted (LIFO, as vLLM and Dynamo's mocker do); the
  caller re-queues it for recompute. The moment of overflow is exact on the token clock:
  ``tok_full = (max_kv - S) / n``.

In both modes a worker runs at most ``max_num_seqs`` sequences (the engine's cap, vLLM's
``--max-num-seqs``; None: no cap but the KV cache): the least-loaded worker is chosen among those
below the cap, and a request that finds every worker at the cap waits. A request larger than a
whole engine is admitted on an empty worker (otherwise it would block the queue forever), and a
lone resident is never preempted.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from heapq import heappop, heappush

from planner_core.profiles import DecodeSurface

# two completions closer than this on a worker's token clock are simultaneous
TOKEN_EPS = 1e-6
KV_ADMISSION_MODES = ("paged", "reserve")
# paged admission leaves this much room for the tokens about to be generated (one KV block)
PAGED_HEADROOM_TOKENS = 64.0


class ItlModel:
    """``DecodeSurface.itl_ms_at_kv`` in seconds, as plain-list arithmetic for the hot path.

    ``itl_s(ctx_sum, n)`` is the ITL of a worker holding ``n`` requests whose
    ``isl + osl/2`` sum to ``ctx_sum``: KV usage ``ctx_sum / max_kv_tokens``, context
    ``ctx_sum / n``.
    """

    def __init__(self, surface: DecodeSurface) -> None:
        self.levels: list[float] = surface.levels.tolist()
        self.axis: list[float] = surface.kv_axis.tolist()
        self.rows: list[list[float]] = [(row / 1000.0).tolist() for row in surface.itl_ms_rows]
        self.max_kv_tokens = float(surface.max_kv_tokens)
        self.inv_max_kv = 1.0 / self.max_kv_tokens

    def itl_s(self, ctx_sum: float, n: int) -> float:
        levels = self.levels
        c = ctx_sum / n
        if c <= levels[0]:
            lo = hi = 0
            w = 0.0
        elif c >= levels[-1]:
            lo = hi = len(levels) - 1
            w = 0.0
        else:
            hi = bisect_left(levels, c)
            if levels[hi] == c:
                lo = hi
                w = 0.0
            else:
                lo = hi - 1
                w = (c - levels[lo]) / (levels[hi] - levels[lo])
        axis = self.axis
        x = ctx_sum * self.inv_max_kv
        if x > 1.0:
            x = 1.0
        i = bisect_right(axis, x) - 1
        if i < 0:
            i = 0
        elif i > len(axis) - 2:
            i = len(axis) - 2
        f = (x - axis[i]) / (axis[i + 1] - axis[i])
        r = self.rows[lo]
        value = r[i] + (r[i + 1] - r[i]) * f
        if w:
            r = self.rows[hi]
            value = value * (1.0 - w) + (r[i] + (r[i + 1] - r[i]) * f) * w
        return value


class DecodeWorker:
    """One decode engine's batch: its token clock, resident requests and load."""

    __slots__ = (
        "ctx_sum",
        "full_next",
        "heap",
        "itl_s",
        "kv_base",
        "members",
        "n",
        "order",
        "reserved",
        "t_last",
        "tok",
        "version",
    )

    def __init__(self, t_last: float = 0.0) -> None:
        self.tok = 0.0  # tokens emitted per resident request
        self.t_last = t_last  # when ``tok`` was last brought up to date
        self.itl_s = 0.0
        self.n = 0  # resident requests
        self.ctx_sum = 0.0  # their isl + osl/2
        self.reserved = 0.0  # their isl + osl (reserve admission)
        self.kv_base = 0.0  # sum(kv0 - tok0): KV in use is kv_base + n * tok (paged)
        # (token clock, join id, FIRST_TOKEN or LAST_TOKEN, request)
        self.heap: list[tuple[float, int, int, int]] = []
        self.members: dict[int, tuple[int, float]] = {}  # request -> (join id, tok0)
        self.order: list[tuple[int, int]] = []  # (join id, request) in join order, for LIFO preemption
        self.version = 0  # bumped whenever the scheduled event is void
        self.full_next = False  # the scheduled event is a KV overflow, not a completion


FIRST_TOKEN, LAST_TOKEN = 0, 1

# Schedule the worker's next event: ``(time, worker, version)``; the event is void if the
# worker's version has moved on by then.
Schedule = Callable[[float, DecodeWorker, int], None]


class DecodePool:
    """Requests ``r`` (indices into ``ctx`` / ``need`` / ``osl`` / ``kv0``) on decode workers.

    ``ctx[r]`` is the request's ``isl + osl/2`` (its ITL weight), ``need[r]`` its peak footprint
    (reserve admission), ``osl[r]`` the tokens it generates on this join, ``kv0[r]`` the KV it
    brings when it joins (paged admission; defaults to ``need``). The caller may change a
    request's entries between joins (a preempted request resumes with a longer prompt and fewer
    tokens left).

    The caller owns the clock and the event queue: :meth:`place` and :meth:`step` call
    ``schedule`` for every event they (re)schedule, and the caller calls :meth:`step` when a
    scheduled event whose version still matches comes due."""

    def __init__(
        self,
        model: ItlModel,
        ctx: Sequence[float],
        need: Sequence[float],
        osl: Sequence[float],
        schedule: Schedule,
        kv_admission: str = "reserve",
        kv0: Sequence[float] | None = None,
        max_num_seqs: float | None = None,
    ) -> None:
        if kv_admission not in KV_ADMISSION_MODES:
            raise ValueError(f"kv_admission: unknown {kv_admission!r}; choose paged or reserve")
        self.model = model
        # running sequences per worker at most (None: no cap but the KV cache)
        self.max_num_seqs = math.inf if max_num_seqs is None else float(max_num_seqs)
        self.max_kv = model.max_kv_tokens
        self.ctx, self.need, self.osl = ctx, need, osl
        self.kv0 = kv0 if kv0 is not None else need
        self.schedule = schedule
        self.paged = kv_admission == "paged"
        self._join_id = itertools.count()

    # ---------------------------------------------------------------- load

    def kv_in_use(self, w: DecodeWorker, t: float) -> float:
        """Tokens the worker's KV holds at ``t``: reserved (reserve) or current (paged)."""
        if not self.paged:
            return w.reserved
        if not w.n:
            return 0.0
        return w.kv_base + w.n * (w.tok + (t - w.t_last) / w.itl_s)

    def place(self, workers: Sequence[DecodeWorker], r: int, t: float) -> DecodeWorker | None:
        """Request ``r`` joins the least-loaded of ``workers`` below the sequence cap at ``t``, or
        None when there is no such worker or its KV does not fit."""
        if not workers:
            return None
        cap = self.max_num_seqs
        if self.paged:
            # kv_in_use inlined (the same arithmetic): this loop over every worker is the
            # simulator's hottest path when a pool runs tens of engines
            found = None
            best = math.inf
            for candidate in workers:
                n = candidate.n
                if n >= cap:
                    continue
                load = candidate.kv_base + n * (candidate.tok + (t - candidate.t_last) / candidate.itl_s) if n else 0.0
                if load < best:
                    found, best = candidate, load
            if found is None:
                return None
            w = found
            if w.n and best + self.kv0[r] + PAGED_HEADROOM_TOKENS > self.max_kv:
                return None
        else:
            w = workers[0]
            if len(workers) > 1 or w.n >= cap:
                found = None
                best = math.inf
                for candidate in workers:
                    if candidate.reserved < best and candidate.n < cap:
                        found, best = candidate, candidate.reserved
                if found is None:
                    return None
                w = found
            if w.n and w.reserved + self.need[r] > self.max_kv:
                return None
        if w.n:
            w.tok += (t - w.t_last) / w.itl_s
        w.t_last = t
        jid = next(self._join_id)
        tok0 = math.ceil(w.tok - TOKEN_EPS)  # its first step starts when the running one ends
        heappush(w.heap, (tok0 + 1.0, jid, FIRST_TOKEN, r))
        heappush(w.heap, (tok0 + self.osl[r], jid, LAST_TOKEN, r))
        w.members[r] = (jid, tok0)
        w.order.append((jid, r))
        w.n += 1
        w.ctx_sum += self.ctx[r]
        w.reserved += self.need[r]
        w.kv_base += self.kv0[r] - tok0
        self.reschedule(w)
        return w

    # ---------------------------------------------------------------- events

    def _clean_top(self, w: DecodeWorker) -> None:
        h, members = w.heap, w.members
        while h and members.get(h[0][3], (-1,))[0] != h[0][1]:
            heappop(h)

    def reschedule(self, w: DecodeWorker) -> None:
        """Void the worker's scheduled event and schedule its next one at the current ITL: the
        next completion, or (paged) the moment its KV overflows if that comes first."""
        w.version += 1
        if not w.n:
            return
        self._clean_top(w)
        w.itl_s = self.model.itl_s(w.ctx_sum, w.n)
        tok_next = w.heap[0][0]
        w.full_next = False
        if self.paged and w.n > 1:
            tok_full = (self.max_kv - w.kv_base) / w.n
            if tok_full < tok_next:
                tok_next = max(tok_full, w.tok)
                w.full_next = True
        self.schedule(w.t_last + (tok_next - w.tok) * w.itl_s, w, w.version)

    def _remove(self, w: DecodeWorker, r: int) -> float:
        """Take ``r`` off the worker; returns the tokens it emitted there (whole steps)."""
        _, tok0 = w.members.pop(r)
        w.n -= 1
        w.ctx_sum -= self.ctx[r]
        w.reserved -= self.need[r]
        w.kv_base -= self.kv0[r] - tok0
        return float(max(math.floor(w.tok - tok0 + TOKEN_EPS), 0))

    def step(self, w: DecodeWorker, t: float) -> tuple[list[int], list[int], list[tuple[int, float]]]:
        """The worker's due event at ``t``. Returns the requests whose first token is now, those
        that finished (their last token now; removed from the batch) and those preempted
        (request, tokens it emitted on this join; removed); the next event is scheduled."""
        first: list[int] = []
        done: list[int] = []
        preempted: list[tuple[int, float]] = []
        if w.full_next:
            w.tok += (t - w.t_last) / w.itl_s
            w.t_last = t
            # LIFO: the most recently joined residents go first, until the rest fit
            while w.n > 1 and w.kv_base + w.n * w.tok > self.max_kv - TOKEN_EPS:
                jid, r = w.order.pop()
                if w.members.get(r, (-1,))[0] != jid:
                    continue
                preempted.append((r, self._remove(w, r)))
        else:
            self._clean_top(w)
            h = w.heap
            tok = h[0][0]
            w.tok = tok
            w.t_last = t
            limit = tok + TOKEN_EPS
            members = w.members
            while h and h[0][0] <= limit:
                _, jid, kind, r = heappop(h)
                if members.get(r, (-1,))[0] != jid:
                    continue
                if kind == FIRST_TOKEN:
                    first.append(r)
                    continue
                self._remove(w, r)
                done.append(r)
        if w.n:
            self.reschedule(w)
        else:
            w.ctx_sum = 0.0
            w.reserved = 0.0
            w.kv_base = 0.0
            w.heap.clear()
            w.order.clear()
            w.version += 1
        if len(w.order) > 4 * w.n + 64:  # drop finished requests from the LIFO list now and then
            w.order = [(jid, r) for jid, r in w.order if w.members.get(r, (-1,))[0] == jid]
        return first, done, preempted
