"""The sandbox that model code runs in: bubblewrap namespaces, an unprivileged uid, rlimits, a scrubbed
environment and a read-only view of exactly what the worker needs.

Which workers: those of families that *execute* model code (AppWorld runs the model's python). BFCL only
parses calls (``ast``/``json``) and dispatches them to environment methods, so its workers (thousands of
instances each) are not sandboxed.

What the sandbox gives model code (see ``command``):

* its own PID, network, IPC, UTS, cgroup and mount namespaces: it sees its own processes only, has no
  network at all (a private loopback), cannot reach the service's sockets or the host's abstract sockets;
  when the worker exits or is killed, the namespace's init dies and the kernel kills every process left in
  it (a ``fork()`` + ``setsid()`` child does not outlive its instance);
* an unprivileged identity: as root, the worker drops to a per-worker uid (``setpriv``: no capabilities,
  no supplementary groups, ``no_new_privs``); without root, an unprivileged user namespace (nobody);
* a scrubbed environment: only the variables the worker needs (no token, no service settings);
* a read-only filesystem of ``/usr``, the interpreter, the venv, the server code and the family's
  public data; a private ``/tmp`` of bounded size is the only writable place;
* rlimits: processes, open files, CPU seconds, file size, no core dumps (memory: the worker's RLIMIT_AS).

``TRAINBOX_SANDBOX=off`` turns it off (development only: it is logged as a warning). Where bubblewrap
cannot start, code-executing families are refused with ``EnvironmentUnavailable`` saying why.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_TMP = "/tmp"
UID_BASE = int(os.environ.get("TRAINBOX_SANDBOX_UID_BASE", "200000"))
UID_SLOTS = 4096  # per-worker uids cycle through UID_BASE .. UID_BASE + UID_SLOTS - 1
NOBODY = 65534
_uids = itertools.count()


class SandboxUnavailable(Exception):
    """bubblewrap is missing or cannot create namespaces here; the message says what to do."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed worker (memory is the worker's own RLIMIT_AS)."""

    processes: int = 64
    open_files: int = 256
    cpu_seconds: int = 3600
    file_bytes: int = 256 * 1024 * 1024
    tmp_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class SandboxPolicy:
    """What one sandboxed worker sees: read-only binds ``(host path, sandbox path)`` and its environment."""

    binds: tuple[tuple[str, str], ...]
    env: tuple[tuple[str, str], ...]
    limits: Limits = Limits()
    uid: int | None = None  # root mode: drop to this uid; None: an unprivileged user namespace
    # A fresh /proc of the sandbox's own PID namespace. In an unprivileged container the kernel may refuse
    # to mount one (its /proc has masked paths); the worker then runs with no /proc at all, never the host's.
    proc: bool = True


def enabled() -> bool:
    return os.environ.get("TRAINBOX_SANDBOX", "auto").lower() not in ("off", "0", "false", "no")


def next_uid() -> int | None:
    """A fresh per-worker uid when we are root (so process limits are per worker), else None."""
    if os.geteuid() != 0:
        return None
    return UID_BASE + next(_uids) % UID_SLOTS


def command(policy: SandboxPolicy, argv: list[str], tools: dict[str, str]) -> list[str]:
    """The full command line that runs ``argv`` inside the sandbox (pure; ``tools`` gives the binaries)."""
    limits = policy.limits
    cmd = [
        tools["bwrap"],
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv",
        *(["--proc", "/proc"] if policy.proc else []), "--dev", "/dev",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            cmd += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
        elif os.path.isdir(f"/{link}"):
            cmd += ["--ro-bind", f"/{link}", f"/{link}"]
    cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", SANDBOX_TMP]
    made: set[str] = set()
    for source, target in policy.binds:
        # bubblewrap makes missing parents 0700 as root: the worker's uid could not pass them.
        for parent in reversed(Path(target).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", source, target]
    for key, value in policy.env:
        cmd += ["--setenv", key, value]
    if policy.uid is None:
        cmd += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    cmd += [
        "--", tools["prlimit"],
        f"--nproc={limits.processes}", f"--nofile={limits.open_files}", f"--cpu={limits.cpu_seconds}",
        f"--fsize={limits.file_bytes}", "--core=0", "--",
    ]  # fmt: skip
    if policy.uid is not None:
        cmd += [
            tools["setpriv"], f"--reuid={policy.uid}", f"--regid={policy.uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
    return cmd + argv


def interpreter_binds(python: str, server_dir: str) -> list[tuple[str, str]]:
    """Read-only binds a worker's interpreter needs: its venv, its base installation, the server code."""
    venv = str(Path(python).absolute().parent.parent)
    base = str(Path(os.path.realpath(python)).parent.parent)
    paths = [venv, base, *([server_dir] if server_dir else [])]
    binds: list[tuple[str, str]] = []
    for path in sorted(set(paths)):
        if path == "/usr" or path.startswith("/usr/") or any(path.startswith(p + "/") for p in paths if p != path):
            continue  # already visible through /usr or a parent bind
        binds.append((path, path))
    return binds


def base_env(server_dir: str) -> list[tuple[str, str]]:
    """The whole environment of a sandboxed worker (families add their own few variables)."""
    return [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", SANDBOX_TMP),
        ("USER", "sandbox"),
        ("LANG", "C.UTF-8"),
        ("TMPDIR", SANDBOX_TMP),
        *([("PYTHONPATH", server_dir)] if server_dir else []),
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ]


@functools.cache
def tools() -> dict[str, str]:
    """The sandbox's binaries, or ``SandboxUnavailable`` naming what is missing and how to install it."""
    found = {name: shutil.which(name) or "" for name in ("bwrap", "prlimit", "setpriv")}
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise SandboxUnavailable(
            f"the sandbox for model code needs {', '.join(missing)} (Debian: bubblewrap, util-linux); "
            "install them (`make install` does), or set TRAINBOX_SANDBOX=off on a development machine"
        )
    return found


@functools.cache
def probe() -> bool:
    """Start one trivial sandbox; True if it can mount its own /proc, False if only without one;
    ``SandboxUnavailable`` with bubblewrap's own words if it cannot run here at all."""
    detail = "no output"
    for proc in (True, False):
        policy = SandboxPolicy(binds=(), env=(("PATH", "/usr/bin:/bin"),), uid=next_uid(), proc=proc)
        try:
            done = subprocess.run(command(policy, ["/bin/true"], tools()), capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start: {exc}") from None
        if done.returncode == 0:
            if not proc:
                log.warning("the sandbox cannot mount its own /proc here; workers run without one")
            return proc
        detail = (done.stderr.decode(errors="replace").strip().splitlines() or [detail])[-1]
    raise SandboxUnavailable(
        f"bubblewrap cannot create the sandbox here ({detail}); in a pod, allow user namespaces "
        "or give the worker container the capabilities the chart sets (see the README), "
        "or set TRAINBOX_SANDBOX=off on a development machine"
    )
