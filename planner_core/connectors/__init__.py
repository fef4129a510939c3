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
]
