"""Fixtures for the SDK tests: real trainbox services (``tests.servicekit``), as the SDK's users meet them.

Load with ``pytest_plugins = ["tests.sdk_fixtures"]``. The open service is the suite's shared ``service``
(conftest); the restricted one (bearer token, a live-instance limit) runs on the same Ray cluster, and its
settings are in ``restricted_service.env``.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
def sdk_appworld_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small AppWorld dataset in AppWorld's own format, built by the project's builder in the AppWorld venv."""
    python = Path(sys.executable).parents[2] / ".venvs/appworld/bin/python"
    if not python.exists():
        pytest.fail(f"the AppWorld venv is missing ({python}): run `make install`")
    root = tmp_path_factory.mktemp("sdk-appworld")
    server = Path(__file__).resolve().parents[1] / "server"
    subprocess.run(
        [str(python), "-m", "trainbox_server.envs.appworld_dataset", "--root", str(root)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(server)},
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    return root


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
