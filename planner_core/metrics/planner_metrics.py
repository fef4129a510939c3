"""The planner's own metrics (``planner_`` prefix, labels ``deployment`` and ``model``).

Two ways to serve the same families:

* In a long-running process (``--metric-reporting-prometheus-port`` / ``PLANNER_PROMETHEUS_PORT``
  non-zero): :meth:`PlannerMetrics.publish` takes each cycle's result and
  :meth:`PlannerMetrics.serve` exposes ``/metrics`` on
  ``--metric-reporting-prometheus-address`` (loopback by default).
* Under Prefect, where every cycle is a short flow-run process: ``sla-planner exporter`` is a
  long-lived process that reads the store on every scrape (:class:`StoreCollector`). The store
  is already the record of every cycle, so the exporter needs no extra state, survives
  restarts, and shows exactly what SQL shows; a pushgateway would instead keep the last push of
  a deleted deployment forever and see its counters restart with every flow run.

Families (see :data:`FAMILIES`): current and desired replicas per pool, observed and predicted
load, observed TTFT and ITL, correction factors, cumulative GPU-hours, last cycle duration and
time, and cycles by outcome and reason.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from planner_core.config import PlannerConfig
from planner_core.records import Observation

LABELS = ("deployment", "model")

# name -> (type, help, extra label)
FAMILIES: dict[str, tuple[str, str, str | None]] = {
    "planner_current_replicas": ("gauge", "Replicas running (ready + starting) when the cycle observed", "pool"),
    "planner_desired_replicas": ("gauge", "Replicas the last decision asked for", "pool"),
    "planner_observed_requests": ("gauge", "Requests started in the last observed interval", None),
    "planner_observed_isl_tokens": ("gauge", "Mean input sequence length of the last interval", None),
    "planner_observed_osl_tokens": ("gauge", "Mean output sequence length of the last interval", None),
    "planner_observed_ttft_seconds": ("gauge", "Mean time to first token of the last interval", None),
    "planner_observed_itl_seconds": ("gauge", "Mean inter-token latency of the last interval", None),
    "planner_predicted_requests": ("gauge", "Requests predicted for the next interval", None),
    "planner_predicted_isl_tokens": ("gauge", "Mean input sequence length predicted for the next interval", None),
    "planner_predicted_osl_tokens": ("gauge", "Mean output sequence length predicted for the next interval", None),
    "planner_correction_factor": ("gauge", "Observed over profiled latency (1 = as profiled)", "kind"),
    "planner_gpu_hours": ("counter", "GPU-hours of the replicas running during the observed intervals", None),
    "planner_cycle_duration_seconds": ("gauge", "Wall time of the last planning cycle", None),
    "planner_last_cycle_timestamp_seconds": ("gauge", "End of the last observed window (unix seconds)", None),
    "planner_cycles": ("counter", "Planning cycles by outcome and reason", "outcome,reason"),
}

# Bounded reasons, so the label cannot grow with free text.
REASONS = ("applied", "unchanged", "pending", "dry_run", "hold", "no_data", "locked", "error")


def cycle_reason(status: str, quality: str | None, action_outcome: str | None) -> str:
    """One of :data:`REASONS` for a finished cycle (the same rule for a live result and a
    stored run, so both serving paths agree)."""
    if status == "skipped_locked":
        return "locked"
    if status == "error":
        return "error"
    if status == "no_operation":
        return "dry_run"
    if quality is not None and quality != "ok":
        return "no_data"
    if status == "held":
        return "hold"
    if action_outcome in ("applied", "unchanged", "pending"):
        return action_outcome
    if action_outcome in ("error", "skipped"):
        return "error"
    return "hold"


@dataclass
class DeploymentMetrics:
    """The values of one deployment's series; None = not known (the series is left out)."""

    deployment: str
    model: str
    gauges: dict[str, float | None] = field(default_factory=dict)
    gpu_hours: float = 0.0
    cycles: dict[tuple[str, str], float] = field(default_factory=dict)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def render(deployments: Iterable[DeploymentMetrics]) -> list[Metric]:
    """The families of :data:`FAMILIES` for these deployments."""
    deployments = list(deployments)
    out: list[Metric] = []
    for name, (kind, help_text, extra) in FAMILIES.items():
        extras = tuple(extra.split(",")) if extra else ()
        labels = [*LABELS, *extras]
        family: CounterMetricFamily | GaugeMetricFamily
        family = (
            CounterMetricFamily(name, help_text, labels=labels)
            if kind == "counter"
            else GaugeMetricFamily(name, help_text, labels=labels)
        )
        for dep in deployments:
            base = [dep.deployment, dep.model]
            if name == "planner_gpu_hours":
                family.add_metric(base, dep.gpu_hours)
            elif name == "planner_cycles":
                for (outcome, reason), count in sorted(dep.cycles.items()):
                    family.add_metric([*base, outcome, reason], count)
            elif extras:
                for key, value in dep.gauges.items():
                    prefix, _, label_value = key.partition(":")
                    if prefix == name and value is not None:
                        family.add_metric([*base, label_value], value)
            elif dep.gauges.get(name) is not None:
                family.add_metric(base, dep.gauges[name])  # type: ignore[arg-type]
        out.append(family)
    return out


def _gauges(
    observation: Observation | None,
    desired: tuple[int | None, int | None],
    predicted: tuple[Any, Any, Any],
    corrections: tuple[Any, Any],
    duration_s: float | None,
) -> dict[str, float | None]:
    g: dict[str, float | None] = {}
    if observation is not None:
        g["planner_current_replicas:prefill"] = _finite(observation.current.prefill)
        g["planner_current_replicas:decode"] = _finite(observation.current.decode)
        g["planner_observed_requests"] = _finite(observation.num_req)
        g["planner_observed_isl_tokens"] = _finite(observation.isl)
        g["planner_observed_osl_tokens"] = _finite(observation.osl)
        ttft, itl = _finite(observation.ttft_ms), _finite(observation.itl_ms)
        g["planner_observed_ttft_seconds"] = None if ttft is None else ttft / 1000.0
        g["planner_observed_itl_seconds"] = None if itl is None else itl / 1000.0
        g["planner_last_cycle_timestamp_seconds"] = observation.window_end.timestamp()
    g["planner_desired_replicas:prefill"] = _finite(desired[0])
    g["planner_desired_replicas:decode"] = _finite(desired[1])
    g["planner_predicted_requests"] = _finite(predicted[0])
    g["planner_predicted_isl_tokens"] = _finite(predicted[1])
    g["planner_predicted_osl_tokens"] = _finite(predicted[2])
    g["planner_correction_factor:prefill"] = _finite(corrections[0])
    g["planner_correction_factor:decode"] = _finite(corrections[1])
    g["planner_cycle_duration_seconds"] = _finite(duration_s)
    return g


def gpu_hours_of(observation: Observation | None, prefill_gpus: int, decode_gpus: int) -> float:
    """GPU-hours of the replicas the observation saw running over its window."""
    if observation is None:
        return 0.0
    p, d = observation.current.prefill or 0, observation.current.decode or 0
    return (p * prefill_gpus + d * decode_gpus) * observation.interval_s / 3600.0


class PlannerMetrics:
    """The planner's own metrics in a long-running process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deployments: dict[tuple[str, str], DeploymentMetrics] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: Any = None

    def publish(self, result: Any, config: PlannerConfig, deployment: str, duration_s: float | None = None) -> None:
        """Take one cycle's :class:`~planner_core.cycle.CycleResult` (call it after every cycle)."""
        model = config.model_name or ""
        obs: Observation | None = result.observation
        decision, forecast, corrections = result.decision, result.forecast, result.corrections
        outcome = result.outcome.outcome if result.outcome is not None else None
        reason = cycle_reason(result.status, obs.quality if obs is not None else None, outcome)
        usable = forecast is not None and forecast.is_usable()
        gauges = _gauges(
            obs,
            (decision.prefill_replicas, decision.decode_replicas) if decision is not None else (None, None),
            (forecast.num_req, forecast.isl, forecast.osl) if usable else (None, None, None),
            (corrections.prefill, corrections.decode) if corrections is not None else (None, None),
            duration_s,
        )
        with self._lock:
            dep = self._deployments.setdefault((deployment, model), DeploymentMetrics(deployment, model))
            dep.gauges.update(gauges)
            if decision is not None:  # as the store counts it: observed replicas x the decision's engine GPUs
                dep.gpu_hours += gpu_hours_of(obs, decision.prefill_engine_num_gpu, decision.decode_engine_num_gpu)
            key = (result.status, reason)
            dep.cycles[key] = dep.cycles.get(key, 0.0) + 1.0

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = [
                DeploymentMetrics(d.deployment, d.model, dict(d.gauges), d.gpu_hours, dict(d.cycles))
                for d in self._deployments.values()
            ]
        yield from render(snapshot)

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``address:port`` (0 = a free port); returns the port."""
        server, _ = start_http_server(port, addr=address, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_DEFAULT: PlannerMetrics | None = None


def default_metrics() -> PlannerMetrics:
    """The process-wide :class:`PlannerMetrics`."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PlannerMetrics()
    return _DEFAULT


def serve_if_configured(config: PlannerConfig) -> int | None:
    """Serve the process-wide metrics when ``--metric-reporting-prometheus-port`` is non-zero;
    returns the port (None when off)."""
    if not config.metric_reporting_prometheus_port:
        return None
    return default_metrics().serve(config.metric_reporting_prometheus_port, config.metric_reporting_prometheus_address)


def publish(result: Any, config: PlannerConfig, deployment: str, duration_s: float | None = None) -> None:
    """Record one cycle in the process-wide metrics (a no-op cost when nothing serves them)."""
    default_metrics().publish(result, config, deployment, duration_s)
