"""Run the reference (AgentScope Runtime's ``training_box.env_service``, BFCL) on loopback for the benchmark.

From ``.venvs/reference`` (``scripts/install-reference.sh``): ``training_box`` is copied out of
site-packages into a temporary folder with an empty ``__init__.py`` (its code imports ``training_box.*``
as a top-level package); its own ``bfcl_dataprocess.py`` builds the data and split files; a Ray head is
started on 127.0.0.1 from the same venv (the service's ``ray.init()`` joins it through ``RAY_ADDRESS``
instead of picking the interface address); then ``python -m training_box.env_service --env bfcl``.
Each process gets its own session and is stopped by process group; what is left of the tree (Ray workers
live in sessions of their own, and released ones linger) is killed by PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.loadkit import kill_tree, tree_pids
from tests.servicekit import REPO, free_port, stop_group

VENV = REPO / ".venvs/reference"
PYTHON = VENV / "bin/python"
SITE = next((VENV / "lib").glob("python3*/site-packages"), VENV / "lib/site-packages")
CATEGORIES = ["multi_turn_base"]
# Ray 2.60 turns `--node-ip-address=127.0.0.1` (and a driver's `_node_ip_address`) into the machine's
# interface address unless this is 0; a one-node Ray then stays on loopback (it refuses extra nodes).
LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass
class ReferenceService:
    url: str
    port: int
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        tree = tree_pids(self.pids)
        # The service first, then Ray, which drains for over 10 s on SIGTERM (`ray start --block`): nothing of
        # this throw-away cluster needs a graceful end, and a 15 s grace made every teardown take 17-22 s.
        for proc in reversed(self.procs):
            stop_group(proc, grace=2.0)
        kill_tree(tree + tree_pids(tree))
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        return (self.workdir / "service.log").read_text(errors="replace")[-4000:]


def _prepare(workdir: Path) -> dict[str, str]:
    box = workdir / "training_box"
    shutil.copytree(SITE / "agentscope_runtime/sandbox/box/training_box", box)
    (box / "__init__.py").write_text("")
    data = workdir / "bfcl_data"
    code = (
        "from training_box.environments.bfcl.bfcl_dataprocess import bfcl_task_preprocess\n"
        f"bfcl_task_preprocess(test_categories={CATEGORIES!r}, train_ratio=0.5, output_dir={str(data)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    subprocess.run([str(PYTHON), "-c", code], cwd=workdir, env=env, check=True, capture_output=True, timeout=600)
    name = "_".join(CATEGORIES)
    return {
        "PYTHONPATH": str(workdir),
        "BFCL_DATA_PATH": str(data / f"{name}_processed.jsonl"),
        "BFCL_SPLID_ID_PATH": str(data / f"{name}_split_ids.json"),
        "BFCL_ANSWER_PATH": str(SITE / "bfcl_eval/data/possible_answer"),
        "OPENAI_API_KEY": "dummy-the-reference-refuses-to-evaluate-without-one",
        "RAY_AUTH_MODE": "disabled",
        **LOOPBACK_RAY,
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def start_reference(num_cpus: int = 2) -> ReferenceService:
    if not PYTHON.exists():
        raise RuntimeError("no .venvs/reference: run scripts/install-reference.sh")
    workdir = Path(tempfile.mkdtemp(prefix="tbref-", dir="/tmp"))
    env = {**os.environ, **_prepare(workdir)}
    ray_port, port = free_port(), free_port()
    service = ReferenceService(f"http://127.0.0.1:{port}", port, workdir)
    head = [
        str(VENV / "bin/ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={ray_port}",
        f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats", "--block",
        f"--temp-dir={workdir / 'ray'}",
    ]  # fmt: skip
    with open(workdir / "ray.log", "wb") as ray_log:  # the child keeps its own copy of the descriptor
        head_proc = subprocess.Popen(
            head, cwd=workdir, env=env, stdout=ray_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    service.procs.append(head_proc)
    try:
        _wait_ray(f"127.0.0.1:{ray_port}", env)
        cmd = [str(PYTHON), "-m", "training_box.env_service", "--env", "bfcl", "--portal", "127.0.0.1"]
        with open(workdir / "service.log", "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [*cmd, "--port", str(port)],
                cwd=workdir,
                env={**env, "RAY_ADDRESS": f"127.0.0.1:{ray_port}"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service.procs.append(proc)
        _wait_healthy(service, proc)
    except BaseException:
        service.stop()
        raise
    return service


def _wait_ray(address: str, env: dict[str, str], timeout: float = 120.0) -> None:
    code = (
        "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, _node_ip_address='127.0.0.1');"
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([str(PYTHON), "-c", code, address], capture_output=True, text=True, env=env, timeout=120)
        if out.returncode == 0 and out.stdout.strip().endswith("1"):
            return
        time.sleep(1.0)
    raise RuntimeError(f"the reference's Ray head did not come up at {address}")


def _wait_healthy(service: ReferenceService, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the reference service exited:\n{service.log()}")
        try:
            if httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the reference service was not healthy in {timeout} s:\n{service.log()}")
