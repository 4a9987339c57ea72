"""The sandbox's command line and binds, decided by pure functions (the real sandbox: test_sandbox.py)."""

from __future__ import annotations

import pytest
from trainbox_server.runtime.sandbox import Limits, SandboxPolicy, command, interpreter_binds

TOOLS = {"bwrap": "/usr/bin/bwrap", "prlimit": "/usr/bin/prlimit", "setpriv": "/usr/bin/setpriv"}
BINDS = (("/data/view/tasks", "/appworld/data/tasks"), ("/srv/venv", "/srv/venv"))


def policy(**overrides: object) -> SandboxPolicy:
    settings: dict[str, object] = {"binds": BINDS, "env": (("PATH", "/usr/bin"),), "uid": 200001}
    return SandboxPolicy(**{**settings, **overrides})  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_every_namespace_but_the_network_of_the_host() -> None:
    argv = command(policy(), ["python", "-m", "w"], TOOLS)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent"):
        assert flag in argv
    assert "--clearenv" in argv and "--new-session" in argv
    assert argv[-3:] == ["python", "-m", "w"]


def test_root_mode_drops_to_the_workers_uid_with_no_capabilities() -> None:
    argv = command(policy(uid=200007), ["python"], TOOLS)
    setpriv = argv[argv.index("/usr/bin/setpriv") :]
    assert "--reuid=200007" in setpriv and "--clear-groups" in setpriv and "--bounding-set=-all" in setpriv
    assert "--no-new-privs" in setpriv and "--unshare-user" not in argv


def test_without_root_an_unprivileged_user_namespace() -> None:
    argv = command(policy(uid=None), ["python"], TOOLS)
    assert "--unshare-user" in argv and "/usr/bin/setpriv" not in argv
    assert pairs(argv, "--uid") == ["65534"] and pairs(argv, "--cap-drop") == ["ALL"]


@pytest.mark.parametrize("proc", [True, False])
def test_proc_is_the_sandboxs_own_or_none(proc: bool) -> None:
    argv = command(policy(proc=proc), ["python"], TOOLS)
    assert pairs(argv, "--proc") == (["/proc"] if proc else [])
    assert "/proc" not in pairs(argv, "--ro-bind") and "/proc" not in pairs(argv, "--bind")


def test_binds_are_read_only_with_traversable_parents() -> None:
    argv = command(policy(), ["python"], TOOLS)
    assert "--bind" not in argv  # nothing writable but the private /tmp
    assert pairs(argv, "--ro-bind")[-2:] == ["/data/view/tasks", "/srv/venv"]
    made = pairs(argv, "--dir")
    assert made[:3] == ["/appworld", "/appworld/data", "/srv"]
    for directory in made:
        assert argv[argv.index(directory) - 3 : argv.index(directory) - 1] == ["--perms", "0755"]


def test_limits_reach_prlimit_and_tmp() -> None:
    limits = Limits(processes=7, open_files=9, cpu_seconds=11, file_bytes=13, tmp_bytes=4096)
    argv = command(policy(limits=limits), ["python"], TOOLS)
    assert {"--nproc=7", "--nofile=9", "--cpu=11", "--fsize=13", "--core=0"} <= set(argv)
    tmp = argv.index("--tmpfs")
    assert argv[tmp - 2 : tmp + 2] == ["--size", "4096", "--tmpfs", "/tmp"]


def test_interpreter_binds_cover_venv_base_and_code() -> None:
    binds = interpreter_binds("/usr/bin/python3", "/opt/app/site-packages")
    assert ("/opt/app/site-packages", "/opt/app/site-packages") in binds
    assert all(not target.startswith("/usr/") for _, target in binds)  # /usr is bound as a whole
