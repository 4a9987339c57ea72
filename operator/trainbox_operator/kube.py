"""Thin Kubernetes I/O for the operator: server-side apply of children, reads of what they became.

Blocking (the official client); the handlers call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import functools
import os
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

FIELD_MANAGER = "trainbox-operator"


@functools.cache
def api() -> client.ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.ApiClient()


@functools.cache
def dynamic() -> DynamicClient:
    return DynamicClient(api())


def _resource(api_version: str, kind: str) -> Any:
    return dynamic().resources.get(api_version=api_version, kind=kind)


def apply(obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply: the operator owns exactly the fields it sets; others' fields are left alone."""
    meta = obj["metadata"]
    result = _resource(obj["apiVersion"], obj["kind"]).server_side_apply(
        body=obj, name=meta["name"], namespace=meta["namespace"], field_manager=FIELD_MANAGER, force_conflicts=True
    )
    applied: dict[str, Any] = result.to_dict()
    return applied


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = _resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        return found
    except NotFoundError:
        return None


def pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = client.CoreV1Api(api()).list_namespaced_pod(namespace, label_selector=selector)
    return [api().sanitize_for_serialization(pod) for pod in listed.items]


def secret_value(namespace: str, name: str, key: str) -> str | None:
    try:
        secret = client.CoreV1Api(api()).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    data = (secret.data or {}).get(key)
    return base64.b64decode(data).decode().strip() if data else None


def patch_instance_status(namespace: str, name: str, status: dict[str, Any]) -> bool:
    """Merge-patch a TrainingInstance's status; False when the resource is gone."""
    return patch_status("traininginstances", namespace, name, status)


def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> bool:
    """Merge-patch one of our resources' status; False when the resource is gone."""
    try:
        client.CustomObjectsApi(api()).patch_namespaced_custom_object_status(
            "trainbox.dev", "v1alpha1", namespace, plural, name, {"status": status}
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_instance(namespace: str, name: str) -> None:
    try:
        client.CustomObjectsApi(api()).delete_namespaced_custom_object(
            "trainbox.dev", "v1alpha1", namespace, "traininginstances", name
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def delete_pod(namespace: str, name: str) -> None:
    try:
        client.CoreV1Api(api()).delete_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
