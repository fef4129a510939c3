"""``arima``: Dynamo's auto-ARIMA, with bounded cost.

Dynamo runs ``pmdarima.auto_arima`` (default settings) on the last ``window_size`` samples at
every prediction; that costs 0.4-4 s per series here. This model runs the same order search
only at *refit points* (the 5th, 10th and 20th sample, then every ``refit_every``-th sample,
default 25) on the ``window_size`` samples ending there. Between refits the fitted order and
parameters are kept and the state-space filter is re-run over the latest ``window_size``
samples (statsmodels ``SARIMAX.filter`` with fixed parameters, about 5 ms), which gives the
forecast. With ``refit_every=1`` the forecast is exactly Dynamo's.

The schedule depends only on the sample count, so the model at any point is a function of
the last ``window_size + refit_every`` samples: the state is bounded and serialisable (the
buffer, the order and the parameters), and a warm start from history refits only over that
tail.

Refits off the hot path: by default (``synchronous_refit=False``) the order search at a refit
point runs in a background worker process (one shared ``ProcessPoolExecutor`` with one
worker, so it neither blocks the planning cycle nor competes for the GIL). Until it finishes
the previous order and parameters keep forecasting (the last value before the first fit);
the finished fit is swapped in at the next ``observe()`` after it is done.
At most one search per series is in flight; a refit point passed while one runs is searched
when it finishes (on the newest window). ``synchronous_refit=True`` runs the search inline
(deterministic: tests and offline scoring use it), and a warm start from history
(``observe_history``) always refits inline, so the restored model is reproducible.

``deferred_refit=True`` is for planners that live one cycle per process (each Prefect flow run
is one): a background search would die with the process and be started again, and lost again,
by every later run. The model then never searches itself; the due refit point stays visible in
its saved state (:meth:`due_refit`), the ``refit`` flow searches it from the stored state and
merges the fit into the newest state (:mod:`planner_core.refit`), and the next cycle uses it.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import threading
import warnings
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np

from planner_core.predictors.base import RESIDUAL_WINDOW, Model

MIN_POINTS = 5
EARLY_REFITS = (5, 10, 20)
DEFAULT_REFIT_EVERY = 25


_POOL: Any = None
_POOL_LOCK = threading.Lock()


def _pool() -> Any:
    """The shared background worker (a process; a thread if processes are unavailable)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            try:
                import multiprocessing as mp

                _POOL = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
            except (OSError, ValueError, ImportError):  # pragma: no cover - restricted sandboxes
                _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="arima-refit")
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        return _POOL


def _search(data: np.ndarray) -> tuple[dict[str, Any], list[float]] | None:
    """The refit job: None for a constant window or a failed search."""
    if np.all(data == data[0]):
        return None
    try:
        return fit_auto_arima(data)
    except Exception:
        return None


def fit_auto_arima(y: np.ndarray) -> tuple[dict[str, Any], list[float]] | None:
    """pmdarima auto_arima with default settings; (SARIMAX init kwargs, params) or None."""
    import pmdarima as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = pm.auto_arima(y, suppress_warnings=True, error_action="ignore")
    res = model.arima_res_
    kwds = {k: v for k, v in res.model._get_init_kwds().items() if k not in ("endog", "exog")}
    return _jsonable_kwds(kwds), [float(p) for p in np.asarray(res.params)]


def _jsonable_kwds(kwds: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in kwds.items():
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _sarimax_kwds(kwds: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwds)
    for k in ("order", "seasonal_order"):
        if k in out and isinstance(out[k], list):
            out[k] = tuple(out[k])
    return out


def filter_forecast(y: np.ndarray, kwds: dict[str, Any], params: list[float]) -> float:
    """One-step forecast of a SARIMAX with fixed parameters, filtered over ``y``."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = SARIMAX(np.asarray(y, dtype=float), **_sarimax_kwds(kwds)).filter(np.asarray(params))
        return float(np.asarray(res.forecast(1))[0])


class AutoArima(Model):
    name = "arima"

    def __init__(
        self,
        window_size: int = 50,
        refit_every: int = DEFAULT_REFIT_EVERY,
        *,
        synchronous_refit: bool = False,
        deferred_refit: bool = False,
    ) -> None:
        self.synchronous_refit = bool(synchronous_refit)
        self.deferred_refit = bool(deferred_refit)
        self.replaying = False  # set by Predictor.observe_history: refit inline
        self._job: Future | None = None  # background search in flight (not in the state)
        self._job_at: int | None = None  # the refit point it is for
        self.window = int(window_size)
        self.refit_every = max(1, int(refit_every))
        self.buf: deque[float] = deque(maxlen=self.window + self.refit_every)
        self.n = 0
        self.fit_at: int | None = None  # sample count of the cached fit
        self.kwds: dict[str, Any] | None = None
        self.params: list[float] | None = None
        self.replay_tail = RESIDUAL_WINDOW + 1
        self.fits = 0  # how many auto_arima searches this process ran (not in the state)

    def refit_point(self, n: int) -> int | None:
        """The latest sample count <= n at which the schedule refits."""
        if n < MIN_POINTS:
            return None
        if self.refit_every == 1:
            return n
        last = n - n % self.refit_every if n >= self.refit_every else None
        early = max((e for e in EARLY_REFITS if e <= n), default=None)
        cands = [c for c in (last, early) if c is not None]
        return max(cands) if cands else None

    def update(self, y: float, t: float) -> None:
        self.buf.append(y)
        self.n += 1

    def _window_at(self, r: int) -> np.ndarray:
        lag = self.n - r
        data = np.asarray(self.buf, dtype=float)
        data = data[: len(data) - lag] if lag else data
        return data[-self.window :]

    def _apply(self, r: int, fitted: tuple[dict[str, Any], list[float]] | None) -> None:
        self.fit_at = r
        self.kwds, self.params = fitted if fitted is not None else (None, None)

    def _collect(self) -> None:
        """Swap in a finished background search (non-blocking)."""
        job = self._job
        if job is None or not job.done():
            return
        r = self._job_at
        self._job, self._job_at = None, None
        try:
            fitted = job.result()
        except Exception:  # a broken worker: keep the old fit, search again later
            return
        if r is not None and (self.fit_at is None or r > self.fit_at):
            self._apply(r, fitted)
        self.fits += 1

    def _ensure_fit(self) -> None:
        self._collect()
        r = self.refit_point(self.n)
        if r is None or r == self.fit_at:
            return
        if self.deferred_refit and not self.replaying:
            return  # the refit flow searches it (see the module docstring)
        if self.synchronous_refit or self.replaying:
            self._wait_job()
            if r != self.fit_at:
                self._apply(r, _search(self._window_at(r)))
                self.fits += 1
            return
        if self._job is not None:
            return  # one search at a time; the newest refit point is searched after it
        data = self._window_at(r)
        if np.all(data == data[0]):
            self._apply(r, None)
            return
        try:
            self._job = _pool().submit(_search, data)
        except Exception:  # no worker available: search inline
            self._apply(r, _search(data))
            self.fits += 1
            return
        self._job_at = r

    def due_refit(self) -> int | None:
        """The refit point whose search is due (the model still forecasts with an older fit)."""
        r = self.refit_point(self.n)
        return None if r is None or r == self.fit_at else r

    def search(self, r: int) -> tuple[dict[str, Any], list[float]] | None:
        """Run the order search of refit point ``r`` (inline; seconds)."""
        self.fits += 1
        return _search(self._window_at(r))

    def adopt(self, r: int, fitted: tuple[dict[str, Any], list[float]] | None) -> bool:
        """Take a fit searched elsewhere for refit point ``r`` unless this model has a newer one
        (or has not seen ``r`` samples). Returns whether it was taken."""
        if r > self.n or (self.fit_at is not None and self.fit_at >= r):
            return False
        self._apply(r, fitted)
        return True

    def _wait_job(self) -> None:
        """Drop an in-flight background search (its result is superseded by an inline refit)."""
        if self._job is not None:
            self._job.cancel()
            self._job, self._job_at = None, None

    def wait_for_refit(self, timeout: float | None = None) -> None:
        """Block until the in-flight background search (if any) is swapped in (tests, tools)."""
        if self._job is not None:
            with contextlib.suppress(Exception):
                self._job.result(timeout=timeout)
            self._collect()

    def forecast(self, t_next: float | None) -> float | None:
        if self.n == 0:
            return None
        last = self.buf[-1]
        if self.n < MIN_POINTS:
            return last
        window = np.asarray(self.buf, dtype=float)[-self.window :]
        if np.all(window == window[0]):
            return float(window[0])
        self._ensure_fit()
        if self.kwds is None or self.params is None:
            return last
        try:
            f = filter_forecast(window, self.kwds, self.params)
        except Exception:
            return last
        return f if math.isfinite(f) else last

    def get_state(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "refit_every": self.refit_every,
            "buf": [float(v) for v in self.buf],
            "n": self.n,
            "fit_at": self.fit_at,
            "kwds": self.kwds,
            "params": self.params,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.window = int(state["window"])
        self.refit_every = int(state["refit_every"])
        self.buf = deque((float(v) for v in state["buf"]), maxlen=self.window + self.refit_every)
        self.n = int(state["n"])
        self.fit_at = state["fit_at"]
        self.kwds = state["kwds"]
        self.params = state["params"]
        self._job, self._job_at = None, None  # a search in flight is redone if still due
