"""Cluster DNS: CoreDNS (built from its Go module, image from the loopback registry) as a Deployment behind
the `kube-dns` Service at DNS_IP. It answers for the cluster zone only: no `forward`, so a name outside
cluster.local is refused, never sent to this machine's resolvers. It runs on the host network of the amd64
node (bound to that node's address only) because the apiserver listens on 127.0.0.1, which a pod's own
network namespace cannot reach; it reads Services and endpoints with its own client certificate.
"""

from __future__ import annotations

import base64
import contextlib
import json

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .cluster import Cluster
from .components import DNS_IP
from .nodes import RealNode
from .pki import issue

__all__ = ["deploy", "ready", "remove"]

NS = "kube-system"
USER = "trainbox:coredns"
LABELS = {"k8s-app": "kube-dns"}


def _corefile(bind: str) -> str:
    return f"""cluster.local:53 {{
    bind {bind}
    errors
    ready {bind}:8181
    kubernetes cluster.local {{
        kubeconfig /etc/coredns/kubeconfig trainbox
        pods insecure
    }}
    cache 5
    loadbalance
}}
"""


def _kubeconfig(cluster: Cluster) -> str:
    pki = cluster.pki
    assert pki is not None, "the control plane is not started"
    cert, key = issue(pki, "coredns", USER)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "trainbox", "cluster": {"server": f"https://127.0.0.1:{cluster.apiserver_port}",
                                                      "certificate-authority-data": b64(pki.ca_cert.read_bytes())}}],
        "users": [{"name": "coredns", "user": {"client-certificate-data": b64(cert.read_bytes()),
                                               "client-key-data": b64(key.read_bytes())}}],
        "contexts": [{"name": "trainbox", "context": {"cluster": "trainbox", "user": "coredns"}}],
        "current-context": "trainbox",
    })  # fmt: skip


def deploy(api: k8s.ApiClient, cluster: Cluster, image: str, node: RealNode) -> None:
    """Create (or replace) CoreDNS's RBAC, configuration, Deployment and Service."""
    rbac = k8s.RbacAuthorizationV1Api(api)
    role = {"metadata": {"name": USER}, "rules": [
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
    ]}  # fmt: skip
    binding = {"metadata": {"name": USER},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": USER},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]}  # fmt: skip
    _create(lambda: rbac.create_cluster_role(role))
    _create(lambda: rbac.create_cluster_role_binding(binding))
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    config = {"metadata": {"name": "coredns"},
              "data": {"Corefile": _corefile(node.net.node_ip)},
              "stringData": {"kubeconfig": _kubeconfig(cluster)}}  # fmt: skip
    _create(lambda: core.create_namespaced_secret(NS, {**config, "data": None}))
    _create(lambda: core.create_namespaced_config_map(NS, {"metadata": config["metadata"], "data": config["data"]}))
    pod = {
        "metadata": {"labels": LABELS},
        "spec": {
            "hostNetwork": True,
            "dnsPolicy": "Default",
            "nodeSelector": {"kubernetes.io/hostname": node.spec.name},
            "containers": [{
                "name": "coredns", "image": image, "imagePullPolicy": "IfNotPresent",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
            }],
            "volumes": [{"name": "config", "projected": {"sources": [
                {"configMap": {"name": "coredns"}}, {"secret": {"name": "coredns"}}]}}],
        },
    }  # fmt: skip
    deployment = {"metadata": {"name": "coredns", "labels": LABELS},
                  "spec": {"replicas": 1, "selector": {"matchLabels": LABELS}, "template": pod}}  # fmt: skip
    _create(lambda: apps.create_namespaced_deployment(NS, deployment))
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    service = {"metadata": {"name": "kube-dns", "labels": LABELS},
               "spec": {"clusterIP": DNS_IP, "selector": LABELS, "ports": ports}}  # fmt: skip
    _create(lambda: core.create_namespaced_service(NS, service))


def ready(api: k8s.ApiClient) -> bool:
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment("coredns", NS)
    return (deployment.status.ready_replicas or 0) >= 1


def remove(api: k8s.ApiClient) -> None:
    core, apps, rbac = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.RbacAuthorizationV1Api(api)
    for delete in (lambda: apps.delete_namespaced_deployment("coredns", NS),
                   lambda: core.delete_namespaced_service("kube-dns", NS),
                   lambda: core.delete_namespaced_config_map("coredns", NS),
                   lambda: core.delete_namespaced_secret("coredns", NS),
                   lambda: rbac.delete_cluster_role_binding(USER),
                   lambda: rbac.delete_cluster_role(USER)):  # fmt: skip
        with contextlib.suppress(ApiException):
            delete()


def _create(call) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
    except ApiException as exc:
        if exc.status != 409:
            raise
