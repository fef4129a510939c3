"""The Kubernetes connector through the real ``kubernetes`` client against a local API server
(tests/fake_kube.py) speaking the paths and JSON bodies of the Kubernetes and Dynamo APIs."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fake_kube import FakeKube
from kubernetes import client

from planner_core.config import make_config
from planner_core.connectors import (
    ClusterApiError,
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
)
from planner_core.connectors.kubernetes import PERMISSIONS, KubernetesConnector, Permission, RetryPolicy
from planner_core.records import Replicas

EXAMPLE_DGD = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "k8s" / "example-dgd.yaml").read_text())
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAST = RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=0.05, timeout_s=(1.0, 0.5))


@pytest.fixture
def kube():
    fake = FakeKube()
    url = fake.start()
    fake.url = url  # type: ignore[attr-defined]
    yield fake
    fake.stop()


def _connector(
    kube: FakeKube, retry: RetryPolicy = FAST, sleeps: list[float] | None = None, **settings
) -> KubernetesConnector:
    configuration = client.Configuration(host=kube.url)  # type: ignore[attr-defined]
    configuration.retries = False
    settings.setdefault("dgd_name", "vllm-disagg")
    return KubernetesConnector(
        make_config(**settings),
        api_client=client.ApiClient(configuration),
        namespace="dynamo",
        retry=retry,
        sleep=(sleeps.append if sleeps is not None else (lambda s: None)),
    )


def _dgd(**service_changes) -> dict:
    dgd = copy.deepcopy(EXAMPLE_DGD)
    for service, change in service_changes.items():
        if change is None:
            del dgd["spec"]["services"][service]
        else:
            dgd["spec"]["services"][service] = change(dgd["spec"]["services"].get(service, {}))
    return dgd


def _spec(kube: FakeKube, service: str) -> int:
    return kube.objects[("dynamographdeployments", "vllm-disagg")]["spec"]["services"][service]["replicas"]


# -- validation ---------------------------------------------------------------------------------


def test_validate_reads_services_model_and_gpus(kube):
    kube.add_dgd(_dgd())
    info = _connector(kube, model_name="Qwen/Qwen3-0.6B").validate()
    assert info.model_name == "Qwen/Qwen3-0.6B"
    assert (info.prefill_engine_num_gpu, info.decode_engine_num_gpu) == (1, 1)
    assert (info.prefill_component, info.decode_component) == ("VllmPrefillWorker", "VllmDecodeWorker")


def test_validate_falls_back_to_backend_component_names(kube):
    def untyped(svc):
        svc.pop("subComponentType")
        return svc

    kube.add_dgd(_dgd(VllmPrefillWorker=untyped, VllmDecodeWorker=untyped))
    info = _connector(kube).validate()
    assert (info.prefill_component, info.decode_component) == ("VllmPrefillWorker", "VllmDecodeWorker")
    # sglang's names are prefill/decode: not in this DGD
    with pytest.raises(DeploymentValidationError) as err:
        _connector(kube, backend="sglang").validate()
    assert [type(e) for e in err.value.errors] == [SubComponentNotFoundError, SubComponentNotFoundError]
    assert "--prefill-component-name" in str(err.value)
    # the component-name settings take effect
    info = _connector(
        kube, backend="sglang", prefill_component_name="VllmPrefillWorker", decode_component_name="VllmDecodeWorker"
    ).validate()
    assert info.decode_component == "VllmDecodeWorker"


def _errors(kube: FakeKube, dgd: dict, **settings) -> list[type]:
    kube.add_dgd(dgd)
    with pytest.raises(DeploymentValidationError) as err:
        _connector(kube, **settings).validate()
    return [type(e) for e in err.value.errors]


def test_missing_sub_component(kube):
    assert _errors(kube, _dgd(VllmDecodeWorker=None)) == [SubComponentNotFoundError]


def test_duplicate_sub_component(kube):
    dgd = _dgd()
    dgd["spec"]["services"]["ExtraDecode"] = copy.deepcopy(dgd["spec"]["services"]["VllmDecodeWorker"])
    assert _errors(kube, dgd) == [DuplicateSubComponentError]


def test_model_names_disagree_between_services(kube):
    def other_model(svc):
        svc["extraPodSpec"]["mainContainer"]["args"] = ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
        return svc

    assert _errors(kube, _dgd(VllmDecodeWorker=other_model)) == [ModelNameMismatchError]


def test_model_name_disagrees_with_the_flag(kube):
    assert _errors(kube, _dgd(), model_name="meta-llama/Llama-3.1-8B-Instruct") == [UserModelNameMismatchError]


def test_model_name_not_found(kube):
    def no_model(svc):
        svc["extraPodSpec"]["mainContainer"]["args"] = []
        return svc

    assert _errors(kube, _dgd(VllmDecodeWorker=no_model, VllmPrefillWorker=no_model)) == [ModelNameNotFoundError]
    # ... unless --model-name says it
    assert _connector(kube, model_name="Qwen/Qwen3-0.6B").validate().model_name == "Qwen/Qwen3-0.6B"


def test_gpu_count_from_limits_then_requests_else_error(kube):
    def requests_only(svc):
        svc["resources"] = {"requests": {"gpu": "2"}}
        return svc

    def no_gpu(svc):
        svc["resources"] = {"limits": {"cpu": "8"}}
        return svc

    kube.add_dgd(_dgd(VllmDecodeWorker=requests_only))
    assert _connector(kube).validate().decode_engine_num_gpu == 2
    assert _errors(kube, _dgd(VllmPrefillWorker=no_gpu)) == [GpuCountNotFoundError]


def test_every_problem_is_reported_at_once(kube):
    def bad(svc):
        svc["resources"] = {}
        svc["extraPodSpec"]["mainContainer"]["args"] = ["--model", "other/model"]
        return svc

    assert _errors(kube, _dgd(VllmPrefillWorker=bad)) == [GpuCountNotFoundError, ModelNameMismatchError]


def test_dgd_not_found_or_not_named(kube):
    with pytest.raises(DeploymentNotFoundError, match="'vllm-disagg' not found in namespace 'dynamo'"):
        _connector(kube).validate()
    with pytest.raises(DeploymentNotFoundError, match="DYN_PARENT_DGD_K8S_NAME is not set"):
        _connector(kube, dgd_name=None)


# -- scaling ------------------------------------------------------------------------------------


def test_scale_patches_the_dgd_without_adapters(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    outcome = conn.apply(Replicas(2, 3), 11, NOW)
    assert outcome.outcome == "applied" and outcome.acknowledged_at == NOW
    assert (_spec(kube, "VllmPrefillWorker"), _spec(kube, "VllmDecodeWorker")) == (2, 3)
    assert _spec(kube, "Frontend") == 1  # untouched
    assert conn.current_replicas() == Replicas(2, 3)
    assert conn.apply(Replicas(2, 3), 12, NOW).outcome == "unchanged"
    assert conn.apply(Replicas(None, 4), 13, NOW).outcome == "applied"
    assert _spec(kube, "VllmPrefillWorker") == 2 and _spec(kube, "VllmDecodeWorker") == 4
    with pytest.raises(EmptyTargetsError):
        conn.apply(Replicas(None, None), 14, NOW)


def test_scale_goes_through_the_scaling_adapter_when_there_is_one(kube):
    kube.add_dgd(_dgd())
    adapter = kube.add_adapter("vllm-disagg", "VllmDecodeWorker")
    conn = _connector(kube)
    assert conn.apply(Replicas(2, 5), 1, NOW).outcome == "applied"
    assert kube.objects[("dynamographdeploymentscalingadapters", adapter)]["spec"]["replicas"] == 5
    assert (
        "PATCH",
        f"/apis/nvidia.com/v1alpha1/namespaces/dynamo/dynamographdeploymentscalingadapters/{adapter}/scale",
    ) in kube.log
    # decode was not patched on the DGD by the planner (the adapter controller wrote it), prefill was
    dgd_patches = [p for m, p in kube.log if m == "PATCH" and p.endswith("/dynamographdeployments/vllm-disagg")]
    assert len(dgd_patches) == 1
    assert (_spec(kube, "VllmPrefillWorker"), _spec(kube, "VllmDecodeWorker")) == (2, 5)
    assert conn.current_replicas() == Replicas(2, 5)


def test_adapter_crd_absent_falls_back_to_the_dgd(kube):
    kube.add_dgd(_dgd())
    kube.adapters_installed = False
    assert _connector(kube).apply(Replicas(1, 2), 1, NOW).outcome == "applied"
    assert _spec(kube, "VllmDecodeWorker") == 2


def test_readiness_from_conditions_and_ready_replicas(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    assert conn.rolling_out() is None and conn.ready_replicas() == Replicas(1, 1)
    conn.apply(Replicas(1, 3), 1, NOW)
    assert conn.rolling_out() == "decode: 1 of 3 ready"
    kube.settle("vllm-disagg", ready=False)
    assert "DynamoGraphDeployment not Ready: Resources not ready" in (conn.rolling_out() or "")
    kube.settle("vllm-disagg")
    assert conn.rolling_out() is None and conn.ready_replicas() == Replicas(1, 3)


@pytest.mark.parametrize("kind", ["deployments", "statefulsets"])
def test_plain_workloads_through_their_scale_subresource(kube, kind):
    singular = kind[:-1]
    kube.add_workload(kind, "prefill", 1)
    kube.add_workload(kind, "decode", 2)
    conn = _connector(kube, dgd_name=None, prefill_workload=f"{singular}/prefill", decode_workload=f"{singular}/decode")
    info = conn.validate()
    assert (info.model_name, info.prefill_engine_num_gpu, info.decode_engine_num_gpu) == ("Qwen/Qwen3-0.6B", 1, 1)
    assert conn.current_replicas() == Replicas(1, 2) and conn.rolling_out() is None
    assert conn.apply(Replicas(3, 2), 1, NOW).outcome == "applied"
    assert kube.objects[(kind, "prefill")]["spec"]["replicas"] == 3
    assert ("PATCH", f"/apis/apps/v1/namespaces/dynamo/{kind}/prefill/scale") in kube.log
    assert conn.rolling_out() == "prefill: 1 of 3 ready; prefill: change not yet observed by its controller"
    kube.settle_workload(kind, "prefill")
    assert conn.rolling_out() is None and conn.ready_replicas() == Replicas(3, 2)


def test_plain_workload_validation_errors(kube):
    kube.add_workload("deployments", "prefill", 1, gpus=None)
    kube.add_workload("deployments", "decode", 1, model="other/model")
    conn = _connector(kube, dgd_name=None, prefill_workload="deployment/prefill", decode_workload="deployment/decode")
    with pytest.raises(DeploymentValidationError) as err:
        conn.validate()
    assert [type(e) for e in err.value.errors] == [GpuCountNotFoundError, ModelNameMismatchError]
    with pytest.raises(DeploymentNotFoundError, match="deployment 'nope' not found"):
        _connector(
            kube, dgd_name=None, prefill_workload="deployment/nope", decode_workload="deployment/decode"
        ).validate()


# -- failures -----------------------------------------------------------------------------------


def test_409_is_retried_on_a_fresh_read(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    conn.validate()
    # Another writer changes the DGD between our read and our patch: our patch carries a stale
    # resourceVersion, the server answers 409, the connector reads again and succeeds.
    kube.fault("PATCH", "/dynamographdeployments/vllm-disagg", concurrent_write=True)
    assert conn.apply(Replicas(1, 4), 1, NOW).outcome == "applied"
    patches = [p for m, p in kube.log if m == "PATCH"]
    assert len(patches) == 2 and _spec(kube, "VllmDecodeWorker") == 4
    # and for the adapter's scale subresource
    adapter = kube.add_adapter("vllm-disagg", "VllmPrefillWorker")
    kube.fault("PATCH", f"/{adapter}/scale", concurrent_write=True)
    assert conn.apply(Replicas(3, 4), 2, NOW).outcome == "applied"
    assert kube.objects[("dynamographdeploymentscalingadapters", adapter)]["spec"]["replicas"] == 3


def test_409_forever_gives_up_with_a_clear_error(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    conn.validate()
    kube.fault("PATCH", "/dynamographdeployments/vllm-disagg", status=409, times=100)
    with pytest.raises(ClusterApiError, match="still conflicting after 5 fresh reads"):
        conn.apply(Replicas(1, 4), 1, NOW)


@pytest.mark.parametrize(("status", "retry_after"), [(429, "0.03"), (500, None), (503, None)])
def test_429_and_5xx_are_retried_with_backoff(kube, status, retry_after):
    kube.add_dgd(_dgd())
    sleeps: list[float] = []
    conn = _connector(kube, sleeps=sleeps)
    kube.fault("GET", "/dynamographdeployments/vllm-disagg", status=status, times=2, retry_after=retry_after)
    assert conn.validate().model_name == "Qwen/Qwen3-0.6B"
    assert sleeps == ([0.03, 0.03] if retry_after else [0.01, 0.02])  # Retry-After, else exponential


def test_5xx_that_persists_fails_after_the_attempts(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    kube.fault("GET", "/dynamographdeployments/vllm-disagg", status=500, times=100)
    with pytest.raises(ClusterApiError, match="failed 4 times; last: HTTP 500"):
        conn.validate()


def test_a_hanging_call_times_out_and_is_retried(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    kube.fault("GET", "/dynamographdeployments/vllm-disagg", hang_s=6.0)  # read timeout is 0.5 s
    started = time.monotonic()
    assert conn.validate().decode_component == "VllmDecodeWorker"
    assert time.monotonic() - started < 5.0  # gave up on the hanging call and retried
    kube.fault("GET", "/dynamographdeployments/vllm-disagg", hang_s=1.0, times=4)
    with pytest.raises(ClusterApiError, match="ReadTimeoutError"):
        conn.validate()


def test_403_names_the_missing_permission(kube):
    kube.add_dgd(_dgd())
    conn = _connector(kube)
    conn.validate()
    kube.fault("PATCH", "/dynamographdeployments/vllm-disagg", status=403)
    with pytest.raises(PermissionDeniedError) as err:
        conn.apply(Replicas(1, 4), 1, NOW)
    message = str(err.value)
    assert "needs verb 'patch' on 'dynamographdeployments' in API group 'nvidia.com'" in message
    assert "deploy/k8s/rbac.yaml" in message and "cannot patch resource" in message


def test_the_connector_calls_only_what_permissions_declares(kube):
    """Every request the tests above make maps to an entry of PERMISSIONS (the Role's source)."""
    kube.add_dgd(_dgd())
    kube.add_adapter("vllm-disagg", "VllmDecodeWorker")
    conn = _connector(kube)
    conn.validate()
    conn.apply(Replicas(2, 3), 1, NOW)
    conn.current_replicas()
    conn.rolling_out()
    for kind in ("deployments", "statefulsets"):
        kube.add_workload(kind, "p", 1)
        kube.add_workload(kind, "d", 1)
        plain = _connector(kube, dgd_name=None, prefill_workload=f"{kind[:-1]}/p", decode_workload=f"{kind[:-1]}/d")
        plain.validate()
        plain.apply(Replicas(2, 2), 1, NOW)
        plain.current_replicas()
        plain.rolling_out()
    used = {Permission(*r) for r in kube.requests}
    assert used == set(PERMISSIONS)
