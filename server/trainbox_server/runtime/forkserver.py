"""A family's fork server: its engine imported once, each worker a fork (that joins a fresh sandbox, when sandboxed).

A sandboxed AppWorld worker used to import its engine in every process: ≈ 5 s of CPU per episode, most of a
create. The fork server imports it once (trusted library code, no model code ever runs here) and forks one
process per worker. Each fork then *joins* a sandbox that bubblewrap built for that worker alone, exactly as
before (``sandbox.command``: its own PID, network, IPC, UTS, cgroup and mount namespaces, the read-only view and
the private ``/tmp``), so the isolation is bubblewrap's, not ours:

1. the runtime starts bubblewrap for the worker with a holder command (``sh -c 'echo ready; exec sleep
   infinity'``), and passes the fork server a pidfd of the sandbox's first process and the worker's three pipes;
2. the fork server forks the *joiner*, which enters all of that process's namespaces at once (``setns`` on the
   pidfd: the view, the network, the PID namespace for its children) and forks the worker;
3. the worker, now a member of the sandbox's PID namespace behind bubblewrap's own init, puts its pipes on
   0/1/2, closes every other descriptor, starts a session, sets the rlimits, drops every capability (bounding
   set included), all groups and root for the worker's own uid, sets ``no_new_privs``, checks in
   ``/proc/self/status`` that nothing is left, takes the worker's scrubbed environment, and serves;
4. the joiner drops to the same uid and waits; its exit status is the worker's (``128 + N`` for signal N, as
   bubblewrap reports it) and the fork server reports it to the runtime.

Killing a worker kills its bubblewrap (the sandbox's init dies, and the kernel kills every process of its
PID namespace). Root only (per-worker uids); without root, workers start in their own bubblewrap as before.

A family without a sandbox (BFCL: no model code runs, only its simulated tools) has a fork server too: its
workers are plain forks of it (their own pipes, session, limits and environment, the server's user, as such a
worker always ran), reaped by the server. Any user may run that one. It saves each worker the import and the
dataset parse (≈ 0.65 s of CPU per BFCL worker).
Run as ``python -m trainbox_server.runtime.forkserver <family> <control socket fd>``; standard library + the
family's engine only.
"""

from __future__ import annotations

import array
import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
JOIN = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
RLIMITS = {
    "processes": resource.RLIMIT_NPROC,
    "open_files": resource.RLIMIT_NOFILE,
    "cpu_seconds": resource.RLIMIT_CPU,
    "file_bytes": resource.RLIMIT_FSIZE,
}
MAX_MESSAGE = 1 << 17  # a request (a plain one carries the worker's whole environment); the runtime checks it

_libc = ctypes.CDLL(None, use_errno=True)


class JoinError(Exception):
    """A fork could not enter its sandbox or shed its privileges; it exits without serving."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise JoinError(f"{what}: {os.strerror(errno)}")


def exit_code(status: int) -> int:
    """A wait status as the joiner reports it: the exit code, or 128 + N for death by signal N (pure)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 255


def capability_lines(status_text: str) -> dict[str, str]:
    """The capability sets and ``NoNewPrivs`` of a ``/proc/<pid>/status`` text (pure)."""
    wanted = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")
    found = {}
    for line in status_text.splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            found[key] = value.strip()
    return found


def unprivileged(status_text: str) -> bool:
    """True if a process holds no capability in any set and has ``no_new_privs`` (pure)."""
    found = capability_lines(status_text)
    caps = [found.get(key, "") for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
    return all(value and int(value, 16) == 0 for value in caps) and found.get("NoNewPrivs") == "1"


def _drop_privileges(uid: int, last_cap: int) -> None:
    for cap in range(last_cap + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: the permitted and effective sets are cleared
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _take_pipes(request: dict[str, Any], pipes: list[int]) -> None:
    """In a fork that becomes a worker: its pipes on 0/1/2, nothing else open, a session of its own, the
    rlimits."""
    stdin, stdout, stderr = pipes
    os.dup2(stdin, 0)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.setsid()
    for name, value in request.get("limits", {}).items():
        if name in RLIMITS:
            resource.setrlimit(RLIMITS[name], (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _serve_as_worker(request: dict[str, Any]) -> int:
    """The worker's environment and standard streams, then its protocol loop (``runtime.worker.serve``)."""
    os.environ.clear()
    os.environ.update(dict(request["env"]))
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the worker takes its protocol fds from 0/1 itself
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    from trainbox_server.runtime.worker import serve

    return serve(request["family"], judge_role=bool(request.get("judge")))


def _become_worker(request: dict[str, Any], fds: list[int], last_cap: int) -> int:
    """In the fork that is the worker (inside the sandbox's namespaces): isolate, drop everything, serve."""
    _take_pipes(request, fds[1:4])
    _drop_privileges(int(request["uid"]), last_cap)
    if request.get("proc", True):
        with open("/proc/self/status") as file:
            status = file.read()
        if not unprivileged(status):
            raise JoinError(f"privileges left after the drop: {capability_lines(status)}")
    os.chdir("/")
    return _serve_as_worker(request)


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)


def _join(request: dict[str, Any], fds: list[int], last_cap: int, control_fd: int) -> int:
    """In the joiner (a fork of the server): enter the sandbox, fork the worker, wait for it."""
    _reset_signals()
    os.close(control_fd)
    os.setsid()
    pidfd = fds[0]
    flags = JOIN | CLONE_NEWCGROUP
    if _libc.setns(pidfd, flags) != 0:
        _check(_libc.setns(pidfd, JOIN), "entering the sandbox")
    os.chdir("/")
    worker = os.fork()
    if worker == 0:
        code = 70
        try:
            code = _become_worker(request, fds, last_cap)
        except BaseException as exc:
            print(f"forked worker could not start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(code if isinstance(code, int) else 70)
    for fd in fds:
        os.close(fd)
    _drop_privileges(int(request["uid"]), last_cap)
    _, status = os.waitpid(worker, 0)
    return exit_code(status)


def _plain(request: dict[str, Any], fds: list[int]) -> int:
    """In the fork that is a worker of a family without a sandbox: it runs as the server does (as such a
    worker always has), with its own pipes, session, limits and environment."""
    _reset_signals()
    _take_pipes(request, fds)
    return _serve_as_worker(request)


def _spawn(request: dict[str, Any], fds: list[int], last_cap: int, control_fd: int) -> int:
    """Fork the joiner (sandboxed: it forks the worker inside the sandbox) or the worker itself (plain)."""
    sandboxed = request.get("sandboxed", True)
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 71
        try:
            code = _join(request, fds, last_cap, control_fd) if sandboxed else _plain(request, fds)
        except BaseException as exc:
            what = "the joiner" if sandboxed else "a worker"
            print(f"fork server: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        finally:
            os._exit(code if isinstance(code, int) else 71)
    for fd in fds:
        os.close(fd)
    return pid


def _receive(control: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    fds = array.array("i")
    data, ancillary, _, _ = control.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(8 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if not data:
        return None, list(fds)
    return json.loads(data), list(fds)


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    control.sendall(json.dumps(message).encode() + b"\n")


def serve(family_name: str, control_fd: int) -> int:
    control = socket.socket(fileno=control_fd)
    from trainbox_server.envs.base import load_family

    family = load_family(family_name)
    preload = getattr(family, "preload", None)
    if callable(preload):
        preload()
    del family
    with open("/proc/sys/kernel/cap_last_cap") as file:
        last_cap = int(file.read())
    gc.collect()
    gc.freeze()  # what the forks share stays shared: the collector does not touch it again
    if threading.active_count() != 1:
        _send(control, {"ready": False, "error": f"{threading.active_count()} threads after the preload"})
        return 2
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _send(control, {"ready": True, "pid": os.getpid()})
    while True:
        readable = select.select([control, wake_r], [], [])[0]
        if wake_r in readable:
            while True:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    break
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                _send(control, {"exit": pid, "code": exit_code(status)})
        if control in readable:
            request, fds = _receive(control)
            if request is None:
                return 0  # the runtime went away: so do we (our forks' sandboxes die with their bubblewraps)
            wanted = 4 if request.get("sandboxed", True) else 3  # (pidfd +) the worker's three pipes
            if len(fds) != wanted:
                for fd in fds:
                    os.close(fd)
                _send(control, {"id": request.get("id"), "error": f"expected {wanted} descriptors, got {len(fds)}"})
                continue
            _send(control, {"id": request.get("id"), "pid": _spawn(request, fds, last_cap, control_fd)})


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        sys.exit("usage: python -m trainbox_server.runtime.forkserver <family> <control socket fd>")
    sys.exit(serve(sys.argv[1], int(sys.argv[2])))
