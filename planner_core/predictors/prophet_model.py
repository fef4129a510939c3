"""``prophet``: Prophet on the last ``prophet_window_size`` samples (Dynamo), with synthetic
timestamps one interval apart, predicting one step ahead. Fitted lazily at ``predict()`` and
cached until the next sample (0.1-0.3 s per fit). The upper quantile comes from the spread of
the in-sample residuals (no random uncertainty sampling, so it is deterministic)."""

from __future__ import annotations

import logging
import math
import warnings
from collections import deque
from typing import Any

import numpy as np

from planner_core.predictors.base import Model

MIN_POINTS = 5
_SILENCED = False


def silence_prophet() -> None:
    global _SILENCED
    if _SILENCED:
        return
    for name in ("cmdstanpy", "prophet", "prophet.plot", "prophet.forecaster", "prophet.models"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.CRITICAL)
        lg.propagate = False
        lg.disabled = True
    _SILENCED = True


class ProphetModel(Model):
    name = "prophet"
    eager = False

    def __init__(self, window_size: int = 50, step_s: float = 60.0) -> None:
        self.window = int(window_size)
        self.default_step = float(step_s)
        self.buf: deque[float] = deque(maxlen=self.window)
        self.step: float | None = None
        self.last_t: float | None = None
        self._sigma: float | None = None

    def update(self, y: float, t: float) -> None:
        if self.last_t is not None and t > self.last_t:
            self.step = t - self.last_t
        self.last_t = t
        self.buf.append(y)
        self._sigma = None

    def forecast(self, t_next: float | None) -> float | None:
        if not self.buf:
            return None
        y = np.asarray(self.buf, dtype=float)
        if len(y) < MIN_POINTS:
            return float(y[-1])
        if np.all(y == y[0]):
            self._sigma = 0.0
            return float(y[0])
        import pandas as pd

        silence_prophet()
        from prophet import Prophet

        step = self.step or self.default_step
        ds = pd.to_datetime(np.arange(len(y) + 1) * step, unit="s")
        df = pd.DataFrame({"ds": ds[:-1], "y": y})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = Prophet(uncertainty_samples=0)
            m.fit(df, algorithm="LBFGS", seed=1)
            out = m.predict(pd.DataFrame({"ds": ds}))
        yhat = out["yhat"].to_numpy()
        resid = y - yhat[:-1]
        self._sigma = float(np.std(resid))
        f = float(yhat[-1])
        return f if math.isfinite(f) else float(y[-1])

    def spread(self) -> float | None:
        return self._sigma

    def get_state(self) -> dict[str, Any]:
        return {"window": self.window, "buf": [float(v) for v in self.buf], "step": self.step, "last_t": self.last_t}

    def load_state(self, state: dict[str, Any]) -> None:
        self.window = int(state["window"])
        self.buf = deque((float(v) for v in state["buf"]), maxlen=self.window)
        self.step, self.last_t = state["step"], state["last_t"]
        self._sigma = None
