"""deploy/k8s/rbac.yaml grants exactly what the Kubernetes connector calls, and nothing more.

The connector's side is its PERMISSIONS table, which every API call in
planner_core/connectors/kubernetes.py names (and tests/test_k8s_connector.py checks that the
requests it makes against the API server are exactly that table)."""

from __future__ import annotations

from pathlib import Path

import yaml

from planner_core.connectors.kubernetes import PERMISSIONS, Permission

DEPLOY = Path(__file__).parent.parent / "deploy" / "k8s"


def _documents() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text()) if d]


def _role() -> dict:
    (role,) = [d for d in _documents() if d["kind"] == "Role"]
    return role


def test_role_grants_exactly_what_the_connector_calls():
    granted = set()
    for rule in _role()["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], f"wildcard in {key}: {rule}"
        assert "resourceNames" not in rule or rule["resourceNames"], rule
        granted |= {Permission(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert granted == set(PERMISSIONS), (
        f"Role grants more than the connector calls: {sorted(granted - PERMISSIONS)}; "
        f"the connector calls what the Role lacks: {sorted(PERMISSIONS - granted)}"
    )


def test_binding_ties_the_role_to_the_service_account():
    docs = {d["kind"]: d for d in _documents()}
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding"}
    binding, account, role = docs["RoleBinding"], docs["ServiceAccount"], docs["Role"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    assert len({d["metadata"]["namespace"] for d in docs.values()}) == 1


def test_example_dgd_is_what_the_planner_can_drive():
    dgd = yaml.safe_load((DEPLOY / "example-dgd.yaml").read_text())
    assert (dgd["apiVersion"], dgd["kind"]) == ("nvidia.com/v1alpha1", "DynamoGraphDeployment")
    types = sorted(s.get("subComponentType", "") for s in dgd["spec"]["services"].values())
    assert types == ["", "decode", "prefill"]
