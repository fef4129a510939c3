"""Workload transformations for replaying traces at a different load.

Two ways to raise a trace's load, both deterministic per seed:

* :func:`load_scale` (``--load-scale K``): every request appears about ``K`` times, as ``K``
  independent users sending the same request would: each extra copy is shifted by a random offset
  spread uniformly over ``copy_jitter_s`` seconds (default :data:`DEFAULT_COPY_JITTER_S`, the
  replay's adjustment interval), so the per-minute load and its shape are kept while the
  per-second arrivals are about as bursty as ``K`` independent streams. Copies shifted past the
  trace's end wrap to its start, so the replay does not open with a ramp. ``copy_jitter_s=1`` is
  the burst stress test (every copy within a second of its original: per-second arrivals about
  ``K`` times burstier than ``K`` independent users; the replay's default before issue 14).
* :func:`speed_up` (``--speed-up K``): time compression, every inter-arrival time divided by
  ``K``: the same requests, ``K`` times as fast (and ``K`` times shorter); bursts stay bursts.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

# The replay's adjustment interval (commands/replay.py REPLAY_DEFAULTS): copies of one request
# spread over one planning interval, so the interval's load is kept and its seconds are not
# K-fold bursts.
DEFAULT_COPY_JITTER_S = 60.0


def load_scale(
    arrival_s: ArrayLike,
    isl: ArrayLike,
    osl: ArrayLike,
    k: float,
    seed: int = 0,
    copy_jitter_s: float = DEFAULT_COPY_JITTER_S,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Scale a trace's load by ``k``: every request appears ``floor(k)`` times, plus one more copy
    with probability ``k - floor(k)``. The first copy keeps the original arrival time; every
    further copy is shifted later by an independent uniform ``[0, copy_jitter_s)`` offset, and one
    shifted past the trace's last arrival wraps around to its start (the span is treated as
    periodic, so the first ``copy_jitter_s`` seconds are not a ramp). ISL and OSL are copied
    unchanged. Seeded (``numpy.random.default_rng(seed)``; the same draws for every
    ``copy_jitter_s``, which only scales them); the result is sorted by arrival (stable, so ties
    keep trace order). Returns ``(arrival_s, isl, osl)`` as float arrays.
    """
    arrival = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
    isl_a = np.asarray(isl, dtype=np.float64).reshape(-1)
    osl_a = np.asarray(osl, dtype=np.float64).reshape(-1)
    if not (arrival.shape == isl_a.shape == osl_a.shape):
        raise ValueError("arrival_s, isl and osl must have the same length")
    if not (k >= 0 and math.isfinite(k)):
        raise ValueError(f"load scale must be a finite number >= 0, got {k}")
    if not (copy_jitter_s >= 0 and math.isfinite(copy_jitter_s)):
        raise ValueError(f"copy jitter must be a finite number of seconds >= 0, got {copy_jitter_s}")
    rng = np.random.default_rng(seed)
    whole = math.floor(k)
    frac = k - whole
    copies = np.full(arrival.size, whole, dtype=np.int64)
    if frac > 0:
        copies += rng.random(arrival.size) < frac
    idx = np.repeat(np.arange(arrival.size), copies)
    # position of each copy among its request's copies: 0 for the first one
    starts = np.cumsum(copies) - copies
    pos = np.arange(idx.size) - np.repeat(starts, copies)
    shift = np.where(pos > 0, rng.random(idx.size) * copy_jitter_s, 0.0)
    out_arrival = arrival[idx] + shift
    if arrival.size and copy_jitter_s > 0:
        # The trace's span is treated as periodic: a copy shifted past its last arrival wraps
        # to its start. Users were already active before the trace began, so its first seconds
        # keep the full load instead of a ramp over the first ``copy_jitter_s`` (and nothing
        # trails past the end).
        t0, t1 = float(arrival.min()), float(arrival.max())
        period = t1 - t0
        if period > 0:
            out_arrival = np.where(out_arrival > t1, t0 + np.mod(out_arrival - t1, period), out_arrival)
    order = np.argsort(out_arrival, kind="stable")
    return out_arrival[order], isl_a[idx][order], osl_a[idx][order]


def speed_up(arrival_s: ArrayLike, k: float) -> FloatArray:
    """Arrival times with every inter-arrival time divided by ``k`` (the first arrival's offset
    from 0 too): the same requests, ``k`` times as fast."""
    if not (k > 0 and math.isfinite(k)):
        raise ValueError(f"speed-up must be a finite number > 0, got {k}")
    return np.asarray(arrival_s, dtype=np.float64).reshape(-1) / k
