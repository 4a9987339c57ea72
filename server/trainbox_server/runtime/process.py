"""Parent side of one worker process: spawn it, send framed requests, match replies, notice its death.

A request that outlives its timeout kills the process (there is no safe way to stop Python code that is
running): pending requests fail as ``StepTimeout`` (the one that timed out) or ``InstanceLost`` (the rest).
The stderr of the process is kept as a short tail for the logs; none of it is sent to clients.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainbox_server.envs import releases
from trainbox_server.errors import EnvironmentUnavailable, InstanceLost, StepTimeout, TrainboxError, from_wire
from trainbox_server.runtime import sandbox
from trainbox_server.runtime.forkclient import ForkedProcess, ForkServer
from trainbox_server.runtime.framing import HEADER, decode_length, encode, loads
from trainbox_server.runtime.procfs import tree_rss_kib

log = logging.getLogger(__name__)

SERVER_DIR = str(Path(__file__).resolve().parents[2])
# In a source checkout (server/pyproject.toml beside the package) every family's interpreter imports the
# worker from here. Installed (the images), SERVER_DIR is the service venv's site-packages: putting it on a
# family's path would shadow that family's own packages (AppWorld's pydantic v1), so each family venv
# carries its own copy of trainbox_server instead.
WORKER_PATH = SERVER_DIR if (Path(SERVER_DIR) / "pyproject.toml").is_file() else ""


@dataclass
class WorkerSpec:
    """How to start a worker of one family."""

    family: str
    python: str
    memory_mb: int = 0
    start_timeout: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    judge: bool = False  # the family's evaluator process instead of an instance worker
    # Run inside the sandbox (families that execute model code), seeing these read-only binds.
    sandboxed: bool = False
    binds: tuple[tuple[str, str], ...] = ()
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)

    def argv(self) -> list[str]:
        return [self.python, "-m", "trainbox_server.runtime.worker", self.family, *(["--judge"] if self.judge else [])]

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that start this worker (inside the sandbox if it has one)."""
        if not self.sandboxed:
            env = {**os.environ, **self._worker_env()}
            env["PYTHONPATH"] = os.pathsep.join(p for p in (WORKER_PATH, env.get("PYTHONPATH", "")) if p)
            return self.argv(), env
        policy, tools = self.sandbox_policy()
        return sandbox.command(policy, self.argv(), tools), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def _worker_env(self) -> dict[str, str]:
        """The variables every worker of this spec gets, sandboxed or not."""
        worker_env = {**self.env, "PYTHONUNBUFFERED": "1"}
        if self.memory_mb:
            worker_env["TRAINBOX_WORKER_MEMORY_MB"] = str(self.memory_mb)
        return worker_env

    def sandbox_policy(self) -> tuple[sandbox.SandboxPolicy, dict[str, str]]:
        """What one sandboxed worker of this spec sees (a fresh uid each call), and the sandbox's binaries."""
        try:
            tools = sandbox.tools()
            mount_proc = sandbox.probe()
        except sandbox.SandboxUnavailable as exc:
            raise EnvironmentUnavailable(f"{self.family!r} runs model code and needs the sandbox: {exc}") from None
        passed = {k: v for k, v in os.environ.items() if k == "TRAINBOX_MAX_REPLY_BYTES"}
        env_pairs = [*sandbox.base_env(WORKER_PATH), *passed.items(), *self._worker_env().items()]
        policy = sandbox.SandboxPolicy(
            binds=(*sandbox.interpreter_binds(self.python, WORKER_PATH), *self.binds),
            env=tuple(env_pairs),
            limits=self.limits,
            uid=sandbox.next_uid(),
            proc=mount_proc,
        )
        return policy, tools

    def forkserver_env(self) -> dict[str, str]:
        """The fork server's environment: exactly a worker's (its forks inherit the interpreter's snapshot of
        it, ``posix.environ``, so nothing else may be in it). It runs outside the sandbox, and no model code."""
        if not self.sandboxed:
            return self.command()[1]
        return dict(self.sandbox_policy()[0].env)


class WorkerProcess:
    """One live worker process. Create with ``await WorkerProcess.start(spec)``."""

    def __init__(self, spec: WorkerSpec, proc: asyncio.subprocess.Process | ForkedProcess) -> None:
        self.spec = spec
        self.proc = proc
        self.pid = proc.pid
        self.info: dict[str, Any] = {}
        self.instances: set[str] = set()
        self.emptied_at = 0.0  # monotonic time its last instance left
        self.ready_rss_kib = 0  # its memory once warm, to tell growth from the start-up cost
        self.dead = False
        self.death_reason = ""
        self.culprit: str | None = None  # the instance whose request killed this process, when known
        self.on_death: Callable[[WorkerProcess], None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._pending_instance: dict[int, str] = {}  # request id -> the instance it is for
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=50)
        self._tasks = [
            asyncio.create_task(self._read_replies()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(cls, spec: WorkerSpec, forkserver: ForkServer | None = None) -> WorkerProcess:
        """Start a worker: its own interpreter, or (``forkserver``) a fork of a warm one."""
        proc: asyncio.subprocess.Process | ForkedProcess
        if forkserver is not None and spec.sandboxed:
            policy, tools = spec.sandbox_policy()
            proc = await forkserver.start_worker(policy, tools, judge=spec.judge)
        elif forkserver is not None:
            proc = await forkserver.start_plain_worker(spec.command()[1], judge=spec.judge)
        else:
            argv, env = spec.command()
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=env, start_new_session=True, limit=1 << 20,
            )  # fmt: skip
        worker = cls(spec, proc)
        try:
            worker.info = await asyncio.wait_for(asyncio.shield(worker._ready), spec.start_timeout)
            if isinstance(proc, ForkedProcess):
                worker.pid = proc.worker_pid()  # its memory is its own tree's, not the joiner's (the server's pages)
            worker.ready_rss_kib = tree_rss_kib(worker.pid)
        except (TimeoutError, TrainboxError) as exc:
            worker.kill("did not start")
            tail = " | ".join(list(worker.stderr_tail)[-5:])
            log.error("worker %s/%s failed to start: %s; stderr: %s", spec.family, worker.pid, exc, tail)
            raise
        except asyncio.CancelledError:  # its pool closed while it started: the process goes with the start
            worker.kill("start cancelled")
            if isinstance(proc, ForkedProcess):  # and its pipes (nothing waits for it: the loop may end now)
                proc.close_pipes()
            raise
        return worker

    @property
    def max_instances(self) -> int:
        return int(self.info.get("max_instances", 1))

    async def request(self, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        if self.dead:
            raise InstanceLost(f"worker {self.pid} is gone ({self.death_reason})")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if isinstance(args.get("instance_id"), str):
            self._pending_instance[request_id] = args["instance_id"]
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(encode({"id": request_id, "op": op, "args": args}))
            await self.proc.stdin.drain()
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            self.culprit = self._pending_instance.get(request_id)
            self.kill(f"{op} ran past its {timeout:g} s timeout")
            raise StepTimeout(f"{op} ran past its {timeout:g} s timeout; the worker was stopped and replaced") from None
        except (BrokenPipeError, ConnectionResetError):
            self._die("its pipe closed")
            raise InstanceLost(f"worker {self.pid} is gone ({self.death_reason})") from None
        finally:
            self._pending.pop(request_id, None)
            self._pending_instance.pop(request_id, None)

    def kill(self, reason: str) -> None:
        """Stop the process now (SIGKILL to its whole session) and fail everything pending on it."""
        if isinstance(self.proc, ForkedProcess):
            self.proc.kill_tree()  # its sandbox's init dies: the kernel kills everything in it
        elif self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self._die(reason)

    async def stop(self) -> None:
        """Graceful stop: close its stdin (the worker exits on EOF), then kill if it lingers."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 2.0)
        self.kill("stopped")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5.0)
        for task in self._tasks:
            task.cancel()

    def _die(self, reason: str) -> None:
        if self.dead:
            return
        self.dead = True
        self.death_reason = reason
        if self.culprit is None and self._pending:  # requests run in order: the oldest one was running
            self.culprit = self._pending_instance.get(min(self._pending))
        lost = InstanceLost(f"the worker hosting this instance died ({reason})")
        if not self._ready.done():
            self._ready.set_exception(lost)
            self._ready.exception()  # mark retrieved: start() may not be awaiting it any more
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)
                future.exception()
        if self.on_death is not None:
            self.on_death(self)

    async def _read_replies(self) -> None:
        reader = self.proc.stdout
        assert reader is not None
        try:
            while True:
                length = decode_length(await reader.readexactly(HEADER.size))
                self._deliver(loads(await reader.readexactly(length)))
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        except Exception:
            log.exception("worker %s sent an unreadable frame", self.pid)
        code = await self.proc.wait()
        # bubblewrap exits 128 + N when its child died of signal N, and a fork server reports the same
        if (self.spec.sandboxed or isinstance(self.proc, ForkedProcess)) and code > 128:
            code = 128 - code
        self._die(_describe_exit(code))

    def _deliver(self, reply: dict[str, Any]) -> None:
        if reply.get("id") == 0 and not self._ready.done():
            if reply.get("ok"):
                self._ready.set_result(reply["result"])
            else:  # the worker cannot serve its family here (wrong interpreter): say why, not just "exited"
                message = str((reply.get("error") or {}).get("message", "the worker refused to start"))
                self._ready.set_exception(EnvironmentUnavailable(message))
            return
        future = self._pending.get(reply.get("id", -1))
        if future is None or future.done():
            return
        if reply.get("ok"):
            future.set_result(reply.get("result"))
        else:
            future.set_exception(from_wire(reply.get("error") or {}))
        if reply.get("fatal"):  # the worker is about to exit: route nothing more to it
            self.culprit = self._pending_instance.get(reply.get("id", -1))
            self.kill(str((reply.get("error") or {}).get("message", "fatal error")))

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            self.stderr_tail.append(text)
            log.debug("worker %s/%s: %s", self.spec.family, self.pid, text)


def _describe_exit(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"killed by {name}"
    return f"exited with code {code}"


def default_python(family: str) -> str:
    """The interpreter of a family (or of one release of it, see ``envs.releases``):
    ``TRAINBOX_PYTHON_<NAME>`` (``BFCL_2025_10_1``, ``APPWORLD``), else ``<venvs>/<name>/bin/python``
    (``bfcl-2025.10.1``, ``appworld``) where ``<venvs>`` is ``TRAINBOX_VENVS`` (the images: /opt/venvs), else
    the repo's ``.venvs``."""
    override = os.environ.get(f"TRAINBOX_PYTHON_{releases.env_suffix(family)}")
    if override:
        return override
    venvs = os.environ.get("TRAINBOX_VENVS") or str(Path(SERVER_DIR).parent / ".venvs")
    return str(Path(venvs) / releases.venv_name(family) / "bin" / "python")
