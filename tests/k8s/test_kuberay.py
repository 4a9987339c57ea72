"""Self-test of the control plane: the real KubeRay operator turns a RayCluster with one worker group per
architecture into a head pod and workers on nodes of the right architecture, and reports its status."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client as k8s

from .kube import NODES, wait_until

pytestmark = pytest.mark.k8s

RAY_IMAGE = "rayproject/ray:2.52.0"  # never pulled: kwok runs the pods
ARCH_OF_NODE = dict(NODES)


def _container(name: str) -> dict:
    return {"name": name, "image": RAY_IMAGE, "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                            "limits": {"cpu": "1", "memory": "2Gi"}}}  # fmt: skip


def _worker_group(arch: str) -> dict:
    return {
        "groupName": f"workers-{arch}",
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": 1,
        "rayStartParams": {},
        "template": {"spec": {"nodeSelector": {"kubernetes.io/arch": arch}, "containers": [_container("ray-worker")]}},
    }


def _ray_cluster(name: str) -> dict:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name},
        "spec": {
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {"spec": {"nodeSelector": {"kubernetes.io/arch": "amd64"},
                                      "containers": [_container("ray-head")]}},
            },
            "workerGroupSpecs": [_worker_group("amd64"), _worker_group("arm64")],
        },
    }  # fmt: skip


def test_raycluster_gets_pods_per_architecture_and_status(kube_api: k8s.ApiClient, namespace: str):
    custom, core = k8s.CustomObjectsApi(kube_api), k8s.CoreV1Api(kube_api)
    custom.create_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters", _ray_cluster("mixed"))

    def ready_status() -> dict | None:
        status = custom.get_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters", "mixed").get("status")
        return status if status and status.get("readyWorkerReplicas") == 2 and status.get("state") == "ready" else None

    status = wait_until("the KubeRay operator reports the RayCluster ready", ready_status, timeout=90)
    assert status["desiredWorkerReplicas"] == 2
    conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
    assert conditions.get("HeadPodReady") == "True"

    pods = core.list_namespaced_pod(namespace, label_selector="ray.io/cluster=mixed").items
    by_group = {p.metadata.labels["ray.io/group"]: p for p in pods}
    assert sorted(by_group) == ["headgroup", "workers-amd64", "workers-arm64"]
    assert all(p.status.phase == "Running" for p in pods)
    assert ARCH_OF_NODE[by_group["workers-arm64"].spec.node_name] == "arm64"
    assert ARCH_OF_NODE[by_group["workers-amd64"].spec.node_name] == "amd64"
    assert ARCH_OF_NODE[by_group["headgroup"].spec.node_name] == "amd64"
    assert ipaddress.ip_address(status["head"]["podIP"]) in ipaddress.ip_network("127.0.0.0/8")
