"""Every manifest a user is told to apply validates against the real apiserver (server-side dry run: the CRDs'
schemas and CEL rules, RBAC objects, the Deployment): the examples in crds/examples, the raw install in
crds/deploy, and the chart as `helm template` renders it with a sandbox. An example that drifts from its
CRD fails here, not in a user's cluster."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from . import kube
from .cluster import Cluster
from .operator_kit import REPO, our_crds

pytestmark = pytest.mark.k8s

RAW_NAMESPACE = "trainbox-system"  # where crds/deploy/operator.yaml puts the operator


@pytest.fixture(scope="module")
def crds(kube_api: k8s.ApiClient) -> None:
    found = our_crds()
    kube.install_crds(kube_api, found)
    kube.wait_until("trainbox CRDs established", lambda: kube.crds_established(kube_api, found), timeout=60)


def dry_run(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    """`kubectl apply --dry-run=server`; fails the test with kubectl's own words."""
    done = subprocess.run(
        [str(cluster.tools.bin("kubectl")), "--kubeconfig", str(cluster.kubeconfig), "apply", "--dry-run=server",
         *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"kubectl apply --dry-run=server {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_examples_validate(crds: None, k8s_cluster: Cluster, namespace: str) -> None:
    out = dry_run(k8s_cluster, "-n", namespace, "-f", str(REPO / "crds" / "examples"))
    assert "trainingsandbox.trainbox.dev/demo created (server dry run)" in out
    assert "traininginstance.trainbox.dev/bfcl-base-0 created (server dry run)" in out


@pytest.fixture
def raw_namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    """crds/deploy's namespace, made for real (a dry run of objects in a namespace that does not exist fails)."""
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": RAW_NAMESPACE, "labels": {"trainbox.dev/test": "true"}}})
    yield RAW_NAMESPACE
    core.delete_namespace(RAW_NAMESPACE)
    kube.wait_until(f"{RAW_NAMESPACE} is gone", lambda: _gone(core, RAW_NAMESPACE), timeout=120)


def _gone(core: k8s.CoreV1Api, name: str) -> bool:
    return name not in {n.metadata.name for n in core.list_namespace().items}


def test_the_raw_install_validates(crds: None, k8s_cluster: Cluster, raw_namespace: str) -> None:
    out = dry_run(k8s_cluster, "-f", str(REPO / "crds" / "deploy"))
    for made in ("serviceaccount/trainbox-operator", "clusterrole.rbac.authorization.k8s.io/",
                 "deployment.apps/trainbox-operator"):  # fmt: skip
        assert made in out, out


def test_the_rendered_chart_validates(crds: None, k8s_cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    env = {**os.environ, **{f"HELM_{kind}_HOME": str(tmp_path / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}}
    rendered = subprocess.run(
        [str(k8s_cluster.tools.bin("helm")), "template", "trainbox", str(REPO / "charts" / "trainbox"),
         "--namespace", namespace, "--set", "sandbox.enabled=true",
         "--set-json", 'sandbox.appworldData={"hostPath":"/srv/appworld"}',
         "--set-json", 'sandbox.webshopData={"claimName":"webshop"}'],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    out = dry_run(k8s_cluster, "-n", namespace, "-f", "-", stdin=rendered)
    assert "trainingsandbox.trainbox.dev/trainbox created (server dry run)" in out, out
    assert "deployment.apps/trainbox-operator created (server dry run)" in out, out
