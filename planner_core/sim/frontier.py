"""Cost-attainment frontiers: pure arithmetic over (GPU-hours, SLA attainment) points.

A policy with one knob (our ``--sla-attainment``, dynamo-tuned's throughput factor, a static
deployment's replica counts) gives one point per setting. Its **frontier** is the points no other
setting beats on both axes; :func:`gpu_hours_at` reads it at a target attainment, so policies are
compared at the same attainment instead of at whatever each happened to reach.

:func:`cheapest_staircase` finds the cheapest (prefill, decode) pair whose attainment reaches a
target when attainment never drops as either count grows (the pairs that reach it form a
staircase: more prefill engines can only lower the decode engines needed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from planner_core.sim.oracle import _smallest as smallest_passing


@dataclass(frozen=True)
class FrontierPoint:
    """One knob setting's outcome."""

    setting: str  # e.g. "sla_attainment 0.99", "prefill x0.6, decode x0.8", "5P+3D"
    gpu_hours: float
    attainment: float  # SLA attainment over the feasible requests


@dataclass(frozen=True)
class Matched:
    """GPU-hours a frontier needs for a target attainment.

    ``how``: ``interpolated`` between two frontier points (linear in GPU-hours), ``exact`` at a
    point, ``at_most`` (even the cheapest point is above the target: its GPU-hours bound the
    answer from above), ``step`` (the cheapest point at or above the target, for knobs with no
    setting in between, like replica counts) or ``not_reached`` (no point reaches it: None)."""

    gpu_hours: float | None
    how: Literal["interpolated", "exact", "at_most", "step", "not_reached"]

    def __str__(self) -> str:
        if self.gpu_hours is None:
            return "not reached"
        prefix = "<= " if self.how == "at_most" else ""
        return f"{prefix}{self.gpu_hours:.2f}"


def pareto(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """The points no other point beats (as cheap or cheaper with as high or higher attainment,
    better on one), by GPU-hours ascending: attainment strictly rises along the result."""
    ordered = sorted(points, key=lambda p: (p.gpu_hours, -p.attainment))
    front: list[FrontierPoint] = []
    for point in ordered:
        if not front or point.attainment > front[-1].attainment:
            front.append(point)
    return front


def gpu_hours_at(points: Sequence[FrontierPoint], target: float, *, step: bool = False) -> Matched:
    """GPU-hours on the frontier of ``points`` at attainment ``target`` (see :class:`Matched`).

    Linear between the two frontier points that bracket ``target`` (a planner's knob moves
    continuously between them); with ``step`` the cheapest point reaching it (replica counts
    have nothing in between)."""
    front = pareto(points)
    if not front or front[-1].attainment < target:
        return Matched(None, "not_reached")
    if front[0].attainment >= target:
        first = front[0]
        return Matched(first.gpu_hours, "exact" if first.attainment == target else "at_most")
    for lo, hi in itertools.pairwise(front):
        if hi.attainment >= target:
            if step or hi.attainment == target:
                return Matched(hi.gpu_hours, "step" if step and hi.attainment > target else "exact")
            share = (target - lo.attainment) / (hi.attainment - lo.attainment)
            return Matched(lo.gpu_hours + share * (hi.gpu_hours - lo.gpu_hours), "interpolated")
    raise AssertionError("unreachable: the last frontier point reaches the target")  # pragma: no cover


# Knobs with nothing between their settings (replica counts): read at a step, not interpolated.
STEP_POLICIES = ("static-best",)


def matched_gpu_hours(
    frontiers: Mapping[str, Sequence[FrontierPoint]], targets: Sequence[float]
) -> dict[str, list[Matched]]:
    """Each policy's GPU-hours at every target attainment (:func:`gpu_hours_at`; static-best read
    at a step)."""
    return {
        policy: [gpu_hours_at(points, t, step=policy in STEP_POLICIES) for t in targets]
        for policy, points in frontiers.items()
    }


@dataclass(frozen=True)
class FrontierReport:
    """What the replay report and the benchmark show: each knob policy's points, the one-point
    policies, the oracle, the lower bound and the GPU-hours at matched attainment."""

    points: dict[str, list[FrontierPoint]]
    singles: list[FrontierPoint]  # policies without a knob (dynamo, clairvoyant, ...)
    oracle: FrontierPoint | None
    lower_bound_gpu_hours: float | None  # no policy reaches `lower_bound_attainment` below it
    lower_bound_attainment: float
    targets: list[float]

    @property
    def matched(self) -> dict[str, list[Matched]]:
        return matched_gpu_hours(self.points, self.targets)

    def table(self) -> str:
        """GPU-hours per policy at each target attainment, as printed."""
        head = ["policy", "points", *(f"GPU-h at {t:.2%}" for t in self.targets)]
        rows = [
            [policy, str(len(self.points[policy])), *(str(m) for m in matched)]
            for policy, matched in self.matched.items()
        ]
        rows += [[p.setting, "1", *("-" for _ in self.targets)] for p in self.singles]
        for p in (self.oracle,) if self.oracle else ():
            rows.append([f"oracle ({p.attainment:.2%} at {p.gpu_hours:.2f})", "1", *("-" for _ in self.targets)])
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
        matched = self.matched
        for i, target in enumerate(self.targets):
            ours = matched["default"][i] if "default" in matched else None
            if ours is None or ours.gpu_hours is None:
                continue
            ratios = []
            for policy, m in matched.items():
                theirs = m[i]
                if policy == "default" or not theirs.gpu_hours or (ours.how == theirs.how == "at_most"):
                    continue
                # an upper bound on either side bounds the ratio
                bound = ">= " if theirs.how == "at_most" else "<= " if ours.how == "at_most" else ""
                ratios.append(f"{bound}{ours.gpu_hours / theirs.gpu_hours:.2f}x {policy}'s")
            if ratios:
                lines.append(f"at {target:.2%}: default needs {', '.join(ratios)} GPU-hours")
        if self.lower_bound_gpu_hours is not None:
            lines.append(
                f"no policy meets {self.lower_bound_attainment:.0%} of all requests below "
                f"{self.lower_bound_gpu_hours:.2f} GPU-h (docs/oracle.md)"
            )
        return "\n".join(lines)

    def summary(self) -> dict[str, object]:
        return {
            "targets": self.targets,
            "gpu_hours_at_target": {policy: [m.gpu_hours for m in matched] for policy, matched in self.matched.items()},
            "how": {policy: [m.how for m in matched] for policy, matched in self.matched.items()},
            "points": {
                policy: [[p.setting, p.gpu_hours, p.attainment] for p in pareto(points)]
                for policy, points in self.points.items()
            },
            "singles": [[p.setting, p.gpu_hours, p.attainment] for p in self.singles],
            "oracle": None if self.oracle is None else [self.oracle.gpu_hours, self.oracle.attainment],
            "lower_bound_gpu_hours": self.lower_bound_gpu_hours,
        }


@dataclass(frozen=True)
class Staircase:
    """The cheapest pair found by :func:`cheapest_staircase` and what the search cost."""

    prefill: int | None  # None: not even (prefill_max, decode_max) reaches the target
    decode: int | None
    cost: float
    evaluations: int


def cheapest_staircase(
    attainment: Callable[[int, int], float],
    target: float,
    prefill_range: tuple[int, int],
    decode_range: tuple[int, int],
    *,
    cost: Callable[[int, int], float] = lambda p, d: float(p + d),
    guess: tuple[int, int] | None = None,
) -> Staircase:
    """The cheapest ``(p, d)`` within the ranges (inclusive) with ``attainment(p, d) >= target``,
    for an ``attainment`` that never drops when ``p`` or ``d`` grows and a ``cost`` that rises
    in each.

    First the fewest prefill engines with decode at its maximum and the fewest decode engines
    with prefill at its maximum (galloping from ``guess``, then bisection); then, for each
    prefill count from that fewest upward, the fewest decode engines (never more than the
    previous count needed), until even the fewest decode engines of all cannot make a pair
    cheaper than the best found. ``attainment`` is called once per distinct pair."""
    memo: dict[tuple[int, int], float] = {}

    def ok(p: int, d: int) -> bool:
        if (p, d) not in memo:
            memo[(p, d)] = attainment(p, d)
        return memo[(p, d)] >= target

    (p_lo, p_hi), (d_lo, d_hi) = prefill_range, decode_range
    if not ok(p_hi, d_hi):
        return Staircase(None, None, math.inf, len(memo))
    p_guess, d_guess = guess or (p_lo, d_lo)
    p_min = smallest_passing(lambda p: ok(p, d_hi), p_guess, p_lo, p_hi)
    d_min = smallest_passing(lambda d: ok(p_hi, d), d_guess, d_lo, d_hi)
    best: tuple[int, int] | None = None
    best_cost = math.inf
    d_top = d_hi
    for p in range(p_min, p_hi + 1):
        if cost(p, d_min) >= best_cost:
            break  # a larger p only costs more, even at the fewest decode engines

        def ok_at_p(d: int, p: int = p) -> bool:
            return ok(p, d)

        d = smallest_passing(ok_at_p, min(d_top, max(d_min, d_guess)), d_min, d_top)
        d_top = d
        if cost(p, d) < best_cost:
            best, best_cost = (p, d), cost(p, d)
        if d == d_min:
            break  # the decode count cannot fall further
    assert best is not None  # (p_min, d_hi) passes, so the first p finds a d
    return Staircase(best[0], best[1], best_cost, len(memo))


__all__ = [
    "FrontierPoint",
    "FrontierReport",
    "Matched",
    "Staircase",
    "cheapest_staircase",
    "gpu_hours_at",
    "matched_gpu_hours",
    "pareto",
]
