"""Shared fixtures: a real two-node Ray cluster (amd64 + arm64 labels) and a real trainbox service on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from trainbox_server.runtime.process import default_python

from tests.servicekit import REPO, RayCluster, Service, start_service


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


@pytest.fixture(scope="session")
def appworld_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small AppWorld dataset in AppWorld's own format, built through the engine by the project's builder."""
    python = default_python("appworld")
    if not os.path.exists(python):
        pytest.fail(f"the AppWorld venv is missing ({python}): run `make install`")
    root = tmp_path_factory.mktemp("appworld-data")
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    builder = [python, "-m", "trainbox_server.envs.appworld_dataset", "--root", str(root)]
    subprocess.run(builder, check=True, env=env, stdout=subprocess.DEVNULL, timeout=600)
    return root


@pytest.fixture(scope="session")
def webshop_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small WebShop catalogue in WebShop's own format, with its Lucene index, built by the project's builder."""
    python = default_python("webshop")
    if not os.path.exists(python):
        pytest.fail(f"the WebShop venv is missing ({python}): run `make install`")
    root = tmp_path_factory.mktemp("webshop-data")
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    builder = [python, "-m", "trainbox_server.envs.webshop.generate", "--root", str(root)]
    subprocess.run(builder, check=True, env=env, stdout=subprocess.DEVNULL, timeout=600)
    return root
