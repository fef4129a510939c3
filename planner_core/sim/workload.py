"""Workload transformations for replaying traces at a different load."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def load_scale(
    arrival_s: ArrayLike, isl: ArrayLike, osl: ArrayLike, k: float, seed: int = 0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Scale a trace's load by ``k``: every request appears ``floor(k)`` times, plus one more copy
    with probability ``k - floor(k)``. The first copy keeps the original arrival time; every
    further copy is shifted later by an independent uniform ``[0, 1)`` s offset. ISL and OSL are
    copied unchanged. Seeded (``numpy.random.default_rng(seed)``); the result is sorted by arrival
    (stable, so ties keep trace order). Returns ``(arrival_s, isl, osl)`` as float arrays.
    """
    arrival = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
    isl_a = np.asarray(isl, dtype=np.float64).reshape(-1)
    osl_a = np.asarray(osl, dtype=np.float64).reshape(-1)
    if not (arrival.shape == isl_a.shape == osl_a.shape):
        raise ValueError("arrival_s, isl and osl must have the same length")
    if not (k >= 0 and math.isfinite(k)):
        raise ValueError(f"load scale must be a finite number >= 0, got {k}")
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
    shift = np.where(pos > 0, rng.random(idx.size), 0.0)
    out_arrival = arrival[idx] + shift
    order = np.argsort(out_arrival, kind="stable")
    return out_arrival[order], isl_a[idx][order], osl_a[idx][order]
