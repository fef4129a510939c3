"""Cheap online models (O(1) or O(bounded window) per sample): last value, Kalman local
linear trend, exponential smoothing, moving mean/median, seasonal naive, Holt-Winters and a
Fourier-term regression on the time of day."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from planner_core.predictors.base import Model

DAY_S = 86400.0
MAX_SEASON_SLOTS = 144  # seasonal state is at most 144 numbers (10-min slots of a day)


class LastValue(Model):
    """``constant``: the last value (Dynamo)."""

    name = "constant"

    def __init__(self) -> None:
        self.last: float | None = None

    def update(self, y: float, t: float) -> None:
        self.last = y

    def forecast(self, t_next: float | None) -> float | None:
        return self.last

    def get_state(self) -> dict[str, Any]:
        return {"last": self.last}

    def load_state(self, state: dict[str, Any]) -> None:
        self.last = state["last"]


class Kalman(Model):
    """``kalman``: local linear trend (level, trend) Kalman filter, Dynamo's parameters.
    Until ``min_points`` samples have been seen the forecast is the last value."""

    name = "kalman"

    def __init__(self, q_level: float = 1.0, q_trend: float = 0.1, r: float = 10.0, min_points: int = 5) -> None:
        self.q = np.diag([float(q_level), float(q_trend)])
        self.r = float(r)
        self.min_points = int(min_points)
        self.x: list[float] | None = None
        self.p: list[list[float]] | None = None
        self.n = 0
        self.last: float | None = None

    def update(self, y: float, t: float) -> None:
        self.n += 1
        self.last = y
        if self.x is None:
            self.x = [y, 0.0]
            self.p = [[self.r, 0.0], [0.0, self.r]]
            return
        f = np.array([[1.0, 1.0], [0.0, 1.0]])
        x = f @ np.asarray(self.x)
        p = f @ np.asarray(self.p) @ f.T + self.q
        s = p[0, 0] + self.r
        k = p[:, 0] / s
        x = x + k * (y - x[0])
        p = p - np.outer(k, p[0, :])
        self.x = [float(x[0]), float(x[1])]
        self.p = [[float(p[0, 0]), float(p[0, 1])], [float(p[1, 0]), float(p[1, 1])]]

    def forecast(self, t_next: float | None) -> float | None:
        if self.x is None:
            return None
        if self.n < self.min_points:
            return self.last
        return self.x[0] + self.x[1]

    def spread(self) -> float | None:
        if self.p is None or self.n < self.min_points:
            return None
        f = np.array([[1.0, 1.0], [0.0, 1.0]])
        p = f @ np.asarray(self.p) @ f.T + self.q
        return math.sqrt(p[0, 0] + self.r)

    def get_state(self) -> dict[str, Any]:
        return {"x": self.x, "p": self.p, "n": self.n, "last": self.last}

    def load_state(self, state: dict[str, Any]) -> None:
        self.x, self.p, self.n, self.last = state["x"], state["p"], state["n"], state["last"]


class Ewma(Model):
    """Simple exponential smoothing."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self.name = f"ewma{alpha:g}"
        self.level: float | None = None

    def update(self, y: float, t: float) -> None:
        self.level = y if self.level is None else self.level + self.alpha * (y - self.level)

    def forecast(self, t_next: float | None) -> float | None:
        return self.level

    def get_state(self) -> dict[str, Any]:
        return {"level": self.level}

    def load_state(self, state: dict[str, Any]) -> None:
        self.level = state["level"]


class WindowStat(Model):
    """Mean or median of the last ``k`` samples."""

    def __init__(self, k: int, stat: str = "mean") -> None:
        self.k = int(k)
        self.stat = stat
        self.name = f"{stat}{k}"
        self.buf: deque[float] = deque(maxlen=self.k)

    def update(self, y: float, t: float) -> None:
        self.buf.append(y)

    def forecast(self, t_next: float | None) -> float | None:
        if not self.buf:
            return None
        a = np.fromiter(self.buf, float)
        return float(np.median(a) if self.stat == "median" else a.mean())

    def get_state(self) -> dict[str, Any]:
        return {"buf": list(self.buf)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.buf = deque((float(v) for v in state["buf"]), maxlen=self.k)


class _Slots:
    """Maps timestamps to slots of the day (at most MAX_SEASON_SLOTS)."""

    def __init__(self, period_s: float = DAY_S) -> None:
        self.period = float(period_s)

    def width(self, step: float | None) -> float:
        base = self.period / MAX_SEASON_SLOTS
        if step is None or step <= base:
            return base
        return step

    def count(self, step: float | None) -> int:
        return max(1, round(self.period / self.width(step)))

    def index(self, t: float, step: float | None) -> int:
        return int((t % self.period) // self.width(step)) % self.count(step)


class SeasonalNaive(Model):
    """``seasonal``: the value one day earlier, shifted by how much the recent level has moved
    since then. Keeps one (timestamp, value, level) row per slot of the day (at most 144) and
    a short level window; falls back to exponential smoothing for the first day."""

    name = "seasonal"

    # each table row: [slot start, mean value, level] for the latest day, then the same for the
    # day before (so that the slot just overwritten today is still known one day back)

    def __init__(self, period_s: float = DAY_S, level_alpha: float = 0.3, mode: str = "level") -> None:
        self.slots = _Slots(period_s)
        self.level_alpha = level_alpha
        self.mode = mode
        if mode == "delta":
            self.name = "seasonal_delta"
        self.last: float | None = None
        self.step: float | None = None
        self.last_t: float | None = None
        self.level: float | None = None
        # per slot: [slot_start_t, mean value in slot, level at that time]
        self.table: dict[str, list[float]] = {}
        self.cur_slot_t: float | None = None
        self.cur_sum = 0.0
        self.cur_n = 0

    def _slot_start(self, t: float) -> float:
        w = self.slots.width(self.step)
        return math.floor(t / w) * w

    def update(self, y: float, t: float) -> None:
        if self.last_t is not None and t > self.last_t:
            step = t - self.last_t
            if self.step is None or abs(step - self.step) > 1e-6 * step:
                if self.step is not None and self.slots.width(step) != self.slots.width(self.step):
                    self.table = {}
                self.step = step
        self.last_t = t
        self.last = y
        self.level = y if self.level is None else self.level + self.level_alpha * (y - self.level)
        s0 = self._slot_start(t - 1e-9)  # the slot of the interval that ended at t
        if self.cur_slot_t is not None and s0 != self.cur_slot_t:
            self.cur_sum, self.cur_n = 0.0, 0
        self.cur_slot_t = s0
        self.cur_sum += y
        self.cur_n += 1
        key = str(self.slots.index(s0, self.step))
        row = self.table.get(key)
        prev = row[:3] if row is not None and row[0] != s0 else (row[3:] if row is not None else [])
        self.table[key] = [s0, self.cur_sum / self.cur_n, self.level, *prev]

    def forecast(self, t_next: float | None) -> float | None:
        if self.level is None:
            return None
        if t_next is None or self.step is None:
            return self.level
        s_next = self._slot_start(t_next - 1e-9)
        row = self._day_ago(s_next)
        if self.mode == "delta":
            w = self.slots.width(self.step)
            prev = self._day_ago(s_next - w)
            if row is None or prev is None or self.last is None:
                return self.last
            return self.last + (row[1] - prev[1]) * self.step / w
        if row is None:
            return self.level
        return row[1] + (self.level - row[2])

    def _day_ago(self, slot_start: float) -> list[float] | None:
        row = self.table.get(str(self.slots.index(slot_start, self.step)))
        tol = 0.5 * self.slots.width(self.step)
        for part in (row[:3], row[3:]) if row is not None else ():
            if part and abs((slot_start - part[0]) - self.slots.period) <= tol:
                return part
        return None

    def get_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "last_t": self.last_t,
            "level": self.level,
            "last": self.last,
            "table": self.table,
            "cur": [self.cur_slot_t, self.cur_sum, self.cur_n],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.step, self.last_t, self.level = state["step"], state["last_t"], state["level"]
        self.last = state["last"]
        self.table = {k: [float(x) for x in v] for k, v in state["table"].items()}
        self.cur_slot_t, self.cur_sum, self.cur_n = state["cur"]


class HoltWinters(Model):
    """``holt_winters``: additive Holt-Winters (damped trend) with a daily season indexed by the
    time of day (at most 144 seasonal slots, so each slot is updated several times a day at
    short intervals). Error-correction form, one O(1) update per sample."""

    name = "holt_winters"

    def __init__(
        self, alpha: float = 0.4, beta: float = 0.02, gamma: float = 0.15, phi: float = 0.9, period_s: float = DAY_S
    ) -> None:
        self.alpha, self.beta, self.gamma, self.phi = alpha, beta, gamma, phi
        self.slots = _Slots(period_s)
        self.step: float | None = None
        self.last_t: float | None = None
        self.first_t: float | None = None
        self.level: float | None = None
        self.trend = 0.0
        self.season: dict[str, float] = {}

    def _s(self, t: float | None) -> float:
        if t is None or self.first_t is None or t - self.first_t < self.slots.period:
            return 0.0  # no full day seen yet: no seasonal term
        return self.season.get(str(self.slots.index(t - 1e-9, self.step)), 0.0)

    def update(self, y: float, t: float) -> None:
        if self.last_t is not None and t > self.last_t:
            self.step = t - self.last_t
        if self.first_t is None:
            self.first_t = t
        self.last_t = t
        if self.level is None:
            self.level = y
            return
        key = str(self.slots.index(t - 1e-9, self.step))
        s = self.season.get(key, 0.0)
        err = y - (self.level + self.phi * self.trend + s)
        self.level = self.level + self.phi * self.trend + self.alpha * err
        self.trend = self.phi * self.trend + self.alpha * self.beta * err
        self.season[key] = s + self.gamma * (1 - self.alpha) * err

    def forecast(self, t_next: float | None) -> float | None:
        if self.level is None:
            return None
        return self.level + self.phi * self.trend + self._s(t_next)

    def get_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "last_t": self.last_t,
            "first_t": self.first_t,
            "level": self.level,
            "trend": self.trend,
            "season": self.season,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.step, self.last_t, self.first_t = state["step"], state["last_t"], state["first_t"]
        self.level, self.trend = state["level"], state["trend"]
        self.season = {k: float(v) for k, v in state["season"].items()}


class FourierRegression(Model):
    """Daily (and weekly) Fourier terms plus a level, fitted by exponentially weighted
    recursive least squares (O(p^2) per sample, p = 1 + 2 * harmonics), with the last residual
    carried forward (AR(1) on the residual)."""

    name = "fourier"

    def __init__(self, daily: int = 3, weekly: int = 1, forget: float = 0.995, rho: float = 0.7) -> None:
        self.daily, self.weekly, self.forget, self.rho = daily, weekly, forget, rho
        self.p = 1 + 2 * daily + 2 * weekly
        self.theta: list[float] | None = None
        self.cov: list[list[float]] | None = None
        self.resid = 0.0
        self.n = 0
        self.first_t: float | None = None

    def _x(self, t: float) -> np.ndarray:
        feats = [1.0]
        for k in range(1, self.daily + 1):
            a = 2 * math.pi * k * (t % DAY_S) / DAY_S
            feats += [math.sin(a), math.cos(a)]
        for k in range(1, self.weekly + 1):
            a = 2 * math.pi * k * (t % (7 * DAY_S)) / (7 * DAY_S)
            feats += [math.sin(a), math.cos(a)]
        return np.asarray(feats)

    def update(self, y: float, t: float) -> None:
        if self.first_t is None:
            self.first_t = t
        x = self._x(t)
        if self.theta is None:
            self.theta = [y] + [0.0] * (self.p - 1)
            self.cov = (np.eye(self.p) * 1e2).tolist()
        th = np.asarray(self.theta)
        c = np.asarray(self.cov)
        cx = c @ x
        k = cx / (self.forget + x @ cx)
        err = y - x @ th
        th = th + k * err
        c = (c - np.outer(k, cx)) / self.forget
        self.theta, self.cov = th.tolist(), c.tolist()
        self.resid = float(y - x @ th)
        self.n += 1

    def forecast(self, t_next: float | None) -> float | None:
        if self.theta is None or t_next is None:
            return None
        return float(self._x(t_next) @ np.asarray(self.theta)) + self.rho * self.resid

    def get_state(self) -> dict[str, Any]:
        return {"theta": self.theta, "cov": self.cov, "resid": self.resid, "n": self.n, "first_t": self.first_t}

    def load_state(self, state: dict[str, Any]) -> None:
        self.theta, self.cov, self.resid = state["theta"], state["cov"], state["resid"]
        self.n, self.first_t = state["n"], state["first_t"]


class Drift(Model):
    """Last value plus ``phi`` times the mean change over the last ``k`` samples."""

    def __init__(self, phi: float = 0.5, k: int = 3) -> None:
        self.phi, self.k = float(phi), int(k)
        self.name = f"drift{phi:g}"
        self.buf: deque[float] = deque(maxlen=self.k + 1)

    def update(self, y: float, t: float) -> None:
        self.buf.append(y)

    def forecast(self, t_next: float | None) -> float | None:
        if not self.buf:
            return None
        if len(self.buf) < 2:
            return self.buf[-1]
        return self.buf[-1] + self.phi * (self.buf[-1] - self.buf[0]) / (len(self.buf) - 1)

    def get_state(self) -> dict[str, Any]:
        return {"buf": list(self.buf)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.buf = deque((float(v) for v in state["buf"]), maxlen=self.k + 1)


class LinearTrend(Model):
    """Least-squares line through the last ``k`` samples (by sample index), extrapolated one
    step: a local linear trend, what Prophet fits on a window too short for its seasonalities,
    at O(k) per forecast. Samples are assumed evenly spaced (the planner's interval)."""

    def __init__(self, k: int = 30) -> None:
        self.k = int(k)
        self.name = f"trend{k}"
        self.buf: deque[float] = deque(maxlen=self.k)

    def update(self, y: float, t: float) -> None:
        self.buf.append(y)

    def forecast(self, t_next: float | None) -> float | None:
        n = len(self.buf)
        if n == 0:
            return None
        if n < 3:
            return self.buf[-1]
        y = np.fromiter(self.buf, float)
        x = np.arange(n, dtype=float) - (n - 1) / 2.0  # centred: slope and mean are independent
        slope = float(x @ (y - y.mean()) / (x @ x))
        return float(y.mean() + slope * (n + 1) / 2.0)

    def get_state(self) -> dict[str, Any]:
        return {"buf": list(self.buf)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.buf = deque((float(v) for v in state["buf"]), maxlen=self.k)
