"""The embedded local service: what ``TrainingSandbox()`` talks to when no endpoint is configured.

It runs ``python -m trainbox_server serve`` (with this interpreter, so ``pip install trainbox-server`` next to
the SDK is all it takes) on 127.0.0.1, in its own session so the whole process tree
(the service, its local Ray, the environment workers) can be stopped by process group. Its owner stops it
on ``close()`` / leaving the ``with`` block; an ``atexit`` hook stops it if the owner never did; and the
service runs under ``_watchdog``, which stops it when this process ends in a way atexit never sees
(SIGKILL, a crash). Ctrl-C reaches only the trainer (the service is in another session).

The SDK picks the free port itself (as the service does for ``--port 0``: bind port 0, read it, close), so
it knows the URL without depending on the ready file; it still passes ``--ready-file`` and prefers the URL
written there. Ready means ``GET /readyz`` answers 200.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ._exceptions import ServiceStartError
from ._proctree import descendants, signal_group, stop_leftovers

__all__ = ["EmbeddedService"]

log = logging.getLogger("trainbox")

_PROGRESS_EVERY = 5.0
_POLL = 0.1


class EmbeddedService:
    """One ``trainbox_server`` subprocess owned by one client."""

    def __init__(self, startup_timeout: float = 180.0, stop_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._expected_url = ""
        self._started_at = 0.0
        self._last_progress = 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- start ---------------------------------------------------------------------------------------------

    def start(self) -> str:
        self._launch()
        try:
            while True:
                url = self._poll()
                if _ready_sync(url):
                    return self._ready(url)
                time.sleep(_POLL)
        except BaseException:
            self.stop()
            raise

    async def start_async(self) -> str:
        self._launch()
        try:
            while True:
                url = self._poll()
                if await _ready_async(url):
                    return self._ready(url)
                await asyncio.sleep(_POLL)
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise

    def _launch(self) -> None:
        if not _server_installed():
            raise ServiceStartError(
                f"no endpoint configured and trainbox_server is not installed in this interpreter ({sys.executable}), "
                "so no local service can be started: `pip install trainbox-server`, or point the SDK at a "
                "running service with base_url= or the TRAINBOX_URL environment variable"
            )
        self._dir = Path(tempfile.mkdtemp(prefix="trainbox-embedded-"))
        self._expected_url = f"http://127.0.0.1:{_free_port()}"
        command = [sys.executable, "-m", "trainbox_server", "serve", "--host", "127.0.0.1"]
        command += ["--port", self._expected_url.rsplit(":", 1)[1], "--ready-file", str(self._dir / "url")]
        # Under the watchdog, which stops the service when our end of its stdin closes (we exit or die).
        watched = [sys.executable, "-m", "trainbox._watchdog", *command]
        with open(self._dir / "service.log", "wb") as out:
            self._proc = subprocess.Popen(
                watched, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        atexit.register(self.stop)
        self._started_at = self._last_progress = time.monotonic()
        log.info("starting the embedded trainbox service (pid %d): %s", self._proc.pid, " ".join(command))

    def _poll(self) -> str:
        """The URL to probe for readiness; raises if the service died or is too slow."""
        assert self._proc is not None and self._dir is not None
        code = self._proc.poll()
        if code is not None:
            raise ServiceStartError(
                f"the embedded trainbox service exited with code {code} while starting{self._log_tail()}"
            )
        elapsed = time.monotonic() - self._started_at
        if elapsed > self.startup_timeout:
            raise ServiceStartError(
                f"the embedded trainbox service was not ready after {self.startup_timeout:.0f} s "
                "(raise startup_timeout= or TRAINBOX_STARTUP_TIMEOUT, or run `python -m trainbox_server serve` "
                "yourself and set TRAINBOX_URL)"
                f"{self._log_tail()}"
            )
        if time.monotonic() - self._last_progress >= _PROGRESS_EVERY:
            self._last_progress = time.monotonic()
            log.info("waiting for the embedded trainbox service to be ready (%.0f s)", elapsed)
        try:
            written = (self._dir / "url").read_text().strip()
        except FileNotFoundError:
            written = ""
        return written if written.startswith(("http://", "https://")) else self._expected_url

    def _ready(self, url: str) -> str:
        self.url = url.rstrip("/")
        log.info("embedded trainbox service ready at %s (%.1f s)", self.url, time.monotonic() - self._started_at)
        return self.url

    def _log_tail(self, lines: int = 25) -> str:
        if self._dir is None:
            return ""
        try:
            text = (self._dir / "service.log").read_text(errors="replace")
        except OSError:
            return ""
        tail = text.strip().splitlines()[-lines:]
        return ("; its last output:\n    " + "\n    ".join(tail)) if tail else ""

    # -- stop ----------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the service's whole tree: SIGTERM, a grace period, then SIGKILL. Safe to call twice."""
        proc, self._proc = self._proc, None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if proc is not None:
            group = proc.pid  # start_new_session=True: the service leads its own process group
            tree = descendants(proc.pid)  # before it dies: afterwards its children are re-parented
            if proc.stdin is not None:
                proc.stdin.close()  # the watchdog's cue
            signal_group(group, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("the embedded trainbox service ignored SIGTERM for %.0f s; killing it", self.stop_timeout)
                signal_group(group, signal.SIGKILL)
                proc.wait()
            survivors = stop_leftovers(tree, group)
            if survivors:
                log.warning("processes of the embedded service survived SIGKILL: %s", sorted(p for p, _ in survivors))
            log.info("embedded trainbox service stopped (pid %d)", proc.pid)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.url = None


def _server_installed() -> bool:
    try:
        return importlib.util.find_spec("trainbox_server") is not None
    except (ImportError, ValueError):  # ValueError: blocked with sys.modules["trainbox_server"] = None
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready_sync(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


async def _ready_async(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False
