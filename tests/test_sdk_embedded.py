"""Embedded mode: ``TrainingSandbox()`` with no endpoint starts the real service and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from trainbox import AsyncTrainingSandbox, ServiceStartError, TrainingSandbox

pytest_plugins = ["tests.sdk_fixtures"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.usefixtures("no_trainbox_env", "patient_start")]


@pytest.fixture
def patient_start(no_trainbox_env, monkeypatch):
    """A busy CI machine can take minutes to start Ray; the programs started below inherit this too."""
    monkeypatch.setenv("TRAINBOX_STARTUP_TIMEOUT", "600")


ACTION = {"role": "assistant", "content": "[cd(folder='document')]"}


def _tree(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live descendant of ``root``, read from /proc."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append((int(entry), fields[19]))
    found, stack = set(), [root]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.add(child)
            stack.append(child[0])
    return found


def _running(process: tuple[int, str]) -> bool:
    try:
        fields = Path(f"/proc/{process[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X") and fields[19] == process[1]


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_all_gone(service_pid: int, tree: set[tuple[int, str]], url: str, wait: float = 10.0) -> None:
    """Nothing of the service is left: not its process group, not a process of its tree, not its port.

    ``wait`` only absorbs the time the last exits take to show (zombies being reaped); after ``close()``
    it is short, after a SIGKILLed program it covers the watchdog's graceful stop.
    """
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and (_group_exists(service_pid) or any(_running(p) for p in tree)):
        time.sleep(0.1)
    assert not [p for p in tree if _running(p)], "processes of the embedded service outlived it"
    assert not _group_exists(service_pid), "the embedded service's process group outlived it"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_embedded_service_starts_serves_and_stops():
    with TrainingSandbox() as box:
        assert box.embedded and box.base_url and box.base_url.startswith("http://127.0.0.1:")
        url, pid = box.base_url, box._service.pid  # type: ignore[union-attr]
        created = box.create_instance("bfcl", box.get_env_profile("bfcl")[0])
        assert box.step(created["info"]["instance_id"], ACTION)["state"]
        tree = _tree(pid)
        assert tree, "the service runs Ray and workers under it"
    assert box.base_url is None
    _assert_all_gone(pid, tree, url)


async def test_async_embedded_service_starts_serves_and_stops():
    async with AsyncTrainingSandbox() as box:
        url, pid = box.base_url, box._service.pid  # type: ignore[union-attr]
        assert url is not None and pid is not None
        group = await box.create_group("bfcl", "multi_turn_base_0", 2)
        results = await box.step_many({c["info"]["instance_id"]: ACTION for c in group})
        assert [r["state"][0]["role"] for r in results] == ["tool", "tool"]
        tree = _tree(pid)
    _assert_all_gone(pid, tree, url)


def test_service_is_stopped_at_exit_when_the_program_never_closes_it():
    script = textwrap.dedent(
        """
        from trainbox import TrainingSandbox
        box = TrainingSandbox()                      # never closed: the atexit hook must stop the service
        box.get_env_profile("bfcl")
        print(box.base_url, box._service.pid, flush=True)
        """
    )
    env = dict(os.environ)  # the fixtures cleared TRAINBOX_* but for the start-up patience
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    url, pid = out.stdout.split()
    _assert_all_gone(int(pid), set(), url)


def test_service_is_stopped_when_the_program_is_killed():
    script = textwrap.dedent(
        """
        import os, signal, sys
        from trainbox import TrainingSandbox
        box = TrainingSandbox()
        box.get_env_profile("bfcl")
        print(box.base_url, box._service.pid, flush=True)
        sys.stdin.readline()                         # the test looks at the service's tree meanwhile
        os.kill(os.getpid(), signal.SIGKILL)         # no atexit, no close(): only the watchdog is left
        """
    )
    env = dict(os.environ)  # the fixtures cleared TRAINBOX_* but for the start-up patience
    program = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        url, pid = program.stdout.readline().split()  # type: ignore[union-attr]
        tree = _tree(int(pid))
        assert len(tree) > 1, "the watchdog runs the service, which runs Ray and workers"
        program.communicate("go\n", timeout=60)
        assert program.returncode == -9
        _assert_all_gone(int(pid), tree, url, wait=60)
    finally:
        program.kill()


def test_missing_server_package_says_what_to_do():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["trainbox_server"] = None        # as if only the SDK were installed
        import trainbox
        try:
            trainbox.TrainingSandbox().get_env_profile("bfcl")
        except trainbox.ServiceStartError as exc:
            print(exc)
        """
    )
    env = dict(os.environ)  # the fixtures cleared TRAINBOX_* but for the start-up patience
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert "pip install trainbox-server" in out.stdout and "TRAINBOX_URL" in out.stdout, out.stdout + out.stderr


def test_a_service_that_cannot_start_reports_its_output(monkeypatch):
    monkeypatch.setenv("TRAINBOX_FAMILIES", "{not json")  # the real service refuses this configuration
    box = TrainingSandbox(startup_timeout=120)
    with pytest.raises(ServiceStartError, match="exited with code") as caught:
        box.start()
    assert "JSON" in str(caught.value) or "json" in str(caught.value)
    assert box._service is None and box.base_url is None
