"""``auto``: an online ensemble of cheap candidate models, weighted by their recent one-step
out-of-sample error on the deployment's own series (exponentially weighted "Hedge").

Every candidate forecasts every interval (all are O(1) or O(small window) per sample, last
value included). When the sample arrives, each candidate's symmetric absolute percentage
error ``2|y - f| / (|y| + |f|)`` (in the original units) is added to its exponentially
discounted loss ``L_i <- decay * L_i + e_i``. The forecast is the blend of all candidates with
weights ``exp(-eta * (L_i - min L))`` (Hedge / exponentially weighted forecaster); a large
``eta`` makes it follow the leader, a small one averages. The last value starts with a head
start of ``prior`` in loss (so a fresh ``auto`` behaves like ``constant`` until the others
have shown they do better). Exponential weights track the best
candidate, so the blend cannot do much worse than the best candidate over the recent past.

Zero samples are treated as possible *data gaps* (a scrape that saw nothing, a ServeGen
window without data), not as load the candidates should learn from:

* zeros are not fed to the candidates, and do not score them;
* the forecast right after a zero is either 0 ("the gap continues") or the candidates' blend
  ("the load is back"), whichever has had the lower error after past zeros;
* the first non-zero sample after a run of zeros is often a partial interval. It is *held*:
  the forecast right after it is either that sample or the pre-gap blend, whichever has had the
  lower error after past gap exits; when the next sample arrives, the held one is fed to the
  candidates only if it predicted that next sample better than the pre-gap blend did.

All of it is a bounded, JSON-serialisable state (candidate states and a few numbers), and a
pure function of the samples seen, so a warm start from history equals the uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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

DEFAULT_DECAY = 0.95  # loss half-life about 14 intervals
DEFAULT_ETA = 3.0
DEFAULT_PRIOR = 1.0  # head start of the last value: weight exp(-3) for the others at first


def _identity(y: float) -> float:
    return y


def _smape_term(actual: float, pred: float) -> float:
    pred = max(pred, 0.0)
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
        WindowStat(20, "mean"),
        Ewma(0.8),
        Drift(0.25),
    ]


class AutoBlend(Model):
    name = "auto"

    def __init__(
        self,
        candidates: list[Model],
        *,
        decay: float = DEFAULT_DECAY,
        eta: float = DEFAULT_ETA,
        inverse: Callable[[float], float] = _identity,
        forward: Callable[[float], float] = _identity,
        geometric: bool = False,
        zeros_are_load: bool = False,
        prior: float = DEFAULT_PRIOR,
    ) -> None:
        self.geometric = geometric
        self.zeros_are_load = zeros_are_load
        self.candidates = candidates
        self.decay = float(decay)
        self.eta = float(eta)
        self.inverse = inverse
        self.forward = forward
        # discounted sMAPE per candidate; the first candidate (last value) starts ahead by `prior`
        self.loss: list[float] = [0.0] + [float(prior)] * (len(candidates) - 1)
        self.weights: list[float] = []
        self.pending: list[float | None] = [None] * len(candidates)  # candidate forecasts (fit space)
        self.pending_blend: float | None = None
        self.zero_run = 0  # consecutive zero samples so far
        self.held: list[float] | None = None  # [value, t] of the first sample after zeros
        # discounted sMAPE of the two options after a zero: [predict 0, predict the blend]
        self.after_zero = [0.0, 0.0]
        # ... and after a gap exit: [the held sample, the pre-gap blend]
        self.after_exit = [0.0, 0.0]

    # -- learning ----------------------------------------------------------------------------
    def update(self, y: float, t: float) -> None:
        actual = self.inverse(y)
        blend = self.inverse(self.pending_blend) if self.pending_blend is not None else None
        if self.zero_run > 0 and blend is not None:
            d = self.decay
            self.after_zero = [
                d * self.after_zero[0] + _smape_term(actual, 0.0),
                d * self.after_zero[1] + _smape_term(actual, blend),
            ]
        held = self.held
        if held is not None and blend is not None:
            d = self.decay
            self.after_exit = [
                d * self.after_exit[0] + _smape_term(actual, self.inverse(held[0])),
                d * self.after_exit[1] + _smape_term(actual, blend),
            ]
        self.pending_blend = None
        if y <= 0.0 and not self.zeros_are_load:
            self.zero_run += 1
            self.held = None  # a lone sample between zeros: dropped
            return
        if y <= 0.0:
            self.zero_run += 1
        elif self.zero_run > 0:
            self.zero_run = 0
            if not self.zeros_are_load:
                self.held = [y, t]
                return
        if held is not None:
            self.held = None
            trusted = blend is None or _smape_term(actual, self.inverse(held[0])) <= _smape_term(actual, blend)
            if trusted:
                for c in self.candidates:
                    c.update(held[0], held[1])
        else:
            d = self.decay
            for i, f in enumerate(self.pending):
                e = 2.0 if f is None or not math.isfinite(f) else _smape_term(actual, self.inverse(f))
                self.loss[i] = d * self.loss[i] + e
        for c in self.candidates:
            c.update(y, t)
        self.pending = [None] * len(self.candidates)

    # -- forecasting -------------------------------------------------------------------------
    def _blend(self, fc: list[float | None]) -> float | None:
        avail = [i for i, f in enumerate(fc) if f is not None and math.isfinite(f)]
        self.weights = [0.0] * len(fc)
        if not avail:
            return None
        best = min(self.loss[i] for i in avail)
        w = {i: math.exp(-self.eta * (self.loss[i] - best)) for i in avail}
        tot = sum(w.values())
        out = 0.0
        for i, wi in w.items():
            self.weights[i] = wi / tot
            if self.geometric:
                out += wi / tot * math.log1p(max(self.inverse(fc[i]), 0.0))  # type: ignore[arg-type]
            else:
                out += wi / tot * fc[i]  # type: ignore[operator]
        return self.forward(math.expm1(out)) if self.geometric else out

    def forecast(self, t_next: float | None) -> float | None:
        fc = [c.forecast(t_next) for c in self.candidates]
        self.pending = fc
        blend = self._blend(fc)
        self.pending_blend = blend
        if blend is None:
            return None
        if self.zero_run > 0 and self.after_zero[0] < self.after_zero[1]:
            return 0.0
        if self.held is not None and self.after_exit[0] < self.after_exit[1]:
            return self.held[0]
        return blend

    def describe(self) -> dict[str, Any]:
        return {
            c.name: {"loss": lo, "weight": w}
            for c, lo, w in zip(self.candidates, self.loss, self.weights or [0.0] * len(self.candidates), strict=True)
        }

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "names": [c.name for c in self.candidates],
            "models": [c.get_state() for c in self.candidates],
            "loss": list(self.loss),
            "weights": list(self.weights),
            "pending": self.pending,
            "pending_blend": self.pending_blend,
            "zero_run": self.zero_run,
            "held": self.held,
            "after_zero": self.after_zero,
            "after_exit": self.after_exit,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state["names"] != [c.name for c in self.candidates]:
            raise ValueError(
                f"auto state has candidates {state['names']}, expected {[c.name for c in self.candidates]}"
            )
        for c, s in zip(self.candidates, state["models"], strict=True):
            c.load_state(s)
        self.loss = [float(x) for x in state["loss"]]
        self.weights = [float(x) for x in state["weights"]]
        self.pending = list(state["pending"])
        self.pending_blend = state["pending_blend"]
        self.zero_run = int(state["zero_run"])
        self.held = None if state["held"] is None else [float(x) for x in state["held"]]
        self.after_zero = [float(x) for x in state["after_zero"]]
        self.after_exit = [float(x) for x in state["after_exit"]]
