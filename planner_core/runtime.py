"""What one planned deployment's cycle runs against, outside the replay.

The Prefect flows (``flows/``), ``sla-planner run-once`` and ``sla-planner serve`` all build a
cycle here: the metrics source and the connector the configuration names, the wall clock,
the store, the load predictor resumed from the store. No Prefect import: the flows add only
the orchestration around it.

``using_ports`` swaps in other ports for the code running inside it (tests, the stored-history
replay, an embedding application): the flows then run unchanged over them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from planner_core.config import ConfigError, PlannerConfig, config_from_env
from planner_core.ports import Clock, Connector, MetricsSource, WallClock
from planner_core.records import Replicas


@dataclass
class Ports:
    """The outside world of one deployment's cycle."""

    metrics: MetricsSource
    connector: Connector
    clock: Clock = field(default_factory=WallClock)


PortsFactory = Callable[[PlannerConfig, str], Ports]

_override: PortsFactory | None = None
_override_lock = threading.Lock()


@contextlib.contextmanager
def using_ports(factory: PortsFactory) -> Iterator[None]:
    """Cycles built inside this block use ``factory(config, deployment)`` for their ports."""
    global _override
    with _override_lock:
        previous, _override = _override, factory
    try:
        yield
    finally:
        with _override_lock:
            _override = previous


def make_ports(config: PlannerConfig, deployment: str, store: Any = None, deployment_id: int | None = None) -> Ports:
    """The ports ``config`` names: the frontend's metrics from Prometheus
    (``--metric-pulling-prometheus-endpoint``), and the Kubernetes or the virtual connector
    (``--environment``; the virtual one keeps its requests in ``store``)."""
    if _override is not None:
        return _override(config, deployment)
    try:
        from planner_core.connectors import build_connector
        from planner_core.metrics.prometheus import PrometheusSource
    except ImportError as exc:
        raise ConfigError(
            f"environment: no metrics source or connector for {config.environment.value!r} in this build "
            f"({exc}); run the planner from a release with planner_core.metrics and planner_core.connectors"
        ) from None
    return Ports(
        metrics=PrometheusSource.from_config(config),
        connector=build_connector(config, store=store, deployment_id=deployment_id),
    )


def merged_config(given: PlannerConfig | None = None, **overrides: Any) -> PlannerConfig:
    """Settings from the environment (``PLANNER_*``, ``DYN_NAMESPACE``, ``PROMETHEUS_ENDPOINT``)
    overlaid by the fields ``given`` sets explicitly and then by ``overrides``.

    A Prefect parameter object only carries the fields the deployment or the UI filled in
    (pydantic's ``model_fields_set``), so a worker's environment supplies the rest."""
    values: dict[str, Any] = {}
    if given is not None:
        values.update(given.model_dump(include=given.model_fields_set))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_env(**values)


def pinned_replicas(prefill: int | None, decode: int | None) -> Replicas | None:
    """Replicas an operator pins by hand; None when neither pool is pinned."""
    if prefill is None and decode is None:
        return None
    for name, value in (("prefill_replicas", prefill), ("decode_replicas", decode)):
        if value is not None and value < 0:
            raise ConfigError(f"{name}: {value} is negative; give a replica count of 0 or more")
    return Replicas(prefill, decode)


_profiles: dict[str, Any] = {}


def load_profile_cached(config: PlannerConfig) -> Any:
    """The deployment's profile, read once per process (a ``serve`` process plans every interval)."""
    from planner_core.profiles import load_profile

    key = str(config.profile_dir())
    if key not in _profiles:
        _profiles[key] = load_profile(config.profile_dir())
    return _profiles[key]


def open_cycle(
    config: PlannerConfig,
    deployment: str,
    store: Any,
    *,
    trigger: str = "schedule",
    ports: Ports | None = None,
    pinned: Replicas | None = None,
    reason: str | None = None,
    step: Any = None,
    deferred_refit: bool = True,
) -> Any:
    """A :class:`~planner_core.cycle.PlanningCycle` for ``deployment`` over ``store``: its state and
    its load predictor are loaded when it runs, under the deployment's cycle lock. ``step`` is the
    step runner (default: plain calls). ``deferred_refit`` leaves ARIMA order searches to the
    ``refit`` flow, for callers that live one cycle per process; a long-lived loop
    (``sla-planner run``) searches in its own background pool instead."""
    from planner_core.cycle import PlanningCycle, call_step
    from planner_core.predictors.resume import resume_load_predictor

    deployment_id = store.ensure_deployment(
        deployment, config.namespace, config.model_name, config.backend.value, config.mode.value
    )
    ports = ports or make_ports(config, deployment, store, deployment_id)

    def predictor_factory(saved: dict[str, dict[str, Any]] | None) -> Any:
        return resume_load_predictor(
            config, saved, lambda: store.load_histories(deployment_id), deferred_refit=deferred_refit
        )

    return PlanningCycle(
        config=config,
        profile=load_profile_cached(config),
        metrics=ports.metrics,
        connector=ports.connector,
        clock=ports.clock,
        predictor_factory=predictor_factory,
        store=store,
        deployment_id=deployment_id,
        stabilizer=PlanningCycle.default_stabilizer(config),
        trigger=trigger,
        pinned=pinned,
        reason=reason,
        step=step or call_step,
    )
