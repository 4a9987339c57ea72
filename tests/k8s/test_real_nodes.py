"""Self-tests of the real nodes: pods run real processes of each architecture, Services and cluster DNS work
through kube-proxy and CoreDNS, pods have no way out, node info is the kubelet's own, and a stopped node set
leaves nothing behind."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest
from kubernetes import client as k8s

from .cluster import Cluster
from .images import published
from .kube import wait_until
from .nodes import EMULATED_TAINT, NodeSpec, host_arch
from .nodeset import NodeSet

pytestmark = pytest.mark.k8s

UNAME = {"amd64": "x86_64", "arm64": "aarch64"}
CLIENT_ARCH = "arm64"  # the client on the other node: its traffic crosses from one bridge to the other


def _pod(name: str, command: list[str], node_selector: dict[str, str], labels: dict | None = None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": node_selector,
            # The arm64 node's containerd runs under qemu-user, which hides seccomp from it: it then refuses
            # any seccomp profile, including the runtime default it gives pod sandboxes.
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": published()["base"]["ref"], "imagePullPolicy": "IfNotPresent",
                            "command": command}],
        },
    }  # fmt: skip


def _run_to_completion(core: k8s.CoreV1Api, namespace: str, pod: dict, timeout: float = 300) -> tuple[str, str]:
    """Create the pod, wait until it ends, return (phase, logs read through the apiserver)."""
    name = pod["metadata"]["name"]
    core.create_namespaced_pod(namespace, pod)
    phase = wait_until(
        f"pod {name} ends",
        lambda: (p := core.read_namespaced_pod(name, namespace).status.phase) in ("Succeeded", "Failed") and p,
        timeout=timeout,
    )
    return phase, core.read_namespaced_pod_log(name, namespace)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_pod_runs_on_a_real_node_of_its_architecture(kube_api: k8s.ApiClient, node_namespace: str, arch: str):
    core = k8s.CoreV1Api(kube_api)
    pod = _pod(f"uname-{arch}", ["uname", "-m"], {"kubernetes.io/arch": arch})
    phase, logs = _run_to_completion(core, node_namespace, pod)
    assert (phase, logs.strip()) == ("Succeeded", UNAME[arch])
    assert core.read_namespaced_pod(f"uname-{arch}", node_namespace).spec.node_name == f"node-{arch}"


def test_node_info_is_the_kubelets_own(kube_api: k8s.ApiClient, real_nodes: NodeSet):
    core = k8s.CoreV1Api(kube_api)
    for node in real_nodes.nodes:
        info = core.read_node(node.spec.name).status
        assert info.node_info.architecture == node.spec.arch
        assert info.node_info.kernel_version == platform.release()
        assert info.node_info.kubelet_version == "v1.36.3"
        assert info.node_info.container_runtime_version.startswith("containerd://")
        assert info.node_info.os_image.startswith("Debian GNU/Linux")
        assert int(info.capacity["cpu"]) == os.cpu_count()
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        assert info.capacity["memory"] == f"{mem_kib}Ki"
        assert {a.type: a.address for a in info.addresses}["InternalIP"] == node.net.node_ip
        taints = {t.key: t.effect for t in core.read_node(node.spec.name).spec.taints or []}
        emulated = node.spec.arch != host_arch()  # pods go there when they ask for its architecture
        assert taints == ({EMULATED_TAINT["key"]: "PreferNoSchedule"} if emulated else {})


def test_deployment_behind_a_service_answers_through_cluster_ip_and_dns(kube_api: k8s.ApiClient, node_namespace: str):
    core, apps = k8s.CoreV1Api(kube_api), k8s.AppsV1Api(kube_api)
    labels = {"app": "web"}
    server = ("import http.server, socket\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        self.send_response(200); self.end_headers()\n"
              "        self.wfile.write(b'hello from ' + socket.gethostname().encode())\n"
              "http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n")  # fmt: skip
    web = _pod("web", ["python3", "-c", server], {"kubernetes.io/arch": "amd64"}, labels)["spec"]
    web["restartPolicy"] = "Always"
    web["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    template = {"metadata": {"labels": labels}, "spec": web}
    deployment = {"metadata": {"name": "web"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}}  # fmt: skip
    apps.create_namespaced_deployment(node_namespace, deployment)
    ports = [{"port": 80, "targetPort": 8080}]
    service = core.create_namespaced_service(
        node_namespace, {"metadata": {"name": "web"}, "spec": {"selector": labels, "ports": ports}}
    )
    wait_until("web is available",
               lambda: apps.read_namespaced_deployment("web", node_namespace).status.available_replicas)  # fmt: skip
    client = ("import sys, urllib.request\n"
              "for url in sys.argv[1:]:\n"
              "    print(url, urllib.request.urlopen(url, timeout=10).read().decode())\n")  # fmt: skip
    urls = [f"http://{service.spec.cluster_ip}/", f"http://web.{node_namespace}.svc.cluster.local/", "http://web/"]
    pod = _pod("client", ["python3", "-c", client, *urls], {"kubernetes.io/arch": CLIENT_ARCH})
    phase, logs = _run_to_completion(core, node_namespace, pod)
    assert phase == "Succeeded", logs
    assert [line.split(" ", 1)[0] for line in logs.splitlines()] == urls
    assert all(" hello from web-" in line for line in logs.splitlines())


def test_a_pod_has_no_way_out(kube_api: k8s.ApiClient, node_namespace: str):
    """No route leaves the cluster range (203.0.113.1 is TEST-NET-3: never routed anywhere, so even a broken
    set-up sends nothing to a real host) and cluster DNS does not forward names outside cluster.local."""
    probe = ("import errno, socket\n"
             "s = socket.socket()\n"
             "try:\n"
             "    s.connect(('203.0.113.1', 80))\n"
             "except OSError as e:\n"
             "    print('connect', errno.errorcode[e.errno])\n"
             "try:\n"
             "    socket.getaddrinfo('example.com', 80)\n"
             "    print('dns resolved')\n"
             "except socket.gaierror as e:\n"
             "    print('dns failed')\n")  # fmt: skip
    pod = _pod("no-way-out", ["python3", "-c", probe], {"kubernetes.io/arch": "amd64"})
    phase, logs = _run_to_completion(k8s.CoreV1Api(kube_api), node_namespace, pod)
    assert phase == "Succeeded", logs
    assert logs.split() == ["connect", "ENETUNREACH", "dns", "failed"]


def test_pod_for_an_architecture_no_real_node_has_stays_pending(kube_api: k8s.ApiClient, node_namespace: str):
    core = k8s.CoreV1Api(kube_api)
    core.create_namespaced_pod(node_namespace, _pod("wants-riscv64", ["true"], {"kubernetes.io/arch": "riscv64"}))

    def unschedulable() -> k8s.V1PodCondition | None:
        status = core.read_namespaced_pod("wants-riscv64", node_namespace).status
        return next((c for c in status.conditions or [] if c.type == "PodScheduled" and c.status == "False"), None)

    condition = wait_until("the scheduler reports wants-riscv64 unschedulable", unschedulable)
    assert condition.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in condition.message
    assert core.read_namespaced_pod("wants-riscv64", node_namespace).status.phase == "Pending"


def test_a_stopped_node_leaves_nothing_behind(k8s_cluster: Cluster, kube_api: k8s.ApiClient, real_nodes: NodeSet):
    """A node of its own (bridge, containerd, kubelet) runs a pod, then stops: no process, mount, network
    namespace, bridge, filter rule or cgroup of it remains."""
    spare = NodeSet(k8s_cluster, (NodeSpec("node-spare", "amd64", 5),), services=False, tag="spare")
    spare.start()
    core = k8s.CoreV1Api(kube_api)
    namespace = f"spare-{os.getpid()}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        pod = _pod("sleeper", ["sleep", "600"], {"kubernetes.io/hostname": "node-spare"})
        core.create_namespaced_pod(namespace, pod)
        wait_until("sleeper runs", lambda: core.read_namespaced_pod("sleeper", namespace).status.phase == "Running",
                   timeout=120)  # fmt: skip
        assert spare.leftovers(), "a running node should show up in leftovers()"
    finally:
        problems = spare.stop()
        core.delete_namespace(namespace)
    assert problems == []
    assert spare.leftovers() == []
