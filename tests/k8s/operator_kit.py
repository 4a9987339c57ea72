"""Fixtures' helpers for the operator tests: install our CRDs, run the operator out of cluster, poll objects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from . import kube

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "trainbox.dev", "v1alpha1"


def our_crds() -> list[dict]:
    return kube.load_crds(sorted((REPO / "crds").glob("trainbox.dev_*.yaml")))


def start_operator(kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "trainbox_operator", "--kubeconfig", str(kubeconfig), "-A"]
    with open(log, "wb") as out:  # the process keeps its own copy
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            start_new_session=True,
        )


def custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


def get_cr(api: k8s.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        return found
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def sandbox_manifest(name: str, endpoint: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingSandbox",
        "metadata": {"name": name},
        "spec": {
            "image": "trainbox/server:test",
            "workerGroups": [{"arch": "amd64", "replicas": 2}, {"arch": "arm64", "replicas": 2}],
            **spec,
        },
    }
    if endpoint:
        body["spec"]["service"] = {"replicas": 1, "endpointOverride": endpoint}
    return body


def instance_manifest(name: str, sandbox: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingInstance",
        "metadata": {"name": name},
        "spec": {"sandboxRef": {"name": sandbox}, "envType": "bfcl", "taskId": "multi_turn_base_0", **spec},
    }
