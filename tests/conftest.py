"""Shared fixtures: a real two-node Ray cluster (amd64 + arm64 labels) and a real trainbox service on it; the
fast lane's in-process hosts and app (tests/fastlane.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import datasets
from tests.servicekit import RayCluster, Service, start_service

if TYPE_CHECKING:
    from trainbox_server.hosts.local_hosts import LocalHosts

    from tests.fastlane import App

pytest_plugins = ["tests.cputime"]  # each test's CPU time, when `make test` counts it per lane


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``slow`` marks every test that starts Ray, a service process, worker pools or a cluster: the k8s, images
    and appworld markers imply it (their tests start a control plane, containers or AppWorld's pools)."""
    for item in items:
        if any(item.get_closest_marker(name) for name in ("k8s", "images", "appworld")):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = RayCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def service(ray_cluster: RayCluster) -> Iterator[Service]:
    """One shared service (BFCL served) for tests that do not need special settings."""
    svc = start_service(ray_cluster.address, TRAINBOX_HOSTS_PER_NODE="1")
    yield svc
    svc.stop()


def build_dataset(family: str, builder_module: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset of ``family`` in its own format, built by the project's builder in the family's venv
    (cached between runs by its inputs: tests/datasets.py); the test session's own copy."""
    try:
        return datasets.dataset(family, builder_module, tmp_path_factory.mktemp(f"{family}-data"))
    except RuntimeError as missing:
        pytest.fail(str(missing))


@pytest.fixture(scope="session")
def appworld_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small AppWorld dataset in AppWorld's own format, built through the engine by the project's builder."""
    return build_dataset("appworld", "trainbox_server.envs.appworld.dataset", tmp_path_factory)


@pytest.fixture(scope="session")
def local_hosts() -> Iterator[LocalHosts]:
    """The fast lane's hosts: in this process, real BFCL workers, no Ray (imported here: only it needs them)."""
    from tests.fastlane import HOST_SETTINGS, LocalHosts

    hosts = LocalHosts(HOST_SETTINGS, archs=("amd64", "arm64")).start()
    yield hosts
    hosts.stop()


@pytest.fixture(scope="module")
def app(local_hosts: LocalHosts) -> Iterator[App]:
    """The fast lane's app with the default settings, shared by a module."""
    from tests.fastlane import local_app

    with local_app(local_hosts) as running:
        yield running


@pytest.fixture(scope="session")
def webshop_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small WebShop catalogue in WebShop's own format, with its Lucene index, built by the project's builder."""
    return build_dataset("webshop", "trainbox_server.envs.webshop.generate", tmp_path_factory)
