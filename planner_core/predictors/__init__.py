"""Load predictors: one series each (``make_predictor``) or the planner's three series
(``LoadPredictor``: request count, mean ISL, mean OSL).

Dynamo's four (``constant``, ``arima``, ``kalman``, ``prophet``) plus ``seasonal`` (seasonal
naive on the time of day), ``holt_winters`` (additive, daily season) and ``auto`` (blend of
cheap models chosen by rolling out-of-sample error). Every predictor:

* ignores leading zeros until the first non-zero sample, and treats None/NaN as missing;
* fits in log1p space when ``load_predictor_log1p`` is set and maps back;
* gives a mean and an upper quantile (90th percentile of its recent one-step residuals, or a
  normal approximation of its own spread before enough residuals exist);
* has a bounded, JSON-serialisable state (``get_state`` / ``load_state``).
"""

from __future__ import annotations

from planner_core.predictors.base import Model, Predictor
from planner_core.predictors.factory import DYNAMO_PREDICTORS, PREDICTOR_NAMES, make_model, make_predictor
from planner_core.predictors.load import LoadPredictor

__all__ = [
    "DYNAMO_PREDICTORS",
    "PREDICTOR_NAMES",
    "LoadPredictor",
    "Model",
    "Predictor",
    "make_model",
    "make_predictor",
]
