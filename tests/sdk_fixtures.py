"""Fixtures for the SDK tests: real trainbox services (``tests.servicekit``), as the SDK's users meet them.

Load with ``pytest_plugins = ["tests.sdk_fixtures"]``. The open service is the suite's shared ``service``
(conftest); the restricted one (bearer token, a live-instance limit) runs on the same Ray cluster, and its
settings are in ``restricted_service.env``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servicekit import RayCluster, Service, start_service

TOKEN = "sdk-test-token"
MAX_LIVE = 2


@pytest.fixture(scope="session")
def trainbox_url(service: Service) -> str:
    """URL of the suite's shared open service (no token)."""
    return service.url


@pytest.fixture(scope="session")
def restricted_service(ray_cluster: RayCluster) -> Iterator[Service]:
    """A service that requires ``Authorization: Bearer TOKEN`` and holds at most ``MAX_LIVE`` instances."""
    svc = start_service(ray_cluster.address, TRAINBOX_TOKEN=TOKEN, TRAINBOX_MAX_LIVE=str(MAX_LIVE))
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def sdk_appworld_root(appworld_data: Path) -> Path:
    """The suite's builder-made AppWorld dataset (``appworld_data`` in conftest)."""
    return appworld_data


@pytest.fixture
def no_trainbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their endpoint explicitly: no TRAINBOX_* from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("TRAINBOX_"):
            monkeypatch.delenv(name)


def group_alive(pgid: int) -> bool:
    """Does any process of this process group still exist?"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
