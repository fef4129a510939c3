"""Reading a DynamoGraphDeployment (a plain dict, as the API returns it): which services are
the prefill and decode workers, the model they serve, their GPUs per engine, their readiness.

Pure functions, no API calls: :mod:`planner_core.connectors.kubernetes` fetches, these read.
Every problem is collected, so one validation run reports all of them."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from planner_core.connectors.base import (
    ConnectorError,
    DuplicateSubComponentError,
    GpuCountNotFoundError,
    MalformedObjectError,
    ModelNameMismatchError,
    ModelNameNotFoundError,
    SubComponentNotFoundError,
    UserModelNameMismatchError,
)

# Worker flags that name the served model, the most specific first (the name clients send).
MODEL_FLAGS = ("--served-model-name", "--model", "--model-path", "--model-name")


# -- reading fields of an object the API server returned (untrusted JSON) ---------------------------


def _shape(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.40}"


def at(obj: Any, *path: str, what: str) -> Any:
    """The value at ``path`` in a JSON object, None when a step is absent; a step that is
    there but not an object is a :class:`MalformedObjectError` naming ``what`` and the path."""
    node = obj
    for depth, key in enumerate(path):
        if node is None:
            return None
        if not isinstance(node, Mapping):
            where = ".".join(path[:depth]) or "the object"
            raise MalformedObjectError(
                f"{what}: {where} is {_shape(node)}, expected an object; fix the object (kubectl edit) "
                f"or the controller that wrote it"
            )
        node = node.get(key)
    return node


def obj_at(obj: Any, *path: str, what: str) -> Mapping[str, Any]:
    """An object-valued field (``{}`` when absent)."""
    value = at(obj, *path, what=what)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedObjectError(f"{what}: {'.'.join(path)} is {_shape(value)}, expected an object")
    return value


def list_at(obj: Any, *path: str, what: str) -> list[Any]:
    """A list-valued field (``[]`` when absent)."""
    value = at(obj, *path, what=what)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedObjectError(f"{what}: {'.'.join(path)} is {_shape(value)}, expected a list")
    return value


def count_at(obj: Any, *path: str, what: str) -> int | None:
    """A replica count or generation: a non-negative integer (or its decimal string), None when absent."""
    value = at(obj, *path, what=what)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdecimal() and value.strip().isascii():
        return int(value.strip())
    raise MalformedObjectError(f"{what}: {'.'.join(path)} is {_shape(value)}, expected a non-negative integer")


@dataclass(frozen=True)
class ServiceInfo:
    pool: str  # prefill | decode
    name: str  # key in spec.services
    model_name: str | None
    gpus: int | None
    replicas: int | None


def find_services(
    services: Mapping[str, Any], pools: Sequence[str], fallback_names: Mapping[str, str], errors: list[ConnectorError]
) -> dict[str, str]:
    """``{pool: service name}``: by ``subComponentType`` first, else the backend's component name."""
    found: dict[str, str] = {}
    kinds = {name: at(svc, "subComponentType", what=f"service {name}") for name, svc in services.items()}
    for pool in pools:
        typed = sorted(str(name) for name, kind in kinds.items() if kind == pool)
        if len(typed) > 1:
            errors.append(
                DuplicateSubComponentError(
                    f"{pool}: services {', '.join(typed)} all have subComponentType {pool!r}; "
                    f"keep it on exactly one service"
                )
            )
        elif typed:
            found[pool] = typed[0]
        elif fallback_names.get(pool) in services:
            found[pool] = fallback_names[pool]
        else:
            errors.append(
                SubComponentNotFoundError(
                    f"{pool}: no service has subComponentType {pool!r} and none is named "
                    f"{fallback_names.get(pool)!r} (services: {', '.join(sorted(map(str, services))) or 'none'}); set "
                    f"subComponentType: {pool} on the worker service or --{pool}-component-name"
                )
            )
    return found


def _arguments(container: Mapping[str, Any]) -> list[str]:
    """A container's command and args as one token list (a single shell string is split)."""
    tokens: list[str] = []
    for key in ("command", "args"):
        for item in list_at(container, key, what="the worker container"):
            if isinstance(item, str) and " " in item.strip():
                try:
                    tokens.extend(shlex.split(item))
                    continue
                except ValueError:  # an unbalanced quote: the string as one token
                    pass
            tokens.append(str(item))
    return tokens


def model_name_from_args(tokens: Sequence[str]) -> str | None:
    for flag in MODEL_FLAGS:
        for i, token in enumerate(tokens):
            if token == flag and i + 1 < len(tokens):
                return tokens[i + 1]
            if token.startswith(flag + "="):
                return token.split("=", 1)[1]
    return None


def gpu_count(resources: Mapping[str, Any] | None, keys: Sequence[str] = ("gpu", "nvidia.com/gpu")) -> int | None:
    """GPUs per engine: ``limits`` first, then ``requests`` (Dynamo's order)."""
    for section in ("limits", "requests"):
        values = obj_at(resources, section, what="resources")
        for key in keys:
            if values.get(key) not in (None, ""):
                try:
                    return int(str(values[key]))
                except ValueError:
                    return None
    return None


def service_info(pool: str, name: str, spec: Any) -> ServiceInfo:
    what = f"service {name}"
    main = obj_at(spec, "extraPodSpec", "mainContainer", what=what)
    return ServiceInfo(
        pool=pool,
        name=name,
        model_name=model_name_from_args(_arguments(main)),
        gpus=gpu_count(obj_at(spec, "resources", what=what)),
        replicas=count_at(spec, "replicas", what=what),
    )


def check_models_and_gpus(
    infos: Sequence[ServiceInfo], user_model: str | None, errors: list[ConnectorError], where: str
) -> str | None:
    """The deployment's model name (collecting mismatches), and a GPU error per service without one."""
    for info in infos:
        if info.gpus is None:
            errors.append(
                GpuCountNotFoundError(
                    f"{where} service {info.name!r} ({info.pool}): no GPU count in resources.limits.gpu or "
                    f"resources.requests.gpu; set one (the planner sizes pools in GPUs)"
                )
            )
    names = {info.name: info.model_name for info in infos if info.model_name}
    distinct = sorted(set(names.values()))
    if len(distinct) > 1:
        errors.append(
            ModelNameMismatchError(
                f"{where}: the worker services serve different models ("
                + ", ".join(f"{svc}: {model}" for svc, model in sorted(names.items()))
                + "); prefill and decode must serve the same model"
            )
        )
        return None
    if not distinct:
        if user_model or not infos:  # (no service found: that error is already reported)
            return user_model
        errors.append(
            ModelNameNotFoundError(
                f"{where}: no worker service names its model (--served-model-name or --model in "
                f"its args); add it there or pass --model-name"
            )
        )
        return None
    model = distinct[0]
    if user_model and user_model != model:
        errors.append(
            UserModelNameMismatchError(
                f"--model-name {user_model!r} differs from the model {model!r} that {where} serves; "
                f"fix --model-name or leave it unset"
            )
        )
    return model


def dgd_ready_condition(dgd: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the DGD's ``Ready`` condition is True, and its reason/message when not."""
    for cond in list_at(dgd, "status", "conditions", what="DynamoGraphDeployment"):
        if at(cond, "type", what="DynamoGraphDeployment status.conditions") == "Ready":
            if str(cond.get("status")) == "True":
                return True, ""
            return False, str(cond.get("message") or cond.get("reason") or "Ready is False")
    return False, "no Ready condition yet"


def service_ready_replicas(dgd: Mapping[str, Any], service: str) -> int | None:
    return count_at(dgd, "status", "services", service, "readyReplicas", what="DynamoGraphDeployment")
