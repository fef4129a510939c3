"""Building predictors by name."""

from __future__ import annotations

import math
from typing import Any

from planner_core.config import LOAD_PREDICTORS, PlannerConfig
from planner_core.predictors.arima import DEFAULT_REFIT_EVERY, AutoArima
from planner_core.predictors.auto import AutoBlend, default_candidates
from planner_core.predictors.base import QUANTILE, Model, Predictor
from planner_core.predictors.prophet_model import ProphetModel
from planner_core.predictors.simple import HoltWinters, Kalman, LastValue, SeasonalNaive

PREDICTOR_NAMES: tuple[str, ...] = tuple(LOAD_PREDICTORS)
DYNAMO_PREDICTORS: tuple[str, ...] = ("constant", "arima", "kalman", "prophet")


def make_model(name: str, config: PlannerConfig, **options: Any) -> Model:
    if name == "constant":
        return LastValue()
    if name == "arima":
        return AutoArima(
            config.load_prediction_window_size,
            options.get("refit_every", DEFAULT_REFIT_EVERY),
            synchronous_refit=bool(options.get("synchronous_refit", False)),
            deferred_refit=bool(options.get("deferred_refit", False)),
        )
    if name == "kalman":
        return Kalman(config.kalman_q_level, config.kalman_q_trend, config.kalman_r, config.kalman_min_points)
    if name == "prophet":
        return ProphetModel(config.prophet_window_size, float(config.adjustment_interval_s))
    if name == "seasonal":
        return SeasonalNaive()
    if name == "holt_winters":
        return HoltWinters()
    if name == "auto":
        log = config.load_predictor_log1p
        inverse = (lambda y: math.expm1(min(y, 700.0))) if log else (lambda y: y)
        forward = (lambda v: math.log1p(max(v, 0.0))) if log else (lambda v: v)
        return AutoBlend(
            default_candidates(config.kalman_q_level, config.kalman_q_trend, config.kalman_r, config.kalman_min_points),
            inverse=inverse,
            forward=forward,
        )
    raise ValueError(f"load_predictor: unknown predictor {name!r}; choose one of {', '.join(PREDICTOR_NAMES)}")


def make_predictor(name: str, config: PlannerConfig, **options: Any) -> Predictor:
    """One series' predictor. ``options``: ``refit_every`` (arima; 1 = Dynamo's exact
        refit-every-prediction behaviour), ``synchronous_refit`` (arima; run the order search inline
    instead of in the background worker: deterministic, for tests and offline scoring),
    ``deferred_refit`` (arima; never search in this process, the ``refit`` flow does),
    ``quantile`` (default 0.9)."""
    model = make_model(name, config, **options)
    return Predictor(name, model, log1p=config.load_predictor_log1p, quantile=options.get("quantile", QUANTILE))
