"""The shared predictor wrapper: missing samples, leading zeros, log1p space, upper quantiles,
state serialisation. The forecasting itself is done by a *core model* (see :class:`Model`),
which sees only accepted samples, already in fit space."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

from planner_core.records import SeriesForecast, is_missing

QUANTILE = 0.9
RESIDUAL_WINDOW = 100  # one-step residuals kept for the upper quantile
RECENT_WINDOW = 32  # recent values kept for the fallback spread
MIN_RESIDUALS = 10
# cold-start prior for the upper quantile's spread: worth two one-step changes of 10 % (the
# one-step change of the shared traces' request counts is 5-20 %); data outweighs it within
# a few intervals
PRIOR_RELATIVE_CHANGE = 0.1
PRIOR_CHANGES = 2
STATE_VERSION = 1


def upper_offset(
    resid: list[float],
    recent: list[float],
    model_spread: float | None,
    quantile: float,
    to_fit: Callable[[float], float],
    last: float | None,
) -> float:
    """How far above the forecast (fit space) the upper quantile lies.

    With ``MIN_RESIDUALS`` or more one-step residuals: their empirical quantile (an online
    split-conformal bound: only residuals of past forecasts, the last ``RESIDUAL_WINDOW``).
    The finite-sample rank ``ceil((n + 1) q)`` covered 0.5-3 points more on the shared traces
    but cost 0.11-0.15 GPU-h (2-3 %) on the default replay at the same attainment, so the
    interpolated quantile stays. Before that (cold start, and
    ``prophet``, which is fitted lazily and has no one-step residuals): a normal quantile of
    the spread of one-step changes of the recent values, pooled with a prior of
    ``PRIOR_CHANGES`` changes of ``PRIOR_RELATIVE_CHANGE`` of the last value, or the model's own
    spread if larger. Without the prior, one or two similar first samples give a near-zero
    spread, and the first intervals after a deployment are sized for no noise at all."""
    if len(resid) >= MIN_RESIDUALS:
        return max(float(np.quantile(np.asarray(resid), quantile)), 0.0)
    z = float(NormalDist().inv_cdf(quantile))
    prior_sq = 0.0
    if last is not None:
        prior_sq = (to_fit(last * (1.0 + PRIOR_RELATIVE_CHANGE)) - to_fit(last)) ** 2
    diffs = np.diff(np.asarray(recent, dtype=float)) if len(recent) >= 2 else np.zeros(0)
    pooled = math.sqrt((PRIOR_CHANGES * prior_sq + float(np.sum(diffs**2))) / max(PRIOR_CHANGES + diffs.size, 1))
    return max(z * max(pooled, model_spread or 0.0), 0.0)


def _f(x: Any) -> float | None:
    """JSON-safe float (NaN/inf -> None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class Model:
    """A forecasting model on accepted samples in fit space.

    ``update(y, t)`` takes one sample; ``forecast(t_next)`` returns the one-step forecast (or
    None when the model has too little data). ``eager`` models are cheap enough to forecast
    after every sample, which gives the wrapper one-step residuals for the upper quantile.
    ``replay_tail`` (for expensive models whose forecast depends only on a bounded buffer):
    during a warm start from history, only that many last samples need a forecast."""

    name = "model"
    eager = True
    replay_tail: int | None = None

    def update(self, y: float, t: float) -> None:
        raise NotImplementedError

    def forecast(self, t_next: float | None) -> float | None:
        raise NotImplementedError

    def spread(self) -> float | None:
        """Model's own one-step standard deviation in fit space, when it has one."""
        return None

    def get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class Predictor:
    """One series. ``observe(value, timestamp_s)`` then ``predict()``; see the package docs."""

    def __init__(self, name: str, model: Model, *, log1p: bool = False, quantile: float = QUANTILE) -> None:
        self.name = name
        self.model = model
        self.log1p = bool(log1p)
        self.quantile = float(quantile)
        self._started = False
        self._n = 0
        self._last_t: float | None = None  # latest timestamp seen, missing samples included
        self._last_obs_t: float | None = None  # latest accepted sample
        self._step: float | None = None
        self._last: float | None = None  # last accepted value (raw)
        self._next: float | None = None  # cached forecast (fit space)
        self._next_t: float | None = None  # the timestamp it is for
        self._resid: deque[float] = deque(maxlen=RESIDUAL_WINDOW)
        self._recent: deque[float] = deque(maxlen=RECENT_WINDOW)

    # -- transforms --------------------------------------------------------------------------
    def _to_fit(self, v: float) -> float:
        return math.log1p(max(v, 0.0)) if self.log1p else v

    def _from_fit(self, y: float) -> float:
        if self.log1p:
            return math.expm1(min(y, 700.0))
        return y

    # -- public API --------------------------------------------------------------------------
    @property
    def has_data(self) -> bool:
        """At least one accepted (non-missing, after the leading zeros) sample."""
        return self._started

    @property
    def num_observations(self) -> int:
        return self._n

    def observe(self, value: float | None, timestamp_s: float) -> None:
        self._observe(value, timestamp_s, forecast=True)

    def _observe(self, value: float | None, timestamp_s: float, *, forecast: bool) -> None:
        t = float(timestamp_s)
        if self._last_t is not None and t > self._last_t:
            self._step = t - self._last_t
        if self._last_t is None or t > self._last_t:
            self._last_t = t
        if is_missing(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            if forecast and self.model.eager and self._started:
                # the target moved on by one interval: forecast it now, as predict() would, so
                # that a live run and a replay of the same rows give the model the same calls
                self._compute_next()
            return
        v = float(value)  # type: ignore[arg-type]
        v = max(v, 0.0)
        if not self._started:
            if v == 0.0:
                return  # idle period after deployment
            self._started = True
        y = self._to_fit(v)
        if forecast and self.model.eager and self._next is not None:
            self._resid.append(y - self._next)
        self.model.update(y, t)
        self._n += 1
        self._last = v
        self._last_obs_t = t
        self._recent.append(y)
        self._next = None
        self._next_t = None
        if forecast and self.model.eager:
            self._compute_next()

    def _target_t(self) -> float | None:
        if self._last_t is None or self._step is None:
            return None
        return self._last_t + self._step

    def _compute_next(self) -> float:
        t_next = self._target_t()
        try:
            f = self.model.forecast(t_next)
        except Exception:  # a model failure falls back to the last value (Dynamo)
            f = None
        if f is None or not math.isfinite(f):
            f = self._to_fit(self._last or 0.0)
        self._next = float(f)
        self._next_t = t_next
        return self._next

    def predict(self) -> SeriesForecast:
        if not self._started:
            return SeriesForecast(self.name, 0.0, 0.0, self.quantile)
        f = self._next
        if f is None or self._next_t != self._target_t():
            f = self._compute_next()
        fu = f + self._upper_offset()
        value = max(self._from_fit(f), 0.0)
        upper = max(self._from_fit(fu), value)
        return SeriesForecast(self.name, float(value), float(upper), self.quantile)

    def _upper_offset(self) -> float:
        return upper_offset(
            list(self._resid), list(self._recent), self.model.spread(), self.quantile, self._to_fit, self._last
        )

    def observe_history(self, rows: list[tuple[float, float | None]]) -> None:
        """Feed (timestamp_s, value) rows, oldest first, as :meth:`observe` would. Expensive
        models only forecast over the tail that their state depends on."""
        tail = self.model.replay_tail
        if tail is None or self.model.eager is False:
            cut = 0 if self.model.eager else len(rows)
        else:
            # the tail must contain the last `tail` accepted samples
            cut = len(rows)
            seen = 0
            while cut > 0 and seen < tail:
                cut -= 1
                if not is_missing(rows[cut][1]):
                    seen += 1
        replaying = getattr(self.model, "replaying", None)
        if replaying is not None:
            self.model.replaying = True  # type: ignore[attr-defined]  # e.g. arima refits inline
        try:
            for i, (t, v) in enumerate(rows):
                self._observe(v, t, forecast=i >= cut and self.model.eager)
        finally:
            if replaying is not None:
                self.model.replaying = replaying  # type: ignore[attr-defined]
        if self.model.eager and cut > 0:
            # the first tail sample had no forecast before it; make sure one exists now
            pass

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "predictor": self.name,
            "log1p": self.log1p,
            "started": self._started,
            "n": self._n,
            "last_t": _f(self._last_t),
            "last_obs_t": _f(self._last_obs_t),
            "step": _f(self._step),
            "last": _f(self._last),
            "next": _f(self._next),
            "next_t": _f(self._next_t),
            "resid": [float(r) for r in self._resid],
            "recent": [float(r) for r in self._recent],
            "model": self.model.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("predictor") != self.name:
            raise ValueError(f"state is for predictor {state.get('predictor')!r}, not {self.name!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported predictor state version {state.get('version')!r}")
        self.log1p = bool(state["log1p"])
        self._started = bool(state["started"])
        self._n = int(state["n"])
        self._last_t = state["last_t"]
        self._last_obs_t = state["last_obs_t"]
        self._step = state["step"]
        self._last = state["last"]
        self._next = state["next"]
        self._next_t = state["next_t"]
        self._resid = deque((float(r) for r in state["resid"]), maxlen=RESIDUAL_WINDOW)
        self._recent = deque((float(r) for r in state["recent"]), maxlen=RECENT_WINDOW)
        self.model.load_state(state["model"])
