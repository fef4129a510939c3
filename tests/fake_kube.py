"""A small Kubernetes API server for tests: the real REST paths the Kubernetes connector uses,
with realistic JSON bodies, driven through the official ``kubernetes`` client.

It serves DynamoGraphDeployments, their scaling adapters (list, and the scale subresource,
which like the operator's adapter controller also writes the DGD's service replicas), and
apps/v1 Deployments / StatefulSets (object and scale subresource). Writes honour
``metadata.resourceVersion`` (a stale one is a 409 Status). Faults can be queued per method
and path: any status code, a ``Retry-After`` header, a hang longer than the client's
timeout, or a concurrent writer that changes the object between a read and a write. Every
request is logged as the RBAC triple (group, resource, verb) it needs.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
TIMESTAMP = "2026-01-01T00:00:00Z"


@dataclass
class Fault:
    method: str
    path_contains: str
    status: int | None = None  # respond with this Status code
    hang_s: float = 0.0  # sleep first (longer than the client's read timeout = a hanging call)
    retry_after: str | None = None
    concurrent_write: bool = False  # another writer bumps the object, then the request proceeds
    times: int = 1
    message: str | None = None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


@dataclass
class FakeKube:
    namespace: str = "dynamo"
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (plural, name) -> object
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (group, resource, verb)
    log: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    adapters_installed: bool = True
    _rv: Any = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- objects ---------------------------------------------------------------------------
    def _meta(self, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "uid": f"00000000-0000-4000-8000-{abs(hash(name)) % 10**12:012d}",
            "resourceVersion": str(next(self._rv)),
            "generation": 1,
            "creationTimestamp": TIMESTAMP,
            **extra,
        }

    def add_dgd(self, dgd: dict[str, Any], ready: bool = True) -> dict[str, Any]:
        obj = copy.deepcopy(dgd)
        obj["metadata"] = merge_patch(obj.get("metadata") or {}, self._meta(obj["metadata"]["name"]))
        self.objects[("dynamographdeployments", obj["metadata"]["name"])] = obj
        self.settle(obj["metadata"]["name"], ready=ready)
        return obj

    def settle(self, dgd_name: str, ready: bool = True) -> None:
        """What the operator does once pods are up: status matches spec, Ready condition."""
        obj = self.objects[("dynamographdeployments", dgd_name)]
        services = obj["spec"]["services"]
        obj["status"] = {
            "state": "successful" if ready else "pending",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "AllResourcesReady" if ready else "SomeResourcesAreNotReady",
                    "message": "All resources are ready" if ready else "Resources not ready: VllmDecodeWorker",
                    "lastTransitionTime": TIMESTAMP,
                }
            ],
            "services": {
                name: {
                    "componentKind": "Deployment",
                    "componentName": f"{dgd_name}-{name.lower()}",
                    "replicas": svc.get("replicas", 1),
                    "updatedReplicas": svc.get("replicas", 1),
                    "readyReplicas": svc.get("replicas", 1) if ready else 0,
                    "availableReplicas": svc.get("replicas", 1) if ready else 0,
                }
                for name, svc in services.items()
            },
        }

    def add_adapter(self, dgd_name: str, service: str) -> str:
        """A DynamoGraphDeploymentScalingAdapter as the operator creates it."""
        name = f"{dgd_name}-{service.lower()}"
        replicas = self.objects[("dynamographdeployments", dgd_name)]["spec"]["services"][service].get("replicas", 1)
        self.objects[("dynamographdeploymentscalingadapters", name)] = {
            "apiVersion": "nvidia.com/v1alpha1",
            "kind": "DynamoGraphDeploymentScalingAdapter",
            "metadata": self._meta(
                name,
                labels={"nvidia.com/dgd-name": dgd_name, "nvidia.com/service-name": service},
                ownerReferences=[
                    {
                        "apiVersion": "nvidia.com/v1alpha1",
                        "kind": "DynamoGraphDeployment",
                        "name": dgd_name,
                        "uid": "00000000-0000-4000-8000-000000000001",
                        "controller": True,
                    }
                ],
            ),
            "spec": {"replicas": replicas, "dgdRef": {"name": dgd_name, "serviceName": service}},
            "status": {"replicas": replicas, "selector": f"nvidia.com/selector={dgd_name}-{service.lower()}"},
        }
        return name

    def add_workload(
        self, kind: str, name: str, replicas: int, model: str = "Qwen/Qwen3-0.6B", gpus: str | None = "1"
    ) -> None:
        labels = {"app": name}
        resources = {"limits": {"nvidia.com/gpu": gpus}, "requests": {"cpu": "4", "memory": "32Gi"}} if gpus else {}
        spec: dict[str, Any] = {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "engine",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "args": ["--model", model, "--port", "8000"],
                            "ports": [{"containerPort": 8000, "protocol": "TCP"}],
                            "resources": resources,
                        }
                    ]
                },
            },
        }
        if kind == "statefulsets":
            spec["serviceName"] = name
        else:
            spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
        self.objects[(kind, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment" if kind == "deployments" else "StatefulSet",
            "metadata": self._meta(name, labels=labels),
            "spec": spec,
            "status": {},
        }
        self.settle_workload(kind, name)

    def settle_workload(self, kind: str, name: str) -> None:
        obj = self.objects[(kind, name)]
        n = obj["spec"]["replicas"]
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": n,
            "updatedReplicas": n,
            "readyReplicas": n,
            "availableReplicas": n,
            **({"currentReplicas": n} if kind == "statefulsets" else {}),
        }

    def fault(self, method: str, path_contains: str, **kw: Any) -> None:
        self.faults.append(Fault(method, path_contains, **kw))

    # -- serving -----------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed ACK

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_PATCH(self) -> None:
                fake._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _send(
        self, h: BaseHTTPRequestHandler, code: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        path = h.path.split("?", 1)[0]
        m = PATH.match(path)
        if not m:
            return self._send(
                h, 404, status_body(404, "NotFound", f"the server could not find the requested resource ({path})")
            )
        group, plural, name, sub = m["group"], m["plural"], m["name"], m["sub"]
        verb = {"GET": "get" if name else "list", "PATCH": "patch"}[method]
        resource = f"{plural}/{sub}" if sub else plural
        with self._lock:
            self.requests.append((group, resource, verb))
            self.log.append((method, path))
            fault = next(
                (f for f in self.faults if f.method == method and f.path_contains in path and f.times > 0), None
            )
            if fault is not None:
                fault.times -= 1
        if fault is not None:
            if fault.hang_s:
                time.sleep(fault.hang_s)
            if fault.concurrent_write:
                self._concurrent_write(plural, name)
            elif fault.status is not None:
                reason = {
                    403: "Forbidden",
                    409: "Conflict",
                    429: "TooManyRequests",
                    500: "InternalError",
                    503: "ServiceUnavailable",
                }.get(fault.status, "Unknown")
                message = fault.message or (
                    f'{resource}.{group} "{name}" is forbidden: User "system:serviceaccount:{self.namespace}:'
                    f'sla-planner" cannot {verb} resource "{resource}" in API group "{group}" in the namespace '
                    f'"{self.namespace}"'
                    if fault.status == 403
                    else f"injected {fault.status}"
                )
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                return self._send(h, fault.status, status_body(fault.status, reason, message), headers)
            elif fault.hang_s:
                pass  # a slow but successful answer (the client has usually given up by now)
        if plural == "dynamographdeploymentscalingadapters" and not self.adapters_installed:
            return self._send(h, 404, status_body(404, "NotFound", "the server could not find the requested resource"))
        with self._lock:
            if name is None:
                items = [copy.deepcopy(o) for (p, _), o in sorted(self.objects.items()) if p == plural]
                kind = {"dynamographdeploymentscalingadapters": "DynamoGraphDeploymentScalingAdapterList"}.get(
                    plural, "List"
                )
                return self._send(
                    h,
                    200,
                    {
                        "apiVersion": f"{group}/{m['version']}",
                        "kind": kind,
                        "metadata": {"resourceVersion": "1"},
                        "items": items,
                    },
                )
            obj = self.objects.get((plural, name))
            if obj is None:
                return self._send(
                    h,
                    404,
                    status_body(
                        404,
                        "NotFound",
                        f'{plural}.{group} "{name}" not found',
                        {"name": name, "group": group, "kind": plural},
                    ),
                )
            if sub == "scale":
                if method == "PATCH":
                    body = json.loads(raw or b"{}")
                    rv = (body.get("metadata") or {}).get("resourceVersion")
                    if rv is not None and rv != obj["metadata"]["resourceVersion"]:
                        return self._conflict(h, plural, group, name)
                    n = int(body["spec"]["replicas"])
                    self._set_replicas(plural, name, n)
                return self._send(h, 200, self._scale(obj))
            if method == "PATCH":
                body = json.loads(raw or b"{}")
                rv = (body.get("metadata") or {}).get("resourceVersion")
                if rv is not None and rv != obj["metadata"]["resourceVersion"]:
                    return self._conflict(h, plural, group, name)
                body.setdefault("metadata", {}).pop("resourceVersion", None)
                new = merge_patch(obj, body)
                new["metadata"]["resourceVersion"] = str(next(self._rv))
                new["metadata"]["generation"] = obj["metadata"]["generation"] + 1
                self.objects[(plural, name)] = new
                obj = new
            return self._send(h, 200, copy.deepcopy(obj))

    def _conflict(self, h: BaseHTTPRequestHandler, plural: str, group: str, name: str) -> None:
        msg = (
            f'Operation cannot be fulfilled on {plural}.{group} "{name}": the object has been modified; '
            f"please apply your changes to the latest version and try again"
        )
        return self._send(h, 409, status_body(409, "Conflict", msg, {"name": name, "group": group, "kind": plural}))

    def _concurrent_write(self, plural: str, name: str | None) -> None:
        with self._lock:
            obj = self.objects.get((plural, name or ""))
            if obj is not None:
                obj["metadata"]["resourceVersion"] = str(next(self._rv))
                obj.setdefault("metadata", {}).setdefault("annotations", {})["touched-by"] = "another-writer"

    def _set_replicas(self, plural: str, name: str, n: int) -> None:
        obj = self.objects[(plural, name)]
        obj["spec"]["replicas"] = n
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        obj["metadata"]["generation"] += 1
        if plural == "dynamographdeploymentscalingadapters":
            # The adapter controller writes the DGD's service replicas.
            ref = obj["spec"]["dgdRef"]
            dgd = self.objects[("dynamographdeployments", ref["name"])]
            dgd["spec"]["services"][ref["serviceName"]]["replicas"] = n
            dgd["metadata"]["resourceVersion"] = str(next(self._rv))
            obj["status"]["replicas"] = n
            obj["status"]["lastScaleTime"] = TIMESTAMP

    def _scale(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        status_replicas = (obj.get("status") or {}).get("replicas", obj["spec"]["replicas"])
        selector = (obj.get("status") or {}).get("selector") or ",".join(
            f"{k}={v}" for k, v in ((obj["spec"].get("selector") or {}).get("matchLabels") or {}).items()
        )
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": obj["spec"]["replicas"]},
            "status": {"replicas": status_replicas, "selector": selector},
        }
