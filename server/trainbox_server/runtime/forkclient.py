"""The runtime's side of a family's fork server (``runtime.forkserver``): start it, and start workers from it.

A worker started here looks to ``WorkerProcess`` like any other (``ForkedProcess`` has the fields it uses of an
asyncio ``Process``): its pipes, its pid (the joiner's; ``worker_pid()`` is the worker's own, whose process tree
is what the worker's memory is), ``wait()`` and ``returncode`` (from the fork server's report), and
``kill_tree()``, which kills the worker's bubblewrap and with it everything in the sandbox.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from trainbox_server.errors import EnvironmentUnavailable
from trainbox_server.runtime import sandbox
from trainbox_server.runtime.forkserver import MAX_MESSAGE

log = logging.getLogger(__name__)

HOLDER = ["/bin/sh", "-c", "echo ready && exec sleep infinity"]  # keeps the sandbox up for the worker to join
START_TIMEOUT = 120.0
PIPES_CLOSE = 5.0  # after a worker's exit, the longest its pipes may stay open before we close our ends


def enabled(sandboxed: bool = True) -> bool:
    """Fork servers serve sandboxed families when we are root (per-worker uids) and the kernel has pidfds,
    and families without a sandbox always (unless ``TRAINBOX_FORKSERVER`` is off)."""
    if os.environ.get("TRAINBOX_FORKSERVER", "auto").lower() in ("off", "0", "false", "no"):
        return False
    return not sandboxed or (os.geteuid() == 0 and hasattr(os, "pidfd_open"))


def holder_command(policy: sandbox.SandboxPolicy, tools: dict[str, str], info_fd: int) -> list[str]:
    """bubblewrap's command line for a worker's sandbox whose first process waits to be joined (pure)."""
    cmd = sandbox.command(policy, HOLDER, tools)
    return [cmd[0], "--info-fd", str(info_fd), *cmd[1:]]


def plain_request(request_id: int, family: str, env: dict[str, str], judge: bool = False) -> dict[str, Any]:
    """What the fork server needs to make one worker of a family without a sandbox (pure)."""
    return {"id": request_id, "family": family, "sandboxed": False, "env": sorted(env.items()), "judge": judge}


def encode_request(request: dict[str, Any]) -> bytes:
    """A request as the fork server reads it (pure): one message of at most its receive size, else refused
    here (the server would read it cut short)."""
    message = json.dumps(request).encode()
    if len(message) > MAX_MESSAGE:
        raise EnvironmentUnavailable(
            f"a worker start of {len(message)} bytes is over the fork server's {MAX_MESSAGE}: the worker's "
            "environment is too large; set TRAINBOX_FORKSERVER=off"
        )
    return message


def spawn_request(request_id: int, family: str, policy: sandbox.SandboxPolicy, judge: bool = False) -> dict[str, Any]:
    """What the fork server needs to make one worker (pure): who it becomes, its limits and environment, and
    whether it is the family's evaluator (its own sandbox sees the ground truth; the server never does)."""
    limits = {key: value for key, value in asdict(policy.limits).items() if key != "tmp_bytes"}
    return {
        "id": request_id,
        "family": family,
        "uid": policy.uid,
        "limits": limits,
        "env": [list(pair) for pair in policy.env],
        "proc": policy.proc,
        "judge": judge,
    }


class ForkedProcess:
    """A worker forked by a fork server, into its own sandbox (``holder``: its bubblewrap) or plain (the parts
    of ``asyncio.subprocess.Process`` that ``WorkerProcess`` uses, and ``kill_tree``)."""

    def __init__(
        self,
        pid: int,
        holder: asyncio.subprocess.Process | None,
        exited: asyncio.Future[int],
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.pid = pid
        self.holder = holder
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self.pipes: list[tuple[asyncio.ReadTransport, _PipeProtocol]] = []  # stdout's and stderr's
        self._exited = exited
        exited.add_done_callback(self._on_exit)

    def _on_exit(self, exited: asyncio.Future[int]) -> None:
        self.returncode = exited.result() if not exited.cancelled() else 137
        self.kill_tree()  # what the worker left in its sandbox goes with it

    def worker_pid(self) -> int:
        """The worker's own pid (the joiner's only child), so that its memory is counted without the joiner's
        (a fork of the server: its resident pages are the server's); the joiner's if it has no child yet."""
        if self.holder is None:
            return self.pid  # a plain fork is the worker itself
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as children:
                return int(children.read().split()[0])
        except (OSError, ValueError, IndexError):
            return self.pid

    def kill_tree(self) -> None:
        if self.holder is None:  # a plain worker: its session, and what it left there once it exited
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            if self.returncode is None:  # (the server reaps it: the pid is not ours to kill after its exit)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)  # (not yet in a session of its own)
        elif self.holder.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.holder.pid, signal.SIGKILL)

    async def wait(self) -> int:
        """The exit code, once the worker exited and its pipes closed (what the worker wrote last is read,
        and no pipe is left open when the event loop ends), as an asyncio subprocess's ``wait``."""
        code = await asyncio.shield(self._exited)
        if self.holder is not None:
            with contextlib.suppress(ProcessLookupError):
                await self.holder.wait()
        if self.pipes:
            await asyncio.wait([protocol.lost for _, protocol in self.pipes], timeout=PIPES_CLOSE)
        self.close_pipes()  # (a descendant that still holds one: we stop reading it)
        return code

    def close_pipes(self) -> None:
        """Close our ends of its pipes now (what it writes from here on is not read)."""
        for transport, _ in self.pipes:
            transport.close()
        self.stdin.close()


class ForkServer:
    """One family's fork server, started on first use; replaced if it dies."""

    def __init__(self, family: str, python: str, env: dict[str, str]) -> None:
        self.family = family
        self.python = python
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._ready: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._broken = False  # a send failed: the server is gone even if its exit has not been seen yet
        self.ever_ready = False  # a server that never came up is not tried again; one that died is replaced

    @property
    def alive(self) -> bool:
        running = self.proc is not None and self.proc.returncode is None and not self._broken
        return running and self._reader is not None and not self._reader.done()

    async def _ensure(self) -> socket.socket:
        async with self._lock:
            if self.alive and self.sock is not None:
                return self.sock
            await self.close()
            # SEQPACKET: one message per request, its descriptors with it
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    self.python, "-m", "trainbox_server.runtime.forkserver", self.family, str(theirs.fileno()),
                    stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    pass_fds=(theirs.fileno(),), env=self.env, start_new_session=True,
                )  # fmt: skip
            finally:
                theirs.close()
            ours.setblocking(False)
            self.sock = ours
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._reader = asyncio.create_task(self._read(ours))
            try:
                await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT)
            except BaseException:
                await self.close()
                raise
            self.ever_ready = True
            log.info("%s fork server %s ready", self.family, self.proc.pid)
            return ours

    async def _read(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        buffer = b""
        try:
            while True:
                chunk = await loop.sock_recv(sock, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._deliver(json.loads(line))
        except (OSError, ValueError) as exc:
            log.warning("%s fork server: %s", self.family, exc)
        finally:
            gone = EnvironmentUnavailable(f"the {self.family} fork server stopped")
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(gone)
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(gone)
            for exited in self._exits.values():  # its forks can no longer be waited for: their sandboxes go
                if not exited.done():
                    exited.set_result(128 + signal.SIGKILL)
            self._replies.clear()
            self._exits.clear()

    def _deliver(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            if self._ready is not None and not self._ready.done():
                if message["ready"]:
                    self._ready.set_result(None)
                else:
                    self._ready.set_exception(EnvironmentUnavailable(str(message.get("error"))))
        elif "exit" in message:
            exited = self._exits.pop(int(message["exit"]), None)
            if exited is not None and not exited.done():
                exited.set_result(int(message["code"]))
        elif "id" in message:
            reply = self._replies.pop(int(message["id"]), None)
            if reply is None or reply.done():
                return
            if "pid" in message:
                self._exits[int(message["pid"])] = asyncio.get_running_loop().create_future()
                reply.set_result(int(message["pid"]))
            else:
                reply.set_exception(EnvironmentUnavailable(f"the fork server refused: {message.get('error')}"))

    async def start_worker(
        self, policy: sandbox.SandboxPolicy, tools: dict[str, str], judge: bool = False
    ) -> ForkedProcess:
        """A worker of this family (``judge``: its evaluator) in a sandbox of its own, forked from the warm server."""
        sock = await self._ensure()
        info_r, info_w = os.pipe()
        try:
            holder = await asyncio.create_subprocess_exec(
                *holder_command(policy, tools, info_w),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                pass_fds=(info_w,), env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(info_w)
        try:
            assert holder.stdout is not None and holder.stderr is not None
            line = await asyncio.wait_for(holder.stdout.readline(), START_TIMEOUT)
            if line.strip() != b"ready":
                detail = (await holder.stderr.read()).decode(errors="replace").strip()
                raise EnvironmentUnavailable(f"the worker's sandbox did not start: {detail or 'no output'}")
            info = json.loads(os.read(info_r, 1 << 16).decode() or "{}")
            pidfd = os.pidfd_open(int(info["child-pid"]))
            return await self._fork(sock, lambda rid: spawn_request(rid, self.family, policy, judge), pidfd, holder)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(holder.pid, signal.SIGKILL)
            await holder.wait()
            raise
        finally:
            os.close(info_r)

    async def start_plain_worker(self, env: dict[str, str], judge: bool = False) -> ForkedProcess:
        """A worker of this family without a sandbox (its environment ``env``), forked from the warm server."""
        sock = await self._ensure()
        return await self._fork(sock, lambda rid: plain_request(rid, self.family, env, judge))

    async def _fork(
        self,
        sock: socket.socket,
        request: Callable[[int], dict[str, Any]],
        pidfd: int | None = None,
        holder: asyncio.subprocess.Process | None = None,
    ) -> ForkedProcess:
        """Send one start (the worker's three pipes, after the sandbox's pidfd if any) and wrap its fork."""
        loop = asyncio.get_running_loop()
        fds: list[int] = [] if pidfd is None else [pidfd]  # what the fork server gets (closed here either way)
        ours: list[int] = []  # our ends of the worker's pipes, until streams own them
        try:
            stdin_r, stdin_w = os.pipe()
            stdout_r, stdout_w = os.pipe()
            stderr_r, stderr_w = os.pipe()
            fds += [stdin_r, stdout_w, stderr_w]
            ours += [stdin_w, stdout_r, stderr_r]
            request_id = next(self._ids)
            reply: asyncio.Future[int] = loop.create_future()
            self._replies[request_id] = reply
            message = encode_request(request(request_id))
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
            try:
                await _send_with_fds(sock, message, ancillary)
            except OSError as exc:  # it died and we have not noticed yet: the pool starts a new one and retries
                if sock is self.sock:  # (not a server already replaced under this start)
                    self._broken = True
                raise EnvironmentUnavailable(f"the {self.family} fork server is gone ({exc})") from None
            pid = await asyncio.wait_for(reply, START_TIMEOUT)
            exited = self._exits.get(pid) or loop.create_future()
            # Wrapping the pipes in streams is not cancelled with the start (its pool closing): a wrap cut
            # halfway would leave a transport open or an fd owned twice. A cancelled start lets it finish,
            # closes what it made, and kills its fork.
            wrapping = asyncio.ensure_future(_streams(loop, stdin_w, stdout_r, stderr_r))
            ours.clear()  # the wrap owns them now (and closes them if it fails)
            try:
                (
                    stdin,
                    (stdout, stdout_pipe, stdout_protocol),
                    (stderr, stderr_pipe, stderr_protocol),
                ) = await asyncio.shield(wrapping)
            except BaseException:
                wrapping.add_done_callback(_close_streams)
                if holder is None:  # (a sandboxed one goes with its bubblewrap: the caller kills that)
                    for kill in (os.killpg, os.kill):
                        with contextlib.suppress(ProcessLookupError):
                            kill(pid, signal.SIGKILL)
                raise
            forked = ForkedProcess(pid, holder, exited, stdin, stdout, stderr)
            forked.pipes = [(stdout_pipe, stdout_protocol), (stderr_pipe, stderr_protocol)]
            return forked
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in fds:  # the fork server has its own copies now (or never will)
                os.close(fd)

    async def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
            self.proc = None
        self._broken = False
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None


Streams = tuple[
    asyncio.StreamWriter,
    tuple[asyncio.StreamReader, asyncio.ReadTransport, "_PipeProtocol"],
    tuple[asyncio.StreamReader, asyncio.ReadTransport, "_PipeProtocol"],
]


async def _streams(loop: asyncio.AbstractEventLoop, stdin_w: int, stdout_r: int, stderr_r: int) -> Streams:
    """A worker's three pipes as streams; on failure, nothing of them is left open."""
    fds = [stdin_w, stdout_r, stderr_r]
    made: list[asyncio.BaseTransport] = []
    try:
        fds.remove(stdin_w)
        stdin = await _writer(loop, stdin_w)
        made.append(stdin.transport)
        fds.remove(stdout_r)
        stdout = await _reader(loop, stdout_r)
        made.append(stdout[1])
        fds.remove(stderr_r)
        stderr = await _reader(loop, stderr_r)
        return stdin, stdout, stderr
    except BaseException:
        for transport in made:
            transport.close()
        for fd in fds:
            os.close(fd)
        raise


def _close_streams(wrapping: asyncio.Future[Streams]) -> None:
    """Close the streams of a start that was cancelled while they were made (a failed wrap closed its own)."""
    if wrapping.cancelled() or wrapping.exception() is not None:
        return
    stdin, stdout, stderr = wrapping.result()
    stdin.close()
    stdout[1].close()
    stderr[1].close()


async def _send_with_fds(sock: socket.socket, message: bytes, ancillary: list[tuple[int, int, bytes]]) -> None:
    """One request as one message, its descriptors attached (the socket is non-blocking: retry while full)."""
    for _ in range(500):
        try:
            sock.sendmsg([message], ancillary)
            return
        except BlockingIOError:
            await asyncio.sleep(0.01)
    raise EnvironmentUnavailable("the fork server does not take requests")


class _PipeProtocol(asyncio.StreamReaderProtocol):
    """A read pipe's protocol that says when the pipe closed (``lost``), as a subprocess transport knows."""

    def __init__(self, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(reader, loop=loop)
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


async def _reader(
    loop: asyncio.AbstractEventLoop, fd: int
) -> tuple[asyncio.StreamReader, asyncio.ReadTransport, _PipeProtocol]:
    reader = asyncio.StreamReader(limit=1 << 20, loop=loop)
    transport, protocol = await loop.connect_read_pipe(lambda: _PipeProtocol(reader, loop), os.fdopen(fd, "rb", 0))
    return reader, transport, protocol


async def _writer(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop), os.fdopen(fd, "wb", 0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)
