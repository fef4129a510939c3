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
:func:`feasible_load` estimates from it the share of prompts too long to meet the TTFT SLA and
the mean ISL of the others. The default policy sizes prefill for the feasible requests only.

The estimate is a bound, and errs towards more prefill capacity:

* only the buckets whose lower edge is at or above the threshold count as infeasible: a lower
  bound on the true count. The prompts of the bucket that holds the threshold are all planned
  for. The frontend's default ISL buckets are log-spaced, so the threshold of the bundled profile
  at 500 ms (about 20,500 tokens) sits in the 15,000-31,000 bucket and the prompts from 20,500 to
  31,000 tokens are planned for although they cannot meet the SLA (spreading that bucket evenly
  instead over-counted a long-tailed sample by 8 %, which would under-provision);
* requests above the last finite bucket bound (128,000 tokens by default) count as infeasible
  when the threshold is at or below that bound (their lengths are otherwise unknown);
* the feasible mean ISL is ``(total ISL - a lower bound on the infeasible prompts' ISL) /
  feasible count``, with each infeasible prompt counted at the lower edge of its bucket: an
  upper bound on the true feasible mean, capped at the threshold.

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
    feasible_isl: float  # mean ISL of the others (an upper bound; = the given mean when none is left out)

    @property
    def infeasible_share(self) -> float:
        return self.infeasible / self.observed if self.observed > 0 else 0.0


def feasible_load(histogram: IslHistogram | None, mean_isl: float, max_isl: float) -> FeasibleLoad:
    """How many of the histogram's prompts are longer than ``max_isl`` and the mean ISL of the
    rest, given the mean ISL of all (module docstring: the assumptions). No histogram, an empty
    one or no prompt above the threshold: nothing is left out."""
    none = FeasibleLoad(max_isl, 0.0, 0.0, mean_isl)
    if not histogram or not math.isfinite(max_isl):
        return none
    total = float(histogram[-1][1])
    if total <= 0:
        return none
    infeasible = 0.0
    isl_sum_low = 0.0  # a lower bound on the infeasible prompts' total ISL
    lower, below = 0.0, 0.0  # the previous bucket's bound and cumulative count
    for bound, cumulative in histogram:
        n = max(float(cumulative) - below, 0.0)
        if n > 0 and lower >= max_isl:  # every prompt of this bucket is longer than the limit
            infeasible += n
            isl_sum_low += n * lower
        lower, below = bound, max(float(cumulative), below)
    if infeasible <= 0:
        return FeasibleLoad(max_isl, total, 0.0, mean_isl)
    feasible = total - infeasible
    if feasible <= 0:
        return FeasibleLoad(max_isl, total, total, max_isl)
    feasible_isl = (mean_isl * total - isl_sum_low) / feasible
    return FeasibleLoad(max_isl, total, infeasible, min(max(feasible_isl, 1.0), max_isl))
