"""The decode pool's model, once: how requests join decode workers, batch, and finish.

Both the cluster simulator (:mod:`planner_core.sim.cluster`, workers that start, run and drain)
and the oracle (:mod:`planner_core.sim.oracle`, a fixed pool ready from the start) run requests
through :class:`DecodePool`, so they cannot drift apart.

A worker's ITL at any moment is ``surface.itl_ms_at_kv(kv, ctx)`` with
``kv = sum(isl + osl/2) / max_kv_tokens`` and ``ctx = mean(isl + osl/2)`` over its resident
requests (the accounting Dynamo's profiler used to produce the profile), so the ITL only changes
when a request joins or leaves. A request joins the least-loaded worker (by reserved KV tokens;
the first such worker on a tie) among those running fewer than ``max_num_seqs`` sequences (the
engine's cap, vLLM's ``--max-num-seqs``) if its peak footprint ``isl + osl`` fits, else it waits (a
request larger than a whole engine is admitted on an empty worker). Each worker keeps a token
clock ``tok`` (tokens emitted per resident request) that advances at ``1 / ITL``; a request
joining at ``tok0`` leaves at ``tok0 + osl``, so the next completion is at
``t_last + (tok_next - tok) * ITL``, rescheduled whenever the ITL changes.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from heapq import heappop, heappush

from planner_core.profiles import DecodeSurface

# two completions closer than this on a worker's token clock are simultaneous
TOKEN_EPS = 1e-6


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

    __slots__ = ("ctx_sum", "heap", "itl_s", "n", "reserved", "t_last", "tok", "version")

    def __init__(self, t_last: float = 0.0) -> None:
        self.tok = 0.0  # tokens emitted per resident request
        self.t_last = t_last  # when ``tok`` was last brought up to date
        self.itl_s = 0.0
        self.n = 0  # resident requests
        self.ctx_sum = 0.0  # their isl + osl/2
        self.reserved = 0.0  # their isl + osl (admission)
        self.heap: list[tuple[float, int]] = []  # (finish token clock, request)
        self.version = 0  # bumped whenever the scheduled completion is void


# Schedule the worker's next completion: ``(time, worker, version)``; the event is void if the
# worker's version has moved on by then.
Schedule = Callable[[float, DecodeWorker, int], None]


class DecodePool:
    """Requests ``r`` (indices into ``ctx`` / ``need`` / ``osl``) on decode workers.

    The caller owns the clock and the event queue: :meth:`place` and :meth:`complete` call
    ``schedule`` for every completion they (re)schedule, and the caller calls :meth:`complete`
    when a scheduled event whose version still matches comes due."""

    def __init__(
        self,
        model: ItlModel,
        ctx: Sequence[float],
        need: Sequence[float],
        osl: Sequence[float],
        schedule: Schedule,
        max_num_seqs: float | None = None,
    ) -> None:
        self.model = model
        # running sequences per worker at most (None: no cap but the KV cache)
        self.max_num_seqs = math.inf if max_num_seqs is None else float(max_num_seqs)
        self.max_kv = model.max_kv_tokens
        self.ctx, self.need, self.osl = ctx, need, osl
        self.schedule = schedule

    def place(self, workers: Sequence[DecodeWorker], r: int, t: float) -> DecodeWorker | None:
        """Request ``r`` joins the least-reserved of ``workers`` below the sequence cap at ``t``
        (its first token), or None when there is no such worker or its KV does not fit."""
        if not workers:
            return None
        w = workers[0]
        cap = self.max_num_seqs
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
        heappush(w.heap, (w.tok + self.osl[r], r))
        w.n += 1
        w.ctx_sum += self.ctx[r]
        w.reserved += self.need[r]
        self.reschedule(w)
        return w

    def reschedule(self, w: DecodeWorker) -> None:
        """Void the worker's scheduled completion and schedule the next one at the current ITL."""
        w.version += 1
        if w.n:
            w.itl_s = self.model.itl_s(w.ctx_sum, w.n)
            self.schedule(w.t_last + (w.heap[0][0] - w.tok) * w.itl_s, w, w.version)

    def complete(self, w: DecodeWorker, t: float) -> list[int]:
        """The worker's due completion at ``t``: the requests that finish (their last token now),
        removed from the batch; the next completion is scheduled."""
        h = w.heap
        tok = h[0][0]
        w.tok = tok
        w.t_last = t
        limit = tok + TOKEN_EPS
        ctx, need = self.ctx, self.need
        done: list[int] = []
        while h and h[0][0] <= limit:
            r = heappop(h)[1]
            w.n -= 1
            w.ctx_sum -= ctx[r]
            w.reserved -= need[r]
            done.append(r)
        if w.n:
            self.reschedule(w)
        else:
            w.ctx_sum = 0.0
            w.reserved = 0.0
            w.version += 1
        return done
