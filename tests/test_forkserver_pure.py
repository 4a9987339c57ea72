"""The fork server's pure parts: exit statuses, the capability check, the request and the holder's command."""

from __future__ import annotations

import json
import os
import signal

import pytest
from trainbox_server.errors import EnvironmentUnavailable
from trainbox_server.runtime import sandbox
from trainbox_server.runtime.forkclient import (
    HOLDER,
    enabled,
    encode_request,
    holder_command,
    plain_request,
    spawn_request,
)
from trainbox_server.runtime.forkserver import MAX_MESSAGE, capability_lines, exit_code, unprivileged

DROPPED = """Name:\tpython
Uid:\t200001\t200001\t200001\t200001
CapInh:\t0000000000000000
CapPrm:\t0000000000000000
CapEff:\t0000000000000000
CapBnd:\t0000000000000000
CapAmb:\t0000000000000000
NoNewPrivs:\t1
"""


def test_exit_codes_read_like_bubblewraps() -> None:
    assert exit_code(0) == 0
    assert exit_code(3 << 8) == 3  # exited with 3
    assert exit_code(signal.SIGKILL) == 128 + signal.SIGKILL  # killed by SIGKILL
    assert os.WIFSIGNALED(signal.SIGSEGV) and exit_code(signal.SIGSEGV) == 128 + signal.SIGSEGV


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"CapEff": "0000000000000001"}, False),
        ({"CapBnd": "000001ffffffffff"}, False),
        ({"CapAmb": "0000000000000400"}, False),
        ({"NoNewPrivs": "0"}, False),
        ({"CapPrm": ""}, False),  # a set we cannot read is not a dropped one
    ],
)
def test_unprivileged_needs_every_set_empty_and_no_new_privs(change: dict[str, str], expected: bool) -> None:
    text = "".join(
        f"{key}:\t{change.get(key, value.strip())}\n"
        for key, _, value in (line.partition(":") for line in DROPPED.splitlines())
    )
    assert unprivileged(text) is expected
    assert set(capability_lines(text)) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"}


def test_the_request_carries_the_workers_uid_limits_and_environment_only() -> None:
    limits = sandbox.Limits(processes=7, open_files=9, cpu_seconds=11, file_bytes=13, tmp_bytes=15)
    policy = sandbox.SandboxPolicy(binds=(("/a", "/a"),), env=(("HOME", "/tmp"),), limits=limits, uid=200009)
    request = spawn_request(4, "appworld", policy)
    assert request == {
        "id": 4, "family": "appworld", "uid": 200009, "proc": True, "env": [["HOME", "/tmp"]], "judge": False,
        "limits": {"processes": 7, "open_files": 9, "cpu_seconds": 11, "file_bytes": 13},
    }  # fmt: skip
    assert spawn_request(5, "appworld", policy, judge=True)["judge"] is True


def test_the_holder_runs_in_the_same_sandbox_a_worker_would() -> None:
    tools = {"bwrap": "/usr/bin/bwrap", "prlimit": "/usr/bin/prlimit", "setpriv": "/usr/bin/setpriv"}
    policy = sandbox.SandboxPolicy(binds=(), env=(("PATH", "/usr/bin"),), uid=200001)
    worker = sandbox.command(policy, ["python"], tools)
    holder = holder_command(policy, tools, 9)
    assert holder[:3] == ["/usr/bin/bwrap", "--info-fd", "9"]
    assert holder[3:] == worker[1:-1] + HOLDER  # the same namespaces, view, limits and uid


def test_a_plain_request_carries_the_family_and_environment_and_no_sandbox() -> None:
    request = plain_request(7, "bfcl@2026.3.23", {"B": "2", "A": "1"})
    assert request == {
        "id": 7, "family": "bfcl@2026.3.23", "sandboxed": False, "env": [("A", "1"), ("B", "2")], "judge": False
    }  # fmt: skip


def test_families_without_a_sandbox_fork_as_any_user_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert enabled(sandboxed=False)
    monkeypatch.setenv("TRAINBOX_FORKSERVER", "off")
    assert not enabled(sandboxed=False) and not enabled(sandboxed=True)


def test_a_request_the_server_could_not_read_whole_is_refused_before_it_is_sent() -> None:
    fits = plain_request(1, "bfcl", {"A": "x" * 1000})
    assert json.loads(encode_request(fits)) == json.loads(json.dumps(fits))
    with pytest.raises(EnvironmentUnavailable, match="TRAINBOX_FORKSERVER=off"):
        encode_request(plain_request(1, "bfcl", {"HUGE": "x" * MAX_MESSAGE}))
