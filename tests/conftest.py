"""Shared fixtures: a real two-node Ray cluster (amd64 + arm64 labels) and a real trainbox service on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servicekit import RayCluster, Service, start_service


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
