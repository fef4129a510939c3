"""The Kubernetes connector, on the official ``kubernetes`` client.

Two kinds of target:

* Dynamo's **DynamoGraphDeployment** (``nvidia.com/v1alpha1``, ``dynamographdeployments``)
  named by ``DYN_PARENT_DGD_K8S_NAME``. The prefill and decode services are found by
  ``subComponentType``, else by the backend's component names. A service that has a
  ``DynamoGraphDeploymentScalingAdapter`` is scaled through the adapter's scale subresource
  (the operator then owns the DGD's replicas; patching the DGD would be reverted); the others
  by patching ``spec.services.<name>.replicas`` of the DGD.
* **Plain workloads** (``--prefill-workload deployment/NAME``, ``statefulset/NAME``) scaled
  through their ``apps/v1`` scale subresource, for disaggregated setups without the operator.

Every API call names the permission it needs (:data:`PERMISSIONS`, the table
``deploy/k8s/rbac.yaml`` is checked against). Writes carry the ``resourceVersion`` that was
read, so a concurrent change is a 409 that is retried on a fresh read; 429, 5xx and timeouts
are retried with exponential backoff; a 403 names the verb and resource the Role lacks.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from planner_core.config import PlannerConfig
from planner_core.connectors.base import (
    ClusterApiError,
    ConnectorError,
    DeploymentNotFoundError,
    DeploymentValidationError,
    MalformedObjectError,
    PermissionDeniedError,
    component_targets,
)
from planner_core.connectors.dgd import (
    ServiceInfo,
    at,
    check_models_and_gpus,
    count_at,
    dgd_ready_condition,
    find_services,
    gpu_count,
    list_at,
    model_name_from_args,
    obj_at,
    service_info,
    service_ready_replicas,
)
from planner_core.ports import DeploymentInfo
from planner_core.records import Replicas, ScalingOutcome

log = logging.getLogger("sla_planner.connectors.kubernetes")

DGD_GROUP, DGD_VERSION = "nvidia.com", "v1alpha1"
DGD_PLURAL = "dynamographdeployments"
ADAPTER_PLURAL = "dynamographdeploymentscalingadapters"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MERGE_PATCH = "application/merge-patch+json"


class Permission(NamedTuple):
    """One RBAC rule's worth of access: API group ("" = core), resource, verb."""

    group: str
    resource: str
    verb: str

    def describe(self) -> str:
        return f"verb {self.verb!r} on {self.resource!r} in API group {self.group or 'core'!r}"


# Everything the connector calls. Each API call below names its entry; deploy/k8s/rbac.yaml
# grants exactly this set (tests/test_k8s_rbac.py).
DGD_GET = Permission(DGD_GROUP, DGD_PLURAL, "get")
DGD_PATCH = Permission(DGD_GROUP, DGD_PLURAL, "patch")
ADAPTER_LIST = Permission(DGD_GROUP, ADAPTER_PLURAL, "list")
ADAPTER_SCALE_GET = Permission(DGD_GROUP, f"{ADAPTER_PLURAL}/scale", "get")
ADAPTER_SCALE_PATCH = Permission(DGD_GROUP, f"{ADAPTER_PLURAL}/scale", "patch")
WORKLOAD_GET = {kind: Permission("apps", f"{kind}s", "get") for kind in ("deployment", "statefulset")}
WORKLOAD_SCALE_GET = {kind: Permission("apps", f"{kind}s/scale", "get") for kind in ("deployment", "statefulset")}
WORKLOAD_SCALE_PATCH = {kind: Permission("apps", f"{kind}s/scale", "patch") for kind in ("deployment", "statefulset")}
PERMISSIONS: frozenset[Permission] = frozenset(
    {DGD_GET, DGD_PATCH, ADAPTER_LIST, ADAPTER_SCALE_GET, ADAPTER_SCALE_PATCH}
    | set(WORKLOAD_GET.values())
    | set(WORKLOAD_SCALE_GET.values())
    | set(WORKLOAD_SCALE_PATCH.values())
)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Client-side resilience. ``timeout_s`` is (connect, read) per request."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    timeout_s: tuple[float, float] = (5.0, 15.0)
    conflict_attempts: int = 5


def load_api_client() -> Any:
    """An ``ApiClient``: in-cluster service account first, then the kubeconfig.

    urllib3's own retries are off: :class:`KubernetesConnector` retries with backoff and knows
    which failures are worth retrying."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            # KUBECONFIG as it is now (the client reads it once, at import)
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            raise ConnectorError(
                f"no Kubernetes credentials: not in a pod with a service account and no usable kubeconfig "
                f"({exc}); run the planner in the cluster or set KUBECONFIG"
            ) from None
    configuration.retries = False
    return client.ApiClient(configuration)


def default_namespace() -> str:
    """The planner pod's namespace (service-account file), else the kubeconfig context's, else default."""
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    try:
        from kubernetes import config

        _, active = config.list_kube_config_contexts()
        return str(active.get("context", {}).get("namespace") or "default")
    except Exception:  # no kubeconfig: the API server's default namespace
        return "default"


def _status_message(exc: Any) -> str:
    import json

    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, TypeError):
        return str(exc.reason)


class KubernetesConnector:
    """Scales a DynamoGraphDeployment, or plain Deployments / StatefulSets, through the API server."""

    name = "kubernetes"

    def __init__(
        self,
        config: PlannerConfig,
        api_client: Any = None,
        namespace: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from kubernetes import client

        self.config = config
        self.api_client = api_client if api_client is not None else load_api_client()
        self.namespace = namespace or config.kubernetes_namespace or default_namespace()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self.custom = client.CustomObjectsApi(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.pools = [p for p in ("prefill", "decode") if getattr(config, f"plans_{p}")()]
        self.workloads: dict[str, tuple[str, str]] = {}
        for pool in self.pools:
            spec = getattr(config, f"{pool}_workload")
            if spec:
                kind, _, wname = spec.partition("/")
                self.workloads[pool] = (kind.lower(), wname)
        if self.workloads and len(self.workloads) != len(self.pools):
            missing = [p for p in self.pools if p not in self.workloads]
            raise ConnectorError(
                f"plain workloads need one per planned pool: set --{missing[0]}-workload too "
                f"(or plan one pool with --mode {next(iter(self.workloads))})"
            )
        self.dgd_name = None if self.workloads else config.dgd_name
        if not self.workloads and not self.dgd_name:
            raise DeploymentNotFoundError(
                "DYN_PARENT_DGD_K8S_NAME is not set: set it (or --dgd-name) to the DynamoGraphDeployment to "
                "scale, or name plain workloads with --prefill-workload / --decode-workload"
            )
        self._services: dict[str, str] | None = None  # pool -> DGD service name, after validate()

    # -- the API calls (each names its permission) ---------------------------------------------
    def _call(self, permission: Permission, target: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One API call with the retry policy. 404 and 409 go back to the caller as ApiException."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        last = ""
        for attempt in range(self.retry.attempts):
            try:
                return fn(*args, _request_timeout=self.retry.timeout_s, **kwargs)
            except ApiException as exc:
                status = int(exc.status or 0)
                if status == 403:
                    raise PermissionDeniedError(
                        f"the API server refused {permission.verb} {target} in namespace {self.namespace!r}: "
                        f"the planner's Role needs {permission.describe()} (see deploy/k8s/rbac.yaml); "
                        f"server said: {_status_message(exc)}"
                    ) from None
                if status == 401:
                    raise PermissionDeniedError(
                        f"the API server did not accept the planner's credentials ({_status_message(exc)}); "
                        f"check the service account token or kubeconfig"
                    ) from None
                if status in (404, 409):
                    raise
                if status != 429 and status < 500:
                    raise ClusterApiError(
                        f"{permission.verb} {target}: HTTP {status}: {_status_message(exc)}"
                    ) from None
                last = f"HTTP {status}: {_status_message(exc)}"
                wait = self._backoff(attempt, exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                wait = self._backoff(attempt, None)
            if attempt + 1 < self.retry.attempts:
                log.warning("%s %s failed (%s); retrying in %.2f s", permission.verb, target, last, wait)
                self._sleep(wait)
        raise ClusterApiError(
            f"{permission.verb} {target} in namespace {self.namespace!r} failed {self.retry.attempts} times; "
            f"last: {last}. Check the API server's health and the planner's network path to it"
        )

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.retry.max_backoff_s)
            except ValueError:
                pass
        return min(self.retry.backoff_s * 2**attempt, self.retry.max_backoff_s)

    def _get_dgd(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        assert self.dgd_name is not None
        try:
            return self._as_dict(
                self._call(
                    DGD_GET,
                    f"dynamographdeployment/{self.dgd_name}",
                    self.custom.get_namespaced_custom_object,
                    DGD_GROUP,
                    DGD_VERSION,
                    self.namespace,
                    DGD_PLURAL,
                    self.dgd_name,
                    _preload_content=False,
                ),
                f"DynamoGraphDeployment {self.dgd_name!r}",
            )
        except ApiException as exc:
            if exc.status == 404:
                raise DeploymentNotFoundError(
                    f"DynamoGraphDeployment {self.dgd_name!r} not found in namespace {self.namespace!r}; "
                    f"check DYN_PARENT_DGD_K8S_NAME and --kubernetes-namespace"
                ) from None
            raise ClusterApiError(f"get dynamographdeployment/{self.dgd_name}: {_status_message(exc)}") from None

    def _adapters(self) -> dict[str, str]:
        """``{service name: adapter name}`` of this DGD's scaling adapters (none if the CRD is absent)."""
        from kubernetes.client.exceptions import ApiException

        try:
            listing = self._call(
                ADAPTER_LIST,
                "dynamographdeploymentscalingadapters",
                self.custom.list_namespaced_custom_object,
                DGD_GROUP,
                DGD_VERSION,
                self.namespace,
                ADAPTER_PLURAL,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:  # an operator without the adapter CRD
                return {}
            raise ClusterApiError(f"list dynamographdeploymentscalingadapters: {_status_message(exc)}") from None
        what = "DynamoGraphDeploymentScalingAdapter list"
        out = {}
        for item in list_at(self._as_dict(listing, what), "items", what=what):
            ref = obj_at(item, "spec", "dgdRef", what=what)
            service, name = ref.get("serviceName"), at(item, "metadata", "name", what=what)
            if ref.get("name") == self.dgd_name and isinstance(service, str) and service and isinstance(name, str):
                out[service] = name
        return out

    def _scale_api(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """(read, patch) of a scale subresource: ``adapter`` or an apps/v1 workload kind."""
        if kind == "adapter":

            def read(name: str, **kw: Any) -> Any:
                return self.custom.get_namespaced_custom_object_scale(
                    DGD_GROUP, DGD_VERSION, self.namespace, ADAPTER_PLURAL, name, **kw
                )

            def patch(name: str, body: Any, **kw: Any) -> Any:
                return self.custom.patch_namespaced_custom_object_scale(
                    DGD_GROUP,
                    DGD_VERSION,
                    self.namespace,
                    ADAPTER_PLURAL,
                    name,
                    body,
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                    **kw,
                )

            return read, patch
        if kind == "deployment":
            return (
                lambda name, **kw: self.apps.read_namespaced_deployment_scale(name, self.namespace, **kw),
                lambda name, body, **kw: self.apps.patch_namespaced_deployment_scale(
                    name, self.namespace, body, _content_type=MERGE_PATCH, _preload_content=False, **kw
                ),
            )
        return (
            lambda name, **kw: self.apps.read_namespaced_stateful_set_scale(name, self.namespace, **kw),
            lambda name, body, **kw: self.apps.patch_namespaced_stateful_set_scale(
                name, self.namespace, body, _content_type=MERGE_PATCH, _preload_content=False, **kw
            ),
        )

    def _scale_permissions(self, kind: str) -> tuple[Permission, Permission]:
        if kind == "adapter":
            return ADAPTER_SCALE_GET, ADAPTER_SCALE_PATCH
        return WORKLOAD_SCALE_GET[kind], WORKLOAD_SCALE_PATCH[kind]

    def _as_dict(self, obj: Any, what: str) -> dict[str, Any]:
        """The JSON object of an answer. Reads ask for the raw body (``_preload_content=False``):
        the client's typed models would raise their own validation errors on a malformed object."""
        if hasattr(obj, "data") and not isinstance(obj, dict):
            try:
                obj = json.loads(obj.data)
            except ValueError:
                raise MalformedObjectError(f"{what}: the API server's answer is not JSON") from None
        elif not isinstance(obj, dict):
            obj = self.api_client.sanitize_for_serialization(obj)
        if not isinstance(obj, dict):
            raise MalformedObjectError(f"{what}: the API server answered {type(obj).__name__}, expected an object")
        return obj

    def _set_scale(self, kind: str, name: str, replicas: int) -> bool:
        """Set a scale subresource; True when it changed. 409 -> read again and retry."""
        from kubernetes.client.exceptions import ApiException

        get_perm, patch_perm = self._scale_permissions(kind)
        read, patch = self._scale_api(kind)
        target = f"{'dynamographdeploymentscalingadapter' if kind == 'adapter' else kind}/{name}/scale"
        for _ in range(self.retry.conflict_attempts):
            try:
                scale = self._as_dict(self._call(get_perm, target, read, name, _preload_content=False), target)
            except ApiException as exc:
                raise ClusterApiError(f"get {target}: HTTP {exc.status}: {_status_message(exc)}") from None
            if count_at(scale, "spec", "replicas", what=target) == replicas:
                return False
            body = {
                "metadata": {"resourceVersion": at(scale, "metadata", "resourceVersion", what=target)},
                "spec": {"replicas": replicas},
            }
            try:
                self._call(patch_perm, target, patch, name, body)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise ClusterApiError(f"patch {target}: HTTP {exc.status}: {_status_message(exc)}") from None
                log.info("patch %s: conflict (%s); reading it again", target, _status_message(exc))
        raise ClusterApiError(
            f"patch {target}: still conflicting after {self.retry.conflict_attempts} fresh reads; "
            f"another controller keeps changing it (an HPA or KEDA on the same workload?)"
        )

    def _patch_dgd_replicas(self, replicas: Mapping[str, int]) -> bool:
        """Patch ``spec.services.<name>.replicas`` of the DGD; True when something changed."""
        from kubernetes.client.exceptions import ApiException

        target = f"dynamographdeployment/{self.dgd_name}"
        for _ in range(self.retry.conflict_attempts):
            dgd = self._get_dgd()
            services = obj_at(dgd, "spec", "services", what=target)
            changes = {
                svc: {"replicas": n}
                for svc, n in replicas.items()
                if count_at(services, svc, "replicas", what=target) != n
            }
            if not changes:
                return False
            body = {
                "metadata": {"resourceVersion": at(dgd, "metadata", "resourceVersion", what=target)},
                "spec": {"services": changes},
            }
            try:
                self._call(
                    DGD_PATCH,
                    target,
                    self.custom.patch_namespaced_custom_object,
                    DGD_GROUP,
                    DGD_VERSION,
                    self.namespace,
                    DGD_PLURAL,
                    self.dgd_name,
                    body,
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                )
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise ClusterApiError(f"patch {target}: HTTP {exc.status}: {_status_message(exc)}") from None
                log.info("patch %s: conflict (%s); reading it again", target, _status_message(exc))
        raise ClusterApiError(
            f"patch {target}: still conflicting after {self.retry.conflict_attempts} fresh reads; "
            f"something else keeps changing it"
        )

    def _read_workload(self, kind: str, name: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        read = self.apps.read_namespaced_deployment if kind == "deployment" else self.apps.read_namespaced_stateful_set
        try:
            return self._as_dict(
                self._call(WORKLOAD_GET[kind], f"{kind}/{name}", read, name, self.namespace, _preload_content=False),
                f"{kind}/{name}",
            )
        except ApiException as exc:
            if exc.status == 404:
                raise DeploymentNotFoundError(
                    f"{kind} {name!r} not found in namespace {self.namespace!r}; check --prefill-workload / "
                    f"--decode-workload and --kubernetes-namespace"
                ) from None
            raise ClusterApiError(f"get {kind}/{name}: HTTP {exc.status}: {_status_message(exc)}") from None

    # -- the Connector protocol ------------------------------------------------------------------
    def validate(self) -> DeploymentInfo:
        """Find the worker services, check their model names and GPU counts; all problems at once."""
        errors: list[ConnectorError] = []
        infos: list[ServiceInfo] = []
        if self.workloads:
            where = "the workloads"
            for pool, (kind, wname) in self.workloads.items():
                infos.append(_workload_info(pool, f"{kind}/{wname}", self._read_workload(kind, wname)))
        else:
            where = f"DynamoGraphDeployment {self.dgd_name!r}"
            dgd = self._get_dgd()
            services = obj_at(dgd, "spec", "services", what=where)
            names = self.config.component_names()
            found = find_services(services, self.pools, names._asdict(), errors)
            infos = [service_info(pool, svc, services[svc]) for pool, svc in found.items()]
            if not errors:
                self._services = found
        model = check_models_and_gpus(infos, self.config.model_name, errors, where)
        if errors:
            raise DeploymentValidationError(errors)
        by_pool = {info.pool: info for info in infos}
        return DeploymentInfo(
            model_name=model,
            prefill_engine_num_gpu=by_pool["prefill"].gpus if "prefill" in by_pool else None,
            decode_engine_num_gpu=by_pool["decode"].gpus if "decode" in by_pool else None,
            prefill_component=by_pool["prefill"].name if "prefill" in by_pool else None,
            decode_component=by_pool["decode"].name if "decode" in by_pool else None,
        )

    def _service_names(self) -> dict[str, str]:
        if self._services is None and not self.workloads:
            self.validate()
        return dict(self._services or {})

    def current_replicas(self) -> Replicas:
        """Replicas asked for: the scaling adapters' where they exist, else the DGD's spec."""
        values: dict[str, int | None] = {"prefill": None, "decode": None}
        if self.workloads:
            for pool, (kind, wname) in self.workloads.items():
                read, _ = self._scale_api(kind)
                target = f"{kind}/{wname}/scale"
                scale = self._as_dict(
                    self._call(WORKLOAD_SCALE_GET[kind], target, read, wname, _preload_content=False), target
                )
                values[pool] = count_at(scale, "spec", "replicas", what=target)
            return Replicas(values["prefill"], values["decode"])
        services = self._service_names()
        adapters = self._adapters()
        what = f"DynamoGraphDeployment {self.dgd_name!r}"
        spec = obj_at(self._get_dgd(), "spec", "services", what=what)
        for pool, svc in services.items():
            if svc in adapters:
                read, _ = self._scale_api("adapter")
                target = f"dynamographdeploymentscalingadapter/{adapters[svc]}/scale"
                scale = self._as_dict(
                    self._call(ADAPTER_SCALE_GET, target, read, adapters[svc], _preload_content=False), target
                )
                values[pool] = count_at(scale, "spec", "replicas", what=target)
            else:
                values[pool] = count_at(spec, svc, "replicas", what=what)
        return Replicas(values["prefill"], values["decode"])

    def _readiness(self) -> tuple[Replicas, list[str]]:
        """Ready replicas per pool and the reasons the deployment is not settled (empty = settled)."""
        ready: dict[str, int | None] = {"prefill": None, "decode": None}
        reasons: list[str] = []
        if self.workloads:
            for pool, (kind, wname) in self.workloads.items():
                obj = self._read_workload(kind, wname)
                what = f"{kind}/{wname}"
                spec_n = count_at(obj, "spec", "replicas", what=what) or 0
                status = obj_at(obj, "status", what=what)
                n_workload_ready = count_at(status, "readyReplicas", what=what) or 0
                updated = count_at(status, "updatedReplicas", what=what)
                updated = updated or count_at(status, "currentReplicas", what=what) or 0
                ready[pool] = n_workload_ready
                running = count_at(status, "replicas", what=what) or 0
                if n_workload_ready < spec_n or updated < spec_n:
                    reasons.append(f"{pool}: {n_workload_ready} of {spec_n} ready")
                elif running > spec_n:
                    reasons.append(f"{pool}: {running - spec_n} terminating")
                generation = count_at(obj, "metadata", "generation", what=what)
                if generation is not None and (count_at(status, "observedGeneration", what=what) or 0) < generation:
                    reasons.append(f"{pool}: change not yet observed by its controller")
            return Replicas(ready["prefill"], ready["decode"]), reasons
        services = self._service_names()
        dgd = self._get_dgd()
        ok, why = dgd_ready_condition(dgd)
        if not ok:
            reasons.append(f"DynamoGraphDeployment not Ready: {why}")
        spec = obj_at(dgd, "spec", "services", what=f"DynamoGraphDeployment {self.dgd_name!r}")
        for pool, svc in services.items():
            n_ready = ready[pool] = service_ready_replicas(dgd, svc)
            wanted = count_at(spec, svc, "replicas", what=f"DynamoGraphDeployment {self.dgd_name!r}")
            if wanted is not None and (n_ready or 0) < wanted:
                reasons.append(f"{pool}: {n_ready or 0} of {wanted} ready")
        return Replicas(ready["prefill"], ready["decode"]), reasons

    def ready_replicas(self) -> Replicas:
        return self._readiness()[0]

    def rolling_out(self) -> str | None:
        reasons = self._readiness()[1]
        return "; ".join(reasons) or None

    def scale_components(self, replicas: Mapping[str, int]) -> bool:
        """Set several components at once (``{component name: replicas}``); True if any changed."""
        if not replicas:
            raise ConnectorError("no target replicas given: name at least one component")
        changed = False
        if self.workloads:
            kinds = {f"{kind}/{wname}": kind for kind, wname in self.workloads.values()}
            for component, n in replicas.items():
                kind, _, wname = component.partition("/")
                if component not in kinds:
                    raise ConnectorError(f"{component!r} is not a workload this planner scales ({', '.join(kinds)})")
                changed |= self._set_scale(kind, wname, n)
            return changed
        adapters = self._adapters()
        rest = {}
        for svc, n in replicas.items():
            if svc in adapters:
                changed |= self._set_scale("adapter", adapters[svc], n)
            else:
                rest[svc] = n
        if rest:
            changed |= self._patch_dgd_replicas(rest)
        return changed

    def apply(self, targets: Replicas, decision_id: int | None, requested_at: datetime) -> ScalingOutcome:
        if self.workloads:
            names = {pool: f"{kind}/{wname}" for pool, (kind, wname) in self.workloads.items()}
        else:
            names = self._service_names()
        changed = self.scale_components(component_targets(targets, names))
        return ScalingOutcome(
            connector=self.name,
            requested=targets,
            outcome="applied" if changed else "unchanged",
            requested_at=requested_at,
            acknowledged_at=requested_at,
        )


def _workload_info(pool: str, name: str, obj: Mapping[str, Any]) -> ServiceInfo:
    """Model name and GPUs of a plain workload's first container (the engine)."""
    containers = list_at(obj, "spec", "template", "spec", "containers", what=name)
    main = obj_at(containers[0] if containers else None, what=f"{name} spec.template.spec.containers[0]")
    command = list_at(main, "command", what=name) + list_at(main, "args", what=name)
    tokens = [str(t) for t in command]
    return ServiceInfo(
        pool=pool,
        name=name,
        model_name=model_name_from_args(tokens),
        gpus=gpu_count(obj_at(main, "resources", what=name), keys=("nvidia.com/gpu", "gpu")),
        replicas=count_at(obj, "spec", "replicas", what=name),
    )
