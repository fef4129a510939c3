"""What every connector shares: its errors, turning targets into per-component replicas, and
the rule for a cycle that finds the previous change still rolling out.

The errors follow Dynamo's classes one for one, so an operator who knows Dynamo's messages
recognises ours; each message says what to change."""

from __future__ import annotations

from collections.abc import Mapping

from planner_core.config import RolloutBehaviour
from planner_core.ports import Connector
from planner_core.records import Replicas


class ConnectorError(RuntimeError):
    """A connector cannot do what the cycle asked; the message names the fix."""


class DeploymentNotFoundError(ConnectorError):
    """The deployment to scale is not named (``DYN_PARENT_DGD_K8S_NAME``) or does not exist."""


class SubComponentNotFoundError(ConnectorError):
    """No service of the deployment is the prefill (or decode) worker."""


class DuplicateSubComponentError(ConnectorError):
    """More than one service claims to be the prefill (or decode) worker."""


class ModelNameNotFoundError(ConnectorError):
    """A worker service does not say which model it serves."""


class ModelNameMismatchError(ConnectorError):
    """The prefill and decode services serve different models."""


class UserModelNameMismatchError(ConnectorError):
    """``--model-name`` differs from the model the deployment serves."""


class GpuCountNotFoundError(ConnectorError):
    """A worker service requests no GPUs (neither ``resources.limits.gpu`` nor ``requests.gpu``)."""


class EmptyTargetsError(ConnectorError):
    """A scaling request named no component."""


class PermissionDeniedError(ConnectorError):
    """The API server refused a call (HTTP 403); the message names the missing permission."""


class ClusterApiError(ConnectorError):
    """The API server kept failing (after retries) or answered something unusable."""


class MalformedObjectError(ClusterApiError):
    """The API server returned an object with a field of the wrong shape (a string where
    Kubernetes or Dynamo define a count, a list where they define an object ...)."""


class DeploymentValidationError(ConnectorError):
    """Every problem :meth:`Connector.validate` found, reported at once."""

    def __init__(self, errors: list[ConnectorError]) -> None:
        self.errors = errors
        lines = "\n  ".join(f"{type(e).__name__}: {e}" for e in errors)
        super().__init__(f"the deployment cannot be planned ({len(errors)} problem(s)):\n  {lines}")


def component_targets(targets: Replicas, names: Mapping[str, str]) -> dict[str, int]:
    """``{component name: replicas}`` for the pools ``targets`` sets.

    ``names`` maps ``"prefill"`` / ``"decode"`` to the component names the cluster uses. A
    request that sets neither pool is an error, not a silent no-op."""
    out: dict[str, int] = {}
    for pool in ("prefill", "decode"):
        value = getattr(targets, pool)
        if value is None:
            continue
        if value < 0:
            raise ValueError(f"{pool} target must be >= 0, got {value}")
        if pool not in names:
            raise EmptyTargetsError(f"{pool}: this connector has no {pool} component to scale")
        out[names[pool]] = int(value)
    if not out:
        raise EmptyTargetsError("no target replicas given: set the prefill or the decode target (or both)")
    return out


def gate_rollout(
    connector: Connector, targets: Replicas, behaviour: RolloutBehaviour
) -> tuple[Replicas | None, str | None]:
    """The targets to apply now, given the previous change's state, and why they differ.

    Returns ``(targets, None)`` when the last change has settled or ``behaviour`` is
    ``apply``; ``(None, reason)`` to skip; ``(reduced targets, reason)`` under ``scale_up``
    when some pool would have shrunk (it keeps its current target)."""
    if behaviour == RolloutBehaviour.APPLY:
        return targets, None
    reason = connector.rolling_out()
    if reason is None:
        return targets, None
    if behaviour == RolloutBehaviour.SKIP:
        return None, f"previous change still rolling out ({reason}); skipped"
    # scale_up holds the pools that would shrink; scale_down holds the pools that would grow.
    current = connector.current_replicas()
    kept: dict[str, int | None] = {}
    held = []
    for pool in ("prefill", "decode"):
        new, now = getattr(targets, pool), getattr(current, pool)
        shrinks = new is not None and now is not None and new < now
        grows = new is not None and now is not None and new > now
        if (behaviour == RolloutBehaviour.SCALE_UP and shrinks) or (behaviour == RolloutBehaviour.SCALE_DOWN and grows):
            kept[pool] = now
            held.append(f"{pool} {now}->{new}")
        else:
            kept[pool] = new
    if not held:
        return targets, None
    reduced = Replicas(kept["prefill"], kept["decode"])
    why = f"previous change still rolling out ({reason}); held {', '.join(held)}"
    return (None if reduced == current else reduced), why
