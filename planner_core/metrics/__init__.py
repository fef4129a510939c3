"""Metrics in and out: the frontend as Prometheus shows it, and the planner's own metrics.

* :mod:`~planner_core.metrics.promql` and :mod:`~planner_core.metrics.prometheus`: the
  production ``MetricsSource`` (:func:`make_metrics_source`);
* :mod:`~planner_core.metrics.simulated`: the replay's in-process frontend;
* :mod:`~planner_core.metrics.exporter`: the simulated Dynamo frontend exporter;
* :mod:`~planner_core.metrics.planner_metrics` and :mod:`~planner_core.metrics.store_exporter`:
  the planner's own ``planner_*`` metrics. See ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from planner_core.config import PlannerConfig
    from planner_core.metrics.prometheus import PrometheusSource


def make_metrics_source(config: PlannerConfig) -> PrometheusSource:
    """The frontend's metrics from Prometheus (``--metric-pulling-prometheus-endpoint`` /
    ``PROMETHEUS_ENDPOINT``, auth and TLS from Dynamo's ``PROMETHEUS_*`` variables)."""
    from planner_core.metrics.prometheus import PrometheusSource

    return PrometheusSource.from_config(config)
