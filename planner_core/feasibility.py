"""Requests no amount of scaling can serve within the SLA, and how the planner learns about them.

A request is **infeasible** when, alone on an idle engine, it would already miss the SLA: its
unloaded TTFT (the profile's prefill time at concurrency 1 for its ISL, extrapolated beyond the
profile, see :class:`planner_core.profiles.PrefillGrowth`, plus the decode engine's first step,
which emits the first token: the unloaded ITL) is above the TTFT SLA, or its unloaded ITL (the
decode surface at one resident request of context ``isl + osl/2``) is above the ITL SLA. The
replay scores SLA attainment over all requests and over the feasible ones
(:func:`infeasible_mask`).

The planner sees means, not requests. What it can see is the frontend's ISL histogram
(``dynamo_frontend_input_sequence_tokens``, observed with each request's first token), and a
prompt is TTFT-infeasible exactly when its ISL is above :func:`max_feasible_isl`. So the
observation carries the window's ISL histogram (:attr:`Observation.isl_histogram`), and
:func:`feasible_load` estimates from it the share of prompts too long to meet the TTFT SLA, the
mean ISL of the others and the lengths of the long ones. The default policy sets its TTFT
target for the feasible requests only, but counts every prompt's prefill time in the pool's busy
time: a prompt that can never meet the SLA still holds an engine for seconds. (Leaving the long
prompts out of the busy time too, as a first version did, met the SLA for 6 % of the feasible
requests of the Mooncake trace at x8: they were 28 % of the prompts and 80 % of the prefill work.)

How the histogram is read, and which way each choice errs:

* prompts are spread evenly within a bucket. The frontend's default ISL buckets are log-spaced,
  so the threshold of the bundled profile at 500 ms (about 20,350 tokens) sits in the
  15,000-31,000 bucket, which is split at it;
* each part stands for its count at its midpoint, all midpoints scaled by one factor (each kept
  within its bucket) so that together they carry the exact total ISL the mean gives;
* the +Inf bucket (above 128,000 tokens by default) spans its lower bound to twice it.

Counting a prompt as infeasible now moves its prefill time from the target into the busy time,
which only ever adds capacity for a long prompt (its prefill takes longer than the SLA), so an
over-count errs towards capacity; the prefill time of a bucket's prompts at its midpoint is an
under-estimate of their mean (prefill time is convex in ISL), which the service-time spread in
the queueing tail (:func:`planner_core.queueing.servers_for_wait_tail`) partly makes up for.

ITL-infeasible requests (rare: the bundled profile's ITL alone is 5-9 ms) are not left out of
the sizing: they still load decode, and decode is what they would miss on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner_core.profiles import Profile

# ``(upper bound, cumulative count)`` pairs as Prometheus exposes a histogram, the last bound +Inf.
IslHistogram = tuple[tuple[float, float], ...]


def max_feasible_isl(profile: Profile, ttft_ms: float) -> float:
    """The longest prompt served within ``ttft_ms`` on idle engines: its prefill at concurrency 1
    plus the first decode step (taken at context = ISL; the OSL is not known from an ISL
    histogram, and the step grows by about 0.2 ms per 10,000 tokens of context)."""
    limit = profile.prefill.max_isl_within(ttft_ms)
    if not math.isfinite(limit) or limit <= 0:
        return limit
    surface = profile.decode.surface
    step_ms = surface.itl_ms_at_kv(limit / surface.max_kv_tokens, limit)
    return profile.prefill.max_isl_within(ttft_ms - step_ms)


def unloaded_latency_ms(profile: Profile, isl: ArrayLike, osl: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    """Per request, ``(ttft_ms, itl_ms)`` alone on idle engines: the decode ITL at one resident
    request of context ``isl + osl/2``, and the profile's prefill time at its ISL plus that one
    step (the first token comes out of the decode engine's first step)."""
    isl_a = np.maximum(np.asarray(isl, dtype=np.float64).reshape(-1), 0.0)
    osl_a = np.maximum(np.asarray(osl, dtype=np.float64).reshape(-1), 1.0)
    if isl_a.size == 0:
        return np.zeros(0), np.zeros(0)
    uniq, inverse = np.unique(isl_a, return_inverse=True)
    ttft = np.array([profile.prefill.ttft_ms(float(x)) for x in uniq])[inverse.reshape(-1)]
    ctx = isl_a + osl_a / 2.0
    surface = profile.decode.surface
    uniq, inverse = np.unique(ctx, return_inverse=True)
    itl = np.array([surface.itl_ms_at_kv(c / surface.max_kv_tokens, c) for c in uniq.tolist()])[inverse.reshape(-1)]
    return ttft + itl, itl


def infeasible_mask(
    profile: Profile, isl: ArrayLike, osl: ArrayLike, ttft_sla_ms: float, itl_sla_ms: float
) -> NDArray[np.bool_]:
    """True for each request whose unloaded TTFT or ITL is above the SLA."""
    ttft, itl = unloaded_latency_ms(profile, isl, osl)
    return np.asarray((ttft > ttft_sla_ms) | (itl > itl_sla_ms), dtype=np.bool_)


def isl_histogram(isl: Sequence[float], bounds: Sequence[float]) -> IslHistogram:
    """The cumulative histogram of ``isl`` over ``bounds`` (ascending, finite) and +Inf, with
    Prometheus's rule: a value counts in every bucket whose bound is >= it."""
    values = np.sort(np.asarray(isl, dtype=np.float64))
    counts = np.searchsorted(values, np.asarray(bounds, dtype=np.float64), side="right")
    return (*((float(b), float(c)) for b, c in zip(bounds, counts, strict=True)), (math.inf, float(values.size)))


@dataclass(frozen=True)
class FeasibleLoad:
    """The share of prompts too long for the TTFT SLA, estimated from an ISL histogram."""

    max_feasible_isl: float
    observed: float  # requests in the histogram
    infeasible: float  # of them, with ISL above max_feasible_isl (estimated)
    feasible_isl: float  # mean ISL of the others (= the given mean when none is left out)
    # the infeasible prompts as (count, representative ISL) per histogram bucket: their prefill
    # time grows faster than their length, so the sizing sums it per bucket, not at the mean
    infeasible_parts: tuple[tuple[float, float], ...] = ()

    @property
    def infeasible_share(self) -> float:
        return self.infeasible / self.observed if self.observed > 0 else 0.0

    @property
    def infeasible_isl(self) -> float:
        """Mean ISL of the infeasible prompts (0 when there are none)."""
        return sum(n * isl for n, isl in self.infeasible_parts) / self.infeasible if self.infeasible > 0 else 0.0


def _buckets(histogram: IslHistogram) -> list[tuple[float, float, float]]:
    """``(count, lower, upper)`` per non-empty bucket; the +Inf bucket spans its lower bound to
    twice it (the frontend's buckets are log-spaced, so the next one would)."""
    out = []
    lower, below = 0.0, 0.0
    for bound, cumulative in histogram:
        n = max(float(cumulative) - below, 0.0)
        upper = bound if math.isfinite(bound) else max(2.0 * lower, 1.0)
        if n > 0:
            out.append((n, lower, upper))
        lower, below = upper, max(float(cumulative), below)
    return out


def feasible_load(histogram: IslHistogram | None, mean_isl: float, max_isl: float) -> FeasibleLoad:
    """How many of the histogram's prompts are longer than ``max_isl``, the mean ISL of the rest
    and the lengths of the long ones, given the mean ISL of all. No histogram, an empty one or
    no prompt above the threshold: nothing is left out.

    Within a bucket, prompts are taken as spread evenly: the bucket that holds the threshold is
    split at it, and each part stands for its count at its midpoint, all midpoints scaled by one
    factor (each kept within its bucket) so that together they carry the exact total ISL the
    mean gives."""
    none = FeasibleLoad(max_isl, 0.0, 0.0, mean_isl)
    if not histogram or not math.isfinite(max_isl):
        return none
    total = float(histogram[-1][1])
    if total <= 0:
        return none
    parts: list[tuple[float, float, float, bool]] = []  # count, lower, upper, infeasible
    for n, lo, hi in _buckets(histogram):
        if hi <= max_isl:
            parts.append((n, lo, hi, False))
        elif lo >= max_isl:
            parts.append((n, lo, hi, True))
        else:
            above = (hi - max_isl) / (hi - lo)
            parts += [(n * (1.0 - above), lo, max_isl, False), (n * above, max_isl, hi, True)]
    infeasible = sum(n for n, _, _, out in parts if out)
    if infeasible <= 0:
        return FeasibleLoad(max_isl, total, 0.0, mean_isl)
    midpoints = sum(n * (lo + hi) / 2.0 for n, lo, hi, _ in parts)
    scale = mean_isl * total / midpoints if midpoints > 0 else 1.0
    reps = [(n, min(max((lo + hi) / 2.0 * scale, lo), hi), out) for n, lo, hi, out in parts]
    infeasible_parts = tuple((n, isl) for n, isl, out in reps if out and n > 0)
    feasible = total - infeasible
    if feasible <= 0:
        return FeasibleLoad(max_isl, total, total, max_isl, infeasible_parts)
    feasible_isl = sum(n * isl for n, isl, out in reps if not out) / feasible
    return FeasibleLoad(max_isl, total, infeasible, min(max(feasible_isl, 1.0), max_isl), infeasible_parts)
