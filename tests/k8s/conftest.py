"""Fixtures for tests against the local Kubernetes control plane.

`k8s_cluster` (session): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with two amd64
and two arm64 fake nodes (tainted), and the KubeRay operator, started once per run from the binaries that
`make k8s-tools` builds. `kube_api` is an admin API client; `namespace` is a fresh random namespace per test
whose pods run on the KWOK nodes. `real_nodes` (session, started on first use) adds real nodes (nodeset.py):
a native amd64 kubelet and an arm64 kubelet under qemu-user, each with its own containerd, plus kube-proxy and
CoreDNS; `node_namespace` is a fresh namespace whose pods run there.
When a test that used the cluster fails, its report gets the component log paths and their last lines;
the logs stay under pytest's base temp dir (`k8s*/logs`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from . import kube
from .cluster import Cluster
from .components import ToolsMissing
from .nodeset import NodeSet

_CLUSTER = pytest.StashKey[Cluster]()
_NODES = pytest.StashKey[NodeSet]()


@pytest.fixture(scope="session")
def k8s_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The running control plane (started once per test session, stopped at its end)."""
    try:
        cluster = Cluster(tmp_path_factory.mktemp("k8s"))
    except ToolsMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    request.session.stash[_CLUSTER] = cluster
    cluster.start()
    print(f"\nk8s control plane ready in {cluster.ready_seconds:.1f}s (logs: {cluster.logs})")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def kube_api(k8s_cluster: Cluster) -> Iterator[k8s.ApiClient]:
    """An admin API client for the control plane."""
    with kube.client(k8s_cluster.kubeconfig) as api:
        yield api


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace (with its `default` service account) per test, deleted afterwards. Its pods run on
    the KWOK nodes (they tolerate the KWOK taint and select those nodes)."""
    yield from _namespace(kube_api, kube.KWOK_NAMESPACE_ANNOTATIONS)


@pytest.fixture(scope="session")
def real_nodes(request: pytest.FixtureRequest, k8s_cluster: Cluster) -> Iterator[NodeSet]:
    """The real nodes (amd64 native, arm64 under qemu-user), kube-proxy and CoreDNS."""
    try:
        nodes = NodeSet(k8s_cluster)
    except ToolsMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    request.session.stash[_NODES] = nodes
    nodes.start()
    steps = ", ".join(f"{what} {seconds:.1f}s" for what, seconds in nodes.timeline)
    print(f"\nreal nodes ready ({steps})")
    yield nodes
    left = nodes.stop()
    if left:
        print(f"\nreal nodes: left behind after stop: {left}")


@pytest.fixture
def node_namespace(kube_api: k8s.ApiClient, real_nodes: NodeSet) -> Iterator[str]:
    """A fresh namespace whose pods run on the real nodes."""
    yield from _namespace(kube_api, {})


def _namespace(kube_api: k8s.ApiClient, annotations: dict[str, str]) -> Iterator[str]:
    core = k8s.CoreV1Api(kube_api)
    name = f"t-{secrets.token_hex(4)}"
    metadata = {"name": name, "labels": {"trainbox.dev/test": "true"}, "annotations": annotations}
    core.create_namespace({"metadata": metadata})

    def service_account() -> bool:
        try:
            return bool(core.read_namespaced_service_account("default", name))
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    kube.wait_until(f"namespace {name} has its default service account", service_account, timeout=30)
    yield name
    core.delete_namespace(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the control-plane logs to the report of a failing test that used the cluster."""
    report = yield
    cluster = item.session.stash.get(_CLUSTER, None)
    if report.failed and cluster is not None and "k8s_cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("k8s control plane", cluster.report()))
        nodes = item.session.stash.get(_NODES, None)
        if nodes is not None:
            report.sections.append(("real nodes", nodes.report()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The longest waits of the cluster tests: where their time goes (most of it is waiting, not CPU)."""
    if not kube.WAITS:
        return
    terminalreporter.section("longest cluster waits")
    for what, seconds, test in sorted(kube.WAITS, key=lambda w: -w[1])[:15]:
        terminalreporter.write_line(f"{seconds:7.1f}s  {what}  ({test})")
    total = sum(seconds for _, seconds, _ in kube.WAITS)
    terminalreporter.write_line(f"{total:7.1f}s  in all {len(kube.WAITS)} waits")
