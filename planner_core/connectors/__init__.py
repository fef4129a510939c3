"""Connectors: how a decision reaches the cluster.

``kubernetes``  a DynamoGraphDeployment (through its scaling adapters when they exist) or plain
                Deployments / StatefulSets, on the official ``kubernetes`` client.
``virtual``     a pending scaling request in the SQL store that an outside system acknowledges.
``simulated``   the replay's in-process cluster.
``noop``        ``--no-operation``: wraps any of them, reads, records, scales nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from planner_core.connectors.base import (
    ClusterApiError,
    ConnectorError,
    DeploymentNotFoundError,
    DeploymentValidationError,
    DuplicateSubComponentError,
    EmptyTargetsError,
    GpuCountNotFoundError,
    ModelNameMismatchError,
    ModelNameNotFoundError,
    PermissionDeniedError,
    SubComponentNotFoundError,
    UserModelNameMismatchError,
    component_targets,
    gate_rollout,
)
from planner_core.connectors.noop import NoOperationConnector

if TYPE_CHECKING:
    from planner_core.config import PlannerConfig
    from planner_core.ports import Connector


def build_connector(
    config: PlannerConfig, *, store: Any = None, deployment_id: int | None = None, api_client: Any = None
) -> Connector:
    """The connector ``--environment`` names, wrapped to record-only under ``--no-operation``.

    ``kubernetes`` needs ``DYN_PARENT_DGD_K8S_NAME`` (or plain workloads) and credentials
    (in-cluster first, then kubeconfig; ``api_client`` overrides them); ``virtual`` needs the
    store and the deployment's id, where its requests live."""
    from planner_core.config import Environment

    inner: Connector
    if config.environment == Environment.VIRTUAL:
        if store is None or deployment_id is None:
            raise ConnectorError(
                "the virtual connector keeps its requests in the SQL store: run the planner with a store "
                "(--db-url or PLANNER_DB_URL) and a deployment"
            )
        from planner_core.connectors.virtual import VirtualConnector

        inner = VirtualConnector(config, store, deployment_id)
    else:
        from planner_core.connectors.kubernetes import KubernetesConnector

        inner = KubernetesConnector(config, api_client=api_client)
    return NoOperationConnector(inner) if config.no_operation else inner


def make_connector(config: PlannerConfig, deployment: str, store: Any = None) -> Connector:
    """The connector for planned ``deployment`` (what :func:`planner_core.runtime.make_ports` calls).

    The virtual connector's requests go to ``store``, else the store ``PLANNER_DB_URL`` names
    (``sqlite:///planner.db`` by default), under the deployment's row."""
    from planner_core.config import Environment

    deployment_id = None
    if config.environment == Environment.VIRTUAL:
        if store is None:
            from planner_core.store import Store

            store = Store()
        deployment_id = store.ensure_deployment(
            deployment, config.namespace, config.model_name, config.backend.value, config.mode.value
        )
    return build_connector(config, store=store, deployment_id=deployment_id)


__all__ = [
    "ClusterApiError",
    "ConnectorError",
    "DeploymentNotFoundError",
    "DeploymentValidationError",
    "DuplicateSubComponentError",
    "EmptyTargetsError",
    "GpuCountNotFoundError",
    "ModelNameMismatchError",
    "ModelNameNotFoundError",
    "NoOperationConnector",
    "PermissionDeniedError",
    "SubComponentNotFoundError",
    "UserModelNameMismatchError",
    "build_connector",
    "component_targets",
    "gate_rollout",
    "make_connector",
]
