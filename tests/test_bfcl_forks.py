"""BFCL workers are plain forks of a warm fork server (runtime.forkserver): each has its own pipes, session and
environment (exactly what a worker started on its own gets), a killed one is reaped and replaced, a killed
server takes its workers with it and is replaced, and nothing outlives the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from trainbox_server.errors import InstanceLost, StepTimeout
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig, forkclient
from trainbox_server.runtime.forkclient import ForkedProcess

from tests.servicekit import descendants, survivors

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
TASK = "multi_turn_base_15"
LS = {"role": "assistant", "content": "[ls()]"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime() -> AsyncIterator[Runtime]:
    bfcl = FamilyConfig("bfcl", warm=1, processes=1, step_timeout=3.0)
    async with Runtime(RuntimeConfig(families={"bfcl": bfcl})) as rt:
        yield rt


def environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if p)


def stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...


async def test_workers_are_plain_forks_with_their_own_session_and_a_workers_environment(runtime: Runtime) -> None:
    instance = (await runtime.create("bfcl", TASK)).instance_id
    pool, worker = runtime.instances[instance]
    assert isinstance(worker.proc, ForkedProcess) and worker.proc.holder is None
    assert pool._forkserver is not None and pool._forkserver.proc is not None
    ppid, pgrp, session = stat_fields(worker.pid)[1:4]
    assert int(ppid) == pool._forkserver.proc.pid  # a fork of the server, reaped by it
    assert int(pgrp) == int(session) == worker.pid  # a session of its own (a kill takes its whole session)
    assert environ(worker.pid) == pool.config.spec().command()[1]  # what a worker started on its own gets
    assert os.stat(f"/proc/{worker.pid}").st_uid == os.getuid()  # the runtime's user, as such workers always ran
    fds = {fd: os.readlink(f"/proc/{worker.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{worker.pid}/fd")}
    assert all(t.startswith("pipe:") or t == "/dev/null" for t in fds.values()), fds  # nothing inherited
    assert "multi_turn" not in str(await runtime.step(instance, LS))  # it serves
    await runtime.close(instance)


async def test_a_worker_killed_by_its_timeout_is_reaped_and_replaced(runtime: Runtime) -> None:
    instance = (await runtime.create("bfcl", TASK)).instance_id
    worker = runtime.instances[instance][1]
    pid = worker.pid
    with pytest.raises(StepTimeout):
        await runtime.step(instance, {"role": "assistant", "content": "[power(base=3, exponent=1000000000)]"})
    assert not await survivors([pid]), "the killed worker was not reaped"
    assert worker.proc.returncode == 128 + 9
    fresh = (await runtime.create("bfcl", TASK)).instance_id
    assert runtime.instances[fresh][1].pid != pid
    await runtime.step(fresh, LS)
    await runtime.close(fresh)


async def test_a_killed_fork_server_takes_its_workers_and_is_replaced(runtime: Runtime) -> None:
    instance = (await runtime.create("bfcl", TASK)).instance_id
    pool, worker = runtime.instances[instance]
    server = pool._forkserver
    assert server is not None and server.proc is not None
    old_pid, worker_pid = server.proc.pid, worker.pid
    os.kill(old_pid, 9)
    # its exit can no longer be learnt: the worker is killed, not orphaned
    assert not await survivors([worker_pid]), "a worker outlived its fork server"
    with contextlib.suppress(InstanceLost):  # (BFCL restores an instance of a dead worker where it can)
        await runtime.close(instance)
    again = (await runtime.create("bfcl", TASK)).instance_id
    await runtime.step(again, LS)
    assert server.proc is not None and server.proc.pid != old_pid
    await runtime.close(again)


async def test_nothing_outlives_the_runtime() -> None:
    async with Runtime(RuntimeConfig(families={"bfcl": FamilyConfig("bfcl", warm=0, processes=1)})) as rt:
        instance = (await rt.create("bfcl", TASK)).instance_id
        pool, worker = rt.instances[instance]
        assert pool._forkserver is not None and pool._forkserver.proc is not None
        pids = [pool._forkserver.proc.pid, worker.pid, *descendants(pool._forkserver.proc.pid)]
        forked = worker.proc
        assert isinstance(forked, ForkedProcess) and len(forked.pipes) == 2
    # none of our ends of its pipes, once the runtime closed (an open one would outlive the event loop)
    assert all(transport.is_closing() for transport, _ in forked.pipes) and forked.stdin.is_closing()
    assert not await survivors(pids), "processes outlived their runtime"


async def test_with_the_fork_server_off_workers_start_their_own_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINBOX_FORKSERVER", "off")
    async with Runtime(RuntimeConfig(families={"bfcl": FamilyConfig("bfcl", warm=0, processes=1)})) as rt:
        instance = (await rt.create("bfcl", TASK)).instance_id
        pool, worker = rt.instances[instance]
        assert pool._forkserver is None and not isinstance(worker.proc, ForkedProcess)
        await rt.step(instance, LS)


async def test_a_start_cancelled_while_its_pipes_are_wrapped_leaves_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool closing cancels the starts in flight: one cancelled halfway through wrapping its pipes must
    close every pipe end and kill its fork (the wrap is held at its second stream, deterministically)."""
    instance = (await runtime.create("bfcl", TASK)).instance_id
    pool = runtime.instances[instance][0]
    await runtime.close(instance)
    server = pool._forkserver
    assert server is not None and server.proc is not None
    held, release = asyncio.Event(), asyncio.Event()
    original, calls = forkclient._reader, []

    async def held_reader(loop: asyncio.AbstractEventLoop, fd: int) -> object:
        calls.append(fd)
        if len(calls) == 2:  # stdin's writer and stdout's reader are made: hold stderr's
            held.set()
            await release.wait()
        return await original(loop, fd)

    monkeypatch.setattr(forkclient, "_reader", held_reader)
    before, fds_before = set(descendants(server.proc.pid)), set(os.listdir("/proc/self/fd"))
    start = asyncio.create_task(pool._start_worker())
    await asyncio.wait_for(held.wait(), 30)
    forked = set(descendants(server.proc.pid)) - before
    assert forked, "no fork was made"
    start.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await start
    release.set()
    for _ in range(50):  # the wrap finishes by itself, and what it made is closed
        await asyncio.sleep(0.02)
    assert not await survivors(sorted(forked)), "the cancelled start's fork is still running"
    gc.collect()  # an unclosed transport would warn here, failing this test
    left = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in set(os.listdir("/proc/self/fd")) - fds_before}
    assert not {fd: what for fd, what in left.items() if what.startswith("pipe:")}, "pipe ends left open"
