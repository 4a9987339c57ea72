"""The launcher the server image puts in front of Ray's node agents (hosts/ray_early_ports.sh): it writes the
port files the raylet waits for, exactly the values the agent writes later, then becomes the agent."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
import trainbox_server.hosts

SHIM = pathlib.Path(trainbox_server.hosts.__file__).parent / "ray_early_ports.sh"
NODE = "ab" * 28
DASHBOARD_PORTS = ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port")


def fake_agent(root: pathlib.Path, *parts: str) -> pathlib.Path:
    """A stand-in agent script at Ray's path layout that records how it was run (argv, pid, files it saw)."""
    script = root.joinpath(*parts)
    script.parent.mkdir(parents=True)
    script.write_text(
        "import json, os, sys\n"
        "session = next(a.split('=', 1)[1] for a in sys.argv if a.startswith('--session-dir='))\n"
        "seen = {name: open(os.path.join(session, name)).read() for name in sorted(os.listdir(session))}\n"
        "print(json.dumps({'argv': sys.argv[1:], 'pid': os.getpid(), 'seen': seen}))\n"
    )
    return script


def launch(script: pathlib.Path, *args: str) -> tuple[int, dict[str, object]]:
    process = subprocess.Popen([str(SHIM), sys.executable, "-u", str(script), *args], stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    return process.pid, json.loads(out)


def test_the_minimal_dashboard_agent_finds_its_three_ports_written(tmp_path: pathlib.Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    agent = fake_agent(tmp_path, "ray", "dashboard", "agent.py")
    args = (f"--node-id={NODE}", f"--session-dir={session}", "--listen-port=52365", "--minimal")
    pid, ran = launch(agent, *args)
    assert ran["pid"] == pid  # exec'd in place: the raylet monitors the pid it started
    assert ran["argv"] == list(args)
    assert ran["seen"] == {f"{name}_{NODE}": "-1" for name in DASHBOARD_PORTS}


def test_the_runtime_env_agent_finds_its_fixed_port_written(tmp_path: pathlib.Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    agent = fake_agent(tmp_path, "ray", "_private", "runtime_env", "agent", "main.py")
    _, ran = launch(agent, f"--node-id={NODE}", f"--session-dir={session}", "--runtime-env-agent-port=52367")
    assert ran["seen"] == {f"runtime_env_agent_port_{NODE}": "52367"}


@pytest.mark.parametrize(
    ("parts", "args"),
    [
        (("ray", "dashboard", "agent.py"), ("--listen-port=52365",)),  # a full agent: its ports are its own
        (("ray", "_private", "runtime_env", "agent", "main.py"), ("--runtime-env-agent-port=0",)),  # dynamic
        (("ray", "other", "main.py"), ("--minimal",)),
    ],
    ids=["full dashboard agent", "dynamic runtime-env port", "another script"],
)
def test_ports_not_known_in_advance_are_left_to_the_agent(
    tmp_path: pathlib.Path, parts: tuple[str, ...], args: tuple[str, ...]
) -> None:
    session = tmp_path / "session"
    session.mkdir()
    _, ran = launch(fake_agent(tmp_path, *parts), f"--node-id={NODE}", f"--session-dir={session}", *args)
    assert ran["seen"] == {}


def test_a_port_file_already_there_is_kept(tmp_path: pathlib.Path) -> None:
    session = tmp_path / "session"
    session.mkdir()
    (session / f"metrics_agent_port_{NODE}").write_text("41000")
    agent = fake_agent(tmp_path, "ray", "dashboard", "agent.py")
    _, ran = launch(agent, f"--node-id={NODE}", f"--session-dir={session}", "--minimal")
    seen = ran["seen"]
    assert isinstance(seen, dict) and seen[f"metrics_agent_port_{NODE}"] == "41000"
    assert seen[f"dashboard_agent_listen_port_{NODE}"] == "-1"
