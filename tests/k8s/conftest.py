"""Fixtures for tests against the local Kubernetes control plane.

`k8s_cluster` (session): etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok with two amd64
and two arm64 fake nodes, and the KubeRay operator, started once per run from the binaries that
`make k8s-tools` builds. `kube_api` is an admin API client; `namespace` is a fresh random namespace per test.
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

_CLUSTER = pytest.StashKey[Cluster]()


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
    """A fresh namespace (with its `default` service account) per test, deleted afterwards."""
    core = k8s.CoreV1Api(kube_api)
    name = f"t-{secrets.token_hex(4)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"trainbox.dev/test": "true"}}})

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
    return report
