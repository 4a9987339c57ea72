"""Self-test of the control plane: ownerReference garbage collection and finalizers behave for real."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .kube import wait_until

pytestmark = pytest.mark.k8s

FINALIZER = "trainbox.dev/test-hold"


def _gone(read) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_deleting_an_owner_garbage_collects_its_children(kube_api: k8s.ApiClient, namespace: str):
    core = k8s.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for index in range(3):
        child = {"metadata": {"name": f"child-{index}", "ownerReferences": [reference]}}
        core.create_namespaced_config_map(namespace, child)

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def children_left() -> bool:
        return not core.list_namespaced_config_map(namespace, field_selector="metadata.name!=kube-root-ca.crt").items

    wait_until("the garbage collector deletes the owner's children", children_left)


def test_deleting_a_deployment_removes_its_replica_sets_and_pods(kube_api: k8s.ApiClient, namespace: str):
    apps, core = k8s.AppsV1Api(kube_api), k8s.CoreV1Api(kube_api)
    labels = {"app": "gc"}
    spec = {"replicas": 2, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "main", "image": "registry.invalid/none:1"}]}}}  # fmt: skip
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "gc"}, "spec": spec})
    wait_until("the Deployment has 2 pods", lambda: len(core.list_namespaced_pod(namespace).items) == 2)

    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Foreground")

    wait_until("the Deployment is gone", lambda: _gone(lambda: apps.read_namespaced_deployment("gc", namespace)))
    assert not apps.list_namespaced_replica_set(namespace).items
    wait_until("its pods are gone", lambda: not core.list_namespaced_pod(namespace).items)


def test_a_finalizer_holds_deletion_until_removed(kube_api: k8s.ApiClient, namespace: str):
    core = k8s.CoreV1Api(kube_api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "held", "finalizers": [FINALIZER]}})

    core.delete_namespaced_config_map("held", namespace)

    held = core.read_namespaced_config_map("held", namespace)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == [FINALIZER]
    patch = [{"op": "remove", "path": "/metadata/finalizers"}]
    core.patch_namespaced_config_map("held", namespace, patch)
    wait_until("the ConfigMap is gone once its finalizer is removed",
               lambda: _gone(lambda: core.read_namespaced_config_map("held", namespace)))  # fmt: skip
