"""Metrics in and out: the frontend as Prometheus shows it, and the planner's own metrics.

* :mod:`~planner_core.metrics.promql` and :mod:`~planner_core.metrics.prometheus`: the
  production ``MetricsSource`` (``PrometheusSource.from_config``);
* :mod:`~planner_core.metrics.simulated`: the replay's in-process frontend;
* :mod:`~planner_core.metrics.exporter`: the simulated Dynamo frontend exporter;
* :mod:`~planner_core.metrics.planner_metrics` and :mod:`~planner_core.metrics.store_exporter`:
  the planner's own ``planner_*`` metrics. See ``docs/metrics.md``.
"""
