"""The Kubernetes base for an AWS ECR source: both workloads run as the ServiceAccount ``specman`` (what IRSA's
annotation and a Pod Identity association name), no object carries an AWS secret, the Pod Identity agent is reachable
through the NetworkPolicies, and the IRSA patch docs/kubernetes.md gives renders the role annotation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.kube import Obj, docs_patches, one, render, render_patched

ROLE = "arn:aws:iam::123456789012:role/specman-ecr-read"


@pytest.fixture(scope="module")
def single() -> list[Obj]:
    return render("overlays/single")


def test_workloads_run_as_the_specman_service_account(single: list[Obj]) -> None:
    account = one(single, "ServiceAccount", "specman")
    assert account["automountServiceAccountToken"] is False
    for kind, name in (("StatefulSet", "specman"), ("Deployment", "specman-console")):
        pod = one(single, kind, name)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "specman", name
        assert pod["automountServiceAccountToken"] is False, name


def test_no_aws_secret_in_any_manifest(single: list[Obj]) -> None:
    text = json.dumps(single)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "aws_secret_access_key"):
        assert name not in text


def test_pod_identity_agent_is_allowed(single: list[Obj]) -> None:
    for name in ("specman", "specman-console"):
        egress = one(single, "NetworkPolicy", name)["spec"]["egress"]
        assert any(
            {"ipBlock": {"cidr": "169.254.170.23/32"}} in rule.get("to", [])
            and {"port": 80, "protocol": "TCP"} in rule.get("ports", [])
            for rule in egress
        ), name


def test_the_documented_irsa_patch(tmp_path: Path) -> None:
    (patch,) = [p for p in docs_patches() if "eks.amazonaws.com/role-arn" in p]
    objects = render_patched("overlays/single", patch, tmp_path / "kustomization")
    account = one(objects, "ServiceAccount", "specman")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE
    assert account["metadata"]["namespace"] == "hubble-system"
