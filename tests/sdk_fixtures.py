"""Fixtures for the SDK tests: the real trainbox service, started as a subprocess on loopback.

Deliberately independent of the SDK's own embedded-service code, so the SDK is tested against a service it
did not start. Import the fixtures into a test module: ``from tests.sdk_fixtures import trainbox_url``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 240.0
TOKEN = "sdk-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def running_service(**env: str) -> Iterator[str]:
    """A real ``python -m trainbox_server serve`` with ``TRAINBOX_*`` overrides; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = Path(tempfile.mkdtemp(prefix="trainbox-sdk-test-"))
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOX_")} | env
    command = [sys.executable, "-m", "trainbox_server", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_dir / "service.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the service exited with {proc.returncode}:\n{(log_dir / 'service.log').read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the service was not ready in time:\n{(log_dir / 'service.log').read_text()[-4000:]}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def trainbox_url() -> Iterator[str]:
    """One open (no token) service shared by the SDK tests."""
    with running_service() as url:
        yield url


@pytest.fixture(scope="session")
def trainbox_secured_url() -> Iterator[str]:
    """A service that requires ``Authorization: Bearer TOKEN``."""
    with running_service(TRAINBOX_TOKEN=TOKEN) as url:
        yield url


@pytest.fixture
def no_trainbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their endpoint explicitly: no TRAINBOX_* from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("TRAINBOX_"):
            monkeypatch.delenv(name)
