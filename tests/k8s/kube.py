"""Talking to the local control plane: the objects it is bootstrapped with (KubeRay CRDs, kwok fake nodes)
and a polling helper for tests.

The fake nodes are the test bed's scale "machines": two amd64 and two arm64, labelled like real ones
(`kubernetes.io/arch`, `kubernetes.io/os`, `kubernetes.io/hostname`), with the capacity of a mid-size VM
and an InternalIP on loopback (127.0.1.x), so anything that reads a node or pod address sees loopback only.
They carry the taint KWOK_TAINT, so that only pods that tolerate it land there (real nodes run the rest):
a namespace made with KWOK_NAMESPACE_ANNOTATIONS gives every pod in it that toleration and a node selector
for the KWOK nodes (the apiserver's PodTolerationRestriction and PodNodeSelector admission plugins).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

__all__ = [
    "KWOK_ANNOTATION",
    "KWOK_NAMESPACE_ANNOTATIONS",
    "KWOK_TAINT",
    "NODES",
    "client",
    "crds_established",
    "create_nodes",
    "install_crds",
    "load_crds",
    "nodes_ready",
    "wait_until",
]

T = TypeVar("T")
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_TAINT = {"key": "trainbox.dev/kwok", "value": "true", "effect": "NoSchedule"}
KWOK_NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "type=kwok",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": KWOK_TAINT["key"], "operator": "Exists", "effect": KWOK_TAINT["effect"]}]
    ),
}
NODES: tuple[tuple[str, str], ...] = (
    ("kwok-amd64-0", "amd64"),
    ("kwok-amd64-1", "amd64"),
    ("kwok-arm64-0", "arm64"),
    ("kwok-arm64-1", "arm64"),
)
CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "200Gi"}
_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_NOT_READY_TAINT = "node.kubernetes.io/not-ready"


# Every wait of this run: (what, seconds, test). The k8s conftest prints the longest at the end of the run:
# the cluster tests mostly wait (pods starting, Ray noticing a dead node, TTLs), so that is where their time goes.
WAITS: list[tuple[str, float, str]] = []


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy and return that; fail saying what never happened."""
    began = time.monotonic()
    deadline = began + timeout
    last = None
    try:
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(every)
    finally:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        WAITS.append((what, time.monotonic() - began, test))
    raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what} (last probe: {last!r})")


@contextlib.contextmanager
def client(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    """An API client for the admin kubeconfig, closed on exit."""
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


def load_crds(paths: list[Path]) -> list[dict]:
    """Parse CRD manifests. The KubeRay ones are ~3 MB of YAML, seconds of CPU to parse, so the result is
    kept as JSON beside them (`.crds.json`, rebuilt when a manifest is newer)."""
    if not paths:
        return []
    cache = paths[0].parent / ".crds.json"
    if cache.exists() and all(cache.stat().st_mtime >= p.stat().st_mtime for p in paths):
        cached = json.loads(cache.read_text())
        if cached.get("paths") == [str(p) for p in paths]:
            return cached["docs"]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [doc for path in paths for doc in yaml.load_all(path.read_text(), Loader=loader) if doc]
    with contextlib.suppress(OSError):  # a read-only cache dir only costs the parse next time
        partial = cache.with_name(f"{cache.name}.{os.getpid()}")
        partial.write_text(json.dumps({"paths": [str(p) for p in paths], "docs": docs}))
        partial.replace(cache)  # atomic: a concurrent run never reads half a file
    return docs


def _raw(api: k8s.ApiClient, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    # The KubeRay CRDs are megabytes of schema: plain JSON avoids validating them into client models.
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    response = api.call_api(method, api.configuration.host + path, header_params=headers, body=body)
    data = response.read() or b"{}"
    try:
        return response.status, json.loads(data)
    except ValueError:  # e.g. a plain-text "404 page not found"
        return response.status, {"message": data.decode(errors="replace")}


def install_crds(api: k8s.ApiClient, crds: list[dict]) -> None:
    """Create the CRDs (existing ones are left alone)."""
    with ThreadPoolExecutor(len(crds) or 1) as pool:
        replies = list(pool.map(lambda doc: _raw(api, "POST", _CRD_PATH, doc), crds))
    for doc, (status, reply) in zip(crds, replies, strict=True):
        if status not in (201, 409):
            raise RuntimeError(f"creating CRD {doc['metadata']['name']} failed ({status}): {reply.get('message')}")


def crds_established(api: k8s.ApiClient, crds: list[dict]) -> bool:
    """Whether every served version of every CRD is in API discovery (asking for the CRDs themselves
    would fetch megabytes of schema on every poll)."""
    wanted: dict[str, set[str]] = {}
    for doc in crds:
        spec = doc["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                wanted.setdefault(f"/apis/{spec['group']}/{version['name']}", set()).add(spec["names"]["plural"])
    for path, plurals in wanted.items():
        status, reply = _raw(api, "GET", path)
        if status != 200 or not plurals <= {r["name"] for r in reply.get("resources", [])}:
            return False
    return True


def _node(index: int, name: str, arch: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": arch,
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node.kubernetes.io/instance-type": "kwok-16c-64g",
                "type": "kwok",
            },
        },
        "spec": {"taints": [KWOK_TAINT]},
        "status": {
            "capacity": CAPACITY,
            "allocatable": CAPACITY,
            "addresses": [{"type": "InternalIP", "address": f"127.0.1.{index + 1}"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"architecture": arch, "operatingSystem": "linux", "osImage": "kwok", "kernelVersion": "kwok",
                         "kubeletVersion": "kwok", "kubeProxyVersion": "kwok", "containerRuntimeVersion": "kwok",
                         "bootID": "", "machineID": "", "systemUUID": ""},
        },
    }  # fmt: skip


def create_nodes(api: k8s.ApiClient) -> None:
    """Create the kwok fake nodes (kwok then keeps them Ready and runs the pods bound to them)."""
    core = k8s.CoreV1Api(api)
    for index, (name, arch) in enumerate(NODES):
        try:
            core.create_node(_node(index, name, arch))
        except ApiException as exc:
            if exc.status != 409:
                raise


def nodes_ready(api: k8s.ApiClient) -> bool:
    """Whether every fake node is Ready and the node controller has lifted its not-ready taint."""
    nodes = {n.metadata.name: n for n in k8s.CoreV1Api(api).list_node().items}
    for name, _ in NODES:
        node = nodes.get(name)
        if node is None or not node.status.conditions:
            return False
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        tainted = any(t.key == _NOT_READY_TAINT for t in node.spec.taints or [])
        if not ready or tainted:
            return False
    return True
