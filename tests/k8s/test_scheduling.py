"""Self-test of the control plane: the real scheduler places pods by node architecture, kwok runs them,
KWOK's node and pod addresses are on loopback and Services get addresses in the Service range."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client as k8s

from .components import SERVICE_CIDR
from .kube import NODES, wait_until

pytestmark = pytest.mark.k8s

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SERVICE_RANGE = ipaddress.ip_network(SERVICE_CIDR)
IMAGE = "registry.invalid/trainbox/never-pulled:1"  # kwok runs pods without pulling anything


def _deployment(name: str, arch: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"kubernetes.io/arch": arch},
                    "containers": [{"name": "main", "image": IMAGE,
                                    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}],
                },
            },
        },
    }  # fmt: skip


@pytest.mark.parametrize("arch", ["arm64", "amd64"])
def test_deployment_pods_land_on_nodes_of_its_architecture(kube_api: k8s.ApiClient, namespace: str, arch: str):
    k8s.AppsV1Api(kube_api).create_namespaced_deployment(namespace, _deployment(f"on-{arch}", arch, 4))
    core = k8s.CoreV1Api(kube_api)

    def running_pods() -> list[k8s.V1Pod]:
        pods = core.list_namespaced_pod(namespace, label_selector=f"app=on-{arch}").items
        return pods if len(pods) == 4 and all(p.status.phase == "Running" for p in pods) else []

    pods = wait_until(f"4 {arch} pods are Running", running_pods)
    arch_nodes = {name for name, node_arch in NODES if node_arch == arch}
    assert {p.spec.node_name for p in pods} <= arch_nodes
    for pod in pods:
        assert ipaddress.ip_address(pod.status.pod_ip) in LOOPBACK
        assert ipaddress.ip_address(pod.status.host_ip) in LOOPBACK


def test_pod_for_missing_architecture_stays_pending_with_scheduler_reason(kube_api: k8s.ApiClient, namespace: str):
    core = k8s.CoreV1Api(kube_api)
    pod = {
        "metadata": {"name": "wants-s390x"},
        "spec": {"nodeSelector": {"kubernetes.io/arch": "s390x"}, "containers": [{"name": "main", "image": IMAGE}]},
    }
    core.create_namespaced_pod(namespace, pod)

    def unschedulable() -> k8s.V1PodCondition | None:
        status = core.read_namespaced_pod("wants-s390x", namespace).status
        return next((c for c in status.conditions or [] if c.type == "PodScheduled" and c.status == "False"), None)

    condition = wait_until("the scheduler reports wants-s390x unschedulable", unschedulable)
    assert condition.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in condition.message
    assert core.read_namespaced_pod("wants-s390x", namespace).status.phase == "Pending"


def test_kwok_nodes_get_loopback_addresses_and_services_the_service_range(kube_api: k8s.ApiClient, namespace: str):
    core = k8s.CoreV1Api(kube_api)
    nodes = [n for n in core.list_node().items if n.metadata.name in dict(NODES)]
    assert sorted(n.metadata.labels["kubernetes.io/arch"] for n in nodes) == ["amd64", "amd64", "arm64", "arm64"]
    for node in nodes:
        for address in node.status.addresses:
            if address.type == "InternalIP":
                assert ipaddress.ip_address(address.address) in LOOPBACK
    service = {"metadata": {"name": "svc"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}
    created = core.create_namespaced_service(namespace, service)
    assert ipaddress.ip_address(created.spec.cluster_ip) in SERVICE_RANGE
