"""Self-test of the test bed's helm: it lints a small chart and installs it into the local control plane."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from kubernetes import client as k8s

from .cluster import Cluster
from .kube import NODES

pytestmark = pytest.mark.k8s

CHART = Path(__file__).parent / "chart"


def _helm(cluster: Cluster, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Helm's cache/config/data go to a temp dir: a test run leaves nothing in the user's home.
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}}  # fmt: skip
    result = subprocess.run(
        [str(cluster.tools.bin("helm")), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_helm_lint_passes(k8s_cluster: Cluster, tmp_path: Path):
    result = _helm(k8s_cluster, tmp_path, "lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_helm_install_deploys_the_chart(k8s_cluster: Cluster, kube_api: k8s.ApiClient, namespace: str, tmp_path: Path):
    _helm(k8s_cluster, tmp_path, "install", "demo", str(CHART), "--namespace", namespace, "--wait", "--timeout=90s")

    status = _helm(k8s_cluster, tmp_path, "status", "demo", "--namespace", namespace)
    assert "STATUS: deployed" in status.stdout
    settings = k8s.CoreV1Api(kube_api).read_namespaced_config_map("demo-settings", namespace)
    assert settings.data == {"greeting": "hello from helm"}
    pods = k8s.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="app.kubernetes.io/instance=demo")
    assert len(pods.items) == 2
    assert {dict(NODES)[p.spec.node_name] for p in pods.items} == {"arm64"}
