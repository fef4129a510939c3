"""``auto``: picks and blends cheap candidate models by their rolling one-step out-of-sample
error on the deployment's own series.

Every candidate forecasts every interval (all are O(1) or O(small window) per sample). When
the sample arrives, each candidate's symmetric absolute percentage error
``2|y - f| / (|y| + |f|)`` (in the original units) goes into a window of the last
``error_window`` intervals. The forecast is a blend of the ``top_k`` candidates with the lowest
mean error, weighted by 1 / error^2; until ``min_history`` errors exist the blend is over all
candidates equally weighted with the most robust ones (last value, short means).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from planner_core.predictors.base import Model
from planner_core.predictors.simple import (
    Drift,
    Ewma,
    FourierRegression,
    HoltWinters,
    Kalman,
    LastValue,
    SeasonalNaive,
    WindowStat,
)


def _identity(y: float) -> float:
    return y


SCALE_FACTORS = (0.9, 1.0, 1.1, 1.25, 1.5)
MIN_FACTOR_HISTORY = 10


def _smape_term(actual: float, pred: float) -> float:
    den = abs(actual) + abs(pred)
    return 0.0 if den == 0 else 2.0 * abs(actual - pred) / den


def default_candidates(q_level: float, q_trend: float, r: float, min_points: int) -> list[Model]:
    return [
        LastValue(),
        Kalman(q_level, q_trend, r, min_points),
        Ewma(0.1),
        Ewma(0.3),
        Ewma(0.6),
        WindowStat(5, "mean"),
        WindowStat(10, "mean"),
        WindowStat(5, "median"),
        SeasonalNaive(),
        SeasonalNaive(mode="delta"),
        HoltWinters(),
        FourierRegression(),
        Drift(0.5),
    ]


class AutoBlend(Model):
    name = "auto"

    def __init__(
        self,
        candidates: list[Model],
        *,
        error_window: int = 48,
        top_k: int = 3,
        min_history: int = 3,
        inverse: Callable[[float], float] = _identity,
        forward: Callable[[float], float] = _identity,
        factors: tuple[float, ...] = SCALE_FACTORS,
        blend_window: int = 48,
    ) -> None:
        self.forward = forward
        self.factors = tuple(factors)
        self.blend_window = int(blend_window)
        self.factor_errors: list[deque[float]] = [deque(maxlen=self.blend_window) for _ in self.factors]
        self.pending_blend: float | None = None
        self.factor = 1.0
        self.candidates = candidates
        self.error_window = int(error_window)
        self.top_k = int(top_k)
        self.min_history = int(min_history)
        self.inverse = inverse
        self.errors: list[deque[float]] = [deque(maxlen=self.error_window) for _ in candidates]
        self.pending: list[float | None] = [None] * len(candidates)
        self.weights: list[float] = []

    def update(self, y: float, t: float) -> None:
        actual = self.inverse(y)
        for i, f in enumerate(self.pending):
            if f is not None:
                self.errors[i].append(_smape_term(actual, self.inverse(f)))
        if self.pending_blend is not None:
            base = self.inverse(self.pending_blend)
            for j, c in enumerate(self.factors):
                self.factor_errors[j].append(_smape_term(actual, c * base))
        self.pending_blend = None
        for c in self.candidates:
            c.update(y, t)
        self.pending = [None] * len(self.candidates)

    def scores(self) -> list[float]:
        return [float(np.mean(e)) if len(e) >= self.min_history else math.inf for e in self.errors]

    def forecast(self, t_next: float | None) -> float | None:
        fc = [c.forecast(t_next) for c in self.candidates]
        self.pending = fc
        scores = self.scores()
        avail = [i for i, f in enumerate(fc) if f is not None and math.isfinite(f)]
        if not avail:
            return None
        ranked = sorted(avail, key=lambda i: (scores[i], i))
        if not math.isfinite(scores[ranked[0]]):
            return fc[0] if fc[0] is not None else fc[ranked[0]]
        chosen = [i for i in ranked[: self.top_k] if math.isfinite(scores[i])]
        w = np.array([1.0 / max(scores[i], 1e-6) ** 2 for i in chosen])
        w = w / w.sum()
        self.weights = [0.0] * len(fc)
        for i, wi in zip(chosen, w, strict=True):
            self.weights[i] = float(wi)
        blend = float(sum(wi * fc[i] for i, wi in zip(chosen, w, strict=True)))  # type: ignore[operator]
        self.pending_blend = blend
        self.factor = self._best_factor()
        if self.factor == 1.0:
            return blend
        return self.forward(self.factor * self.inverse(blend))

    def _best_factor(self) -> float:
        if not self.factors or len(self.factor_errors[0]) < MIN_FACTOR_HISTORY:
            return 1.0
        means = [float(np.mean(e)) for e in self.factor_errors]
        best = min(range(len(self.factors)), key=lambda j: (means[j], abs(self.factors[j] - 1.0)))
        return self.factors[best]

    def describe(self) -> dict[str, Any]:
        return {
            c.name: {"score": s if math.isfinite(s) else None, "weight": w}
            for c, s, w in zip(
                self.candidates, self.scores(), self.weights or [0.0] * len(self.candidates), strict=True
            )
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "names": [c.name for c in self.candidates],
            "models": [c.get_state() for c in self.candidates],
            "errors": [list(e) for e in self.errors],
            "pending": self.pending,
            "weights": self.weights,
            "factor_errors": [list(e) for e in self.factor_errors],
            "pending_blend": self.pending_blend,
            "factor": self.factor,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state["names"] != [c.name for c in self.candidates]:
            raise ValueError(
                f"auto state has candidates {state['names']}, expected {[c.name for c in self.candidates]}"
            )
        for c, s in zip(self.candidates, state["models"], strict=True):
            c.load_state(s)
        self.errors = [deque((float(x) for x in e), maxlen=self.error_window) for e in state["errors"]]
        self.pending = list(state["pending"])
        self.weights = list(state["weights"])
        self.factor_errors = [deque((float(x) for x in e), maxlen=self.blend_window) for e in state["factor_errors"]]
        self.pending_blend = state["pending_blend"]
        self.factor = float(state["factor"])
