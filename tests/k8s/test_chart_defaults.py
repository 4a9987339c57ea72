"""The chart as a user installs it: `helm install trainbox charts/trainbox --set sandbox.enabled=true`, nothing else.

The chart's defaults name the images `make images` publishes to the test bed's registry (multi-arch lists, the
operator's included, so the operator pod may land on either architecture) and a sandbox sized for this machine:
one amd64 and one arm64 worker pod. The sandbox becomes Ready on real pods, and the SDK, from outside the cluster
through the front's NodePort, plays a BFCL ground truth to 1.0 on each architecture — checked on the node under
the pod and on the machine the host process sees, not only on the labels we wrote.

The only flag besides the command's is `--namespace`: a fresh one, so that nothing outlives the test.
Its own module: the default operator watches every namespace, so no other sandbox may exist meanwhile.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from trainbox import TrainingSandbox

from tests.bfcl_replay import multi_turn_steps
from tests.lanes import whole_machine

from .cluster import Cluster
from .images import published
from .kube import wait_until
from .nodeset import NodeSet
from .operator_kit import condition, get_cr
from .test_cluster_e2e import CHART, READY_TIMEOUT, RELEASE, SANDBOX, _dump, helm, uninstall

# the module's install (Ready on an emulated arm64 node too) is part of its first test's time
pytestmark = [pytest.mark.k8s, pytest.mark.timeout(1800)]


@dataclass
class Defaults:
    namespace: str
    endpoint: str
    ready_seconds: float


def _pods(api: k8s.ApiClient, namespace: str, selector: str) -> list[k8s.V1Pod]:
    pods = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if not p.metadata.deletion_timestamp]


def _node_arch(api: k8s.ApiClient, node: str) -> str:
    return str(k8s.CoreV1Api(api).read_node(node).metadata.labels["kubernetes.io/arch"])


def _hosts(endpoint: str) -> list[dict[str, Any]]:
    try:
        return list(httpx.get(f"{endpoint}/v1/hosts", timeout=10).json()["hosts"])
    except (httpx.HTTPError, ValueError, KeyError):
        return []


@pytest.fixture(scope="module")
def defaults(
    k8s_cluster: Cluster, kube_api: k8s.ApiClient, real_nodes: NodeSet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Defaults]:
    if {"amd64", "arm64"} - {n.spec.arch for n in real_nodes.nodes}:
        pytest.skip("the chart's default sandbox needs an amd64 and an arm64 node (TRAINBOX_REAL_NODES)")
    images = published()
    for name in ("operator", "server"):  # what the defaults name must be there for both architectures
        assert images[name]["archs"] == "amd64,arm64", f"{name} is not published for both architectures: {images}"
    core = k8s.CoreV1Api(kube_api)
    namespace = f"defaults-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"trainbox.dev/test": "true"}}})
    work = tmp_path_factory.mktemp("defaults")
    began = time.monotonic()
    try:
        with whole_machine():  # Ray starts under qemu-user on the arm64 worker pod: the rest of `make test` yields
            helm(k8s_cluster, work, "install", RELEASE, str(CHART), "--set", "sandbox.enabled=true",
                 "--namespace", namespace)  # fmt: skip
            wait_until("the default sandbox is Ready",
                       lambda: condition(get_cr(kube_api, namespace, "trainingsandboxes", SANDBOX), "Ready")
                       .get("status") == "True", timeout=READY_TIMEOUT)  # fmt: skip
            ready_seconds = time.monotonic() - began
            node_port = core.read_namespaced_service(SANDBOX, namespace).spec.ports[0].node_port
            endpoint = f"http://{real_nodes.nodes[0].net.node_ip}:{node_port}"
            wait_until("a host on each worker pod",
                       lambda: len([h for h in _hosts(endpoint) if h.get("alive")]) == 2, timeout=300)  # fmt: skip
        print(f"\nthe chart's default sandbox Ready on real pods in {ready_seconds:.0f}s; endpoint {endpoint}")
        yield Defaults(namespace, endpoint, ready_seconds)
    except BaseException:
        _dump(kube_api, namespace)
        raise
    finally:
        uninstall(k8s_cluster, core, namespace)


def test_the_defaults_give_a_ready_sandbox_on_both_architectures(defaults: Defaults, kube_api: k8s.ApiClient) -> None:
    ns = defaults.namespace
    (operator,) = _pods(kube_api, ns, "app.kubernetes.io/name=trainbox-operator")
    assert operator.spec.containers[0].image == "127.0.0.1:5055/trainbox/operator:0.1.0"  # the chart's default
    assert operator.status.phase == "Running"
    status = get_cr(kube_api, ns, "trainingsandboxes", SANDBOX)["status"]
    assert status["readyWorkers"] == {"amd64": 1, "arm64": 1}
    workers = _pods(kube_api, ns, "ray.io/node-type=worker")
    assert sorted(_node_arch(kube_api, p.spec.node_name) for p in workers) == ["amd64", "arm64"]
    for pod in workers:
        assert pod.status.phase == "Running"
        assert pod.spec.containers[0].image == "127.0.0.1:5055/trainbox/server:0.1.0"
        assert pod.spec.node_selector["kubernetes.io/arch"] == _node_arch(kube_api, pod.spec.node_name)


@pytest.mark.parametrize(("arch", "machine"), [("amd64", "x86_64"), ("arm64", "aarch64")])
def test_each_architecture_plays_a_ground_truth_to_one(
    defaults: Defaults, kube_api: k8s.ApiClient, arch: str, machine: str
) -> None:
    """`create(arch=...)` lands on the worker pod of that architecture (the node under it says so, and so does
    the machine its host process runs on) and a BFCL ground truth plays to 1.0 there."""
    task_id = "multi_turn_base_3"
    with TrainingSandbox(base_url=defaults.endpoint, timeout=600) as box:
        instance_id = box.create_instance("bfcl", task_id, arch=arch)["info"]["instance_id"]
        (host,) = [h for h in _hosts(defaults.endpoint) if h.get("live")]
        for message in [m for turn in multi_turn_steps(task_id) for m in turn]:
            result = box.step(instance_id, message)
        assert result["is_terminated"] and result["reward"] == 1.0
        box.release_instance(instance_id)
    (pod,) = [p for p in _pods(kube_api, defaults.namespace, "ray.io/node-type=worker")
              if p.status.pod_ip == host["node_ip"]]  # fmt: skip
    assert pod.metadata.labels["ray.io/group"] == f"workers-{arch}"
    assert _node_arch(kube_api, pod.spec.node_name) == arch
    assert host["arch"] == arch and host["machine"] == machine
