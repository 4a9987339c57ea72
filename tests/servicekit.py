"""Test helpers that start real things: a two-node Ray cluster on loopback and trainbox service processes.

The Ray nodes carry the ``trainbox.dev/arch`` label (head amd64, second node arm64), so placement by
architecture goes through Ray's own label scheduling. Everything binds loopback (Ray's nodes 127.0.0.2:
Ray rewrites 127.0.0.1 to the interface address, other loopback addresses it keeps); every process is
started in its own session and stopped by process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from trainbox import _proctree as proctree

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RAY_IP = "127.0.0.2"  # see trainbox_server.hosts.ray_hosts.LOOPBACK_NODE_IP


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the tests' one helper for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Ray moves its workers into sessions of their own)."""
    return [child for child, _ in proctree.descendants(pid)]


async def survivors(pids: list[int], within: float = 10.0) -> list[int]:
    """Those of ``pids`` still running (not zombies) once they had ``within`` seconds to go."""
    alive = list(pids)
    for _ in range(int(within / 0.1)):
        alive = [pid for pid in pids if _running(pid)]
        if not alive:
            return []
        await asyncio.sleep(0.1)
    return alive


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it and of every descendant."""
    tree = descendants(proc.pid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in tree + descendants(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class RayCluster:
    address: str
    temp_dir: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, archs: tuple[str, ...] = ("amd64", "arm64")) -> RayCluster:
        port = free_port()
        temp_dir = tempfile.mkdtemp(prefix="tbray-", dir="/tmp")
        cluster = cls(f"{RAY_IP}:{port}", temp_dir)
        ray = str(VENV_BIN / "ray")
        common = [f"--node-ip-address={RAY_IP}", "--block", "--disable-usage-stats"]
        head = [ray, "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}"]
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        try:
            for index, arch in enumerate(archs):
                args = head if index == 0 else [ray, "start", f"--address={cluster.address}"]
                cmd = [*args, *common, "--num-cpus=2", f"--labels=trainbox.dev/arch={arch}"]
                with open(Path(temp_dir) / f"node-{index}.log", "wb") as log:  # the process keeps its own copy
                    cluster.procs.append(
                        subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                    )
                if index == 0:
                    cluster.wait_nodes(1)
            cluster.wait_nodes(len(archs))
        except BaseException:  # a cluster that did not come up must not outlive the test run
            cluster.stop()
            raise
        return cluster

    def wait_nodes(self, count: int, timeout: float = 120.0) -> None:
        code = (
            "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, _node_ip_address=sys.argv[2]);"
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                [sys.executable, "-c", code, self.address, RAY_IP], capture_output=True, text=True, timeout=120
            )
            if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(1.0)
        raise RuntimeError(f"Ray cluster did not reach {count} nodes; logs in {self.temp_dir}")

    def stop(self) -> None:
        for proc in reversed(self.procs):  # a node stops its processes on SIGTERM in ~10 s; nothing here needs that
            stop_group(proc, grace=2.0)


@dataclass
class Service:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop_group(self.proc)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_service(ray_address: str | None, **env: str) -> Service:
    """A real ``python -m trainbox_server serve`` process; its own Ray namespace unless one is given."""
    ready = Path(tempfile.mkdtemp(prefix="tbsvc-", dir="/tmp"))
    settings = {"TRAINBOX_RAY_NAMESPACE": f"test-{uuid.uuid4().hex[:8]}", "RAY_AUTH_MODE": "disabled", **env}
    cmd = [sys.executable, "-m", "trainbox_server", "serve", "--port", "0", "--ready-file", str(ready / "url")]
    if ray_address:
        cmd += ["--ray-address", ray_address]
    log_path = ready / "service.log"
    with open(log_path, "wb") as log:  # the process keeps its own copy
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **settings}, start_new_session=True
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited early:\n{log_path.read_text()[-3000:]}")
        if (ready / "url").exists() and (url := (ready / "url").read_text().strip()):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return Service(url, proc, log_path, settings)
        time.sleep(0.3)
    stop_group(proc)
    raise RuntimeError(f"service not ready in 180 s:\n{log_path.read_text()[-3000:]}")
