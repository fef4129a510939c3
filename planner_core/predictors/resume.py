"""A deployment's load predictor, resumed from what the store kept."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from planner_core.config import PlannerConfig
from planner_core.predictors.load import SERIES, LoadPredictor

log = logging.getLogger("sla_planner.predictors")

History = dict[str, list[tuple[float, float | None]]]


def resume_load_predictor(
    config: PlannerConfig,
    saved: Mapping[str, dict[str, Any]] | None,
    history: Callable[[], History] | None = None,
    **options: Any,
) -> LoadPredictor:
    """The predictor from its ``saved`` per-series state (no refit); else replayed over the
    observation ``history`` (read only when needed); else the warm-up trace
    (``--load-predictor-warmup-trace``); else empty. ``options`` go to the predictors (for
    example ``deferred_refit``)."""
    predictor = LoadPredictor(config, **options)
    if saved is not None and all(saved.get(s) is not None for s in SERIES):
        try:
            predictor.load_state(dict(saved))
            return predictor
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            # A state written by another version (say, a different candidate list) must not
            # stop the planner: the observation history rebuilds the same forecasts.
            log.warning(
                "saved %s predictor state does not fit this version (%s): rebuilding it from the "
                "observation history",
                config.load_predictor,
                exc,
            )
            predictor = LoadPredictor(config, **options)
    if history is not None:
        rows = history()
        if any(rows.get(s) for s in SERIES):
            return LoadPredictor.from_history(config, rows, **options)
    if config.load_predictor_warmup_trace:
        predictor.warm_up_from_trace(config.load_predictor_warmup_trace, config.adjustment_interval_s)
    return predictor


def build_load_predictor(
    config: PlannerConfig, store: Any = None, deployment_id: int | None = None, **options: Any
) -> LoadPredictor:
    """:func:`resume_load_predictor` over ``store``'s saved state and history of the deployment."""
    if store is None or deployment_id is None:
        return resume_load_predictor(config, None, None, **options)
    saved = {s: store.load_predictor_state(deployment_id, s, config.load_predictor) for s in SERIES}
    return resume_load_predictor(config, saved, lambda: store.load_histories(deployment_id), **options)
