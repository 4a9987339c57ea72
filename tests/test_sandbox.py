"""Model code cannot escape its sandbox: each escape found in issue 13, tried by real model code in real
AppWorld worlds (the project's dataset builder), against a runtime whose process holds a secret token."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from trainbox_server.errors import InstanceLost
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig
from trainbox_server.runtime.forkclient import ForkedProcess

from tests.servicekit import descendants, survivors

pytestmark = [pytest.mark.appworld, pytest.mark.asyncio(loop_scope="module")]

SECRET = f"secret-{uuid.uuid4().hex}"
POSIX = "p = os.sys.modules['posix']\n"  # AppWorld's deny-list does not cover the posix module


def code(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": f"```python\nimport os\n{POSIX}{text}\n```"}


def output(result: object) -> str:
    return str(result.messages[-1]["content"])  # type: ignore[attr-defined]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime(appworld_data: Path) -> AsyncIterator[Runtime]:
    os.environ["TRAINBOX_TOKEN"] = SECRET  # what a service process holds; workers must never see it
    appworld = FamilyConfig(
        "appworld", warm=2, step_timeout=20.0, create_timeout=300.0, memory_mb=1536,
        env={"APPWORLD_ROOT": str(appworld_data)},
    )  # fmt: skip
    try:
        async with Runtime(RuntimeConfig(families={"appworld": appworld})) as rt:
            yield rt
    finally:
        os.environ.pop("TRAINBOX_TOKEN", None)


async def fresh(runtime: Runtime) -> tuple[str, str]:
    """A new instance of the first train task: (instance id, task id)."""
    task = (await runtime.task_ids("appworld", "train"))[0]
    return (await runtime.create("appworld", task)).instance_id, task


async def test_the_environment_is_scrubbed(runtime: Runtime) -> None:
    instance, _ = await fresh(runtime)
    seen = output(await runtime.step(instance, code("print(sorted(k.decode() for k in p.environ))")))
    assert SECRET not in seen and "TRAINBOX_TOKEN" not in seen
    assert "APPWORLD_ROOT" in seen and "RAY" not in seen
    await runtime.close(instance)


async def test_a_shell_runs_unprivileged_and_its_files_stay_inside(runtime: Runtime) -> None:
    instance, _ = await fresh(runtime)
    marker = f"/tmp/trainbox-escape-{uuid.uuid4().hex}"
    shell = f"p.system('id > {marker}')\nprint(p.read(p.open('{marker}', 0), 200))"
    seen = output(await runtime.step(instance, code(shell)))
    assert "uid=" in seen and "uid=0(" not in seen  # the shell ran, as a per-worker unprivileged uid
    uid = output(await runtime.step(instance, code("print(p.getuid(), p.geteuid(), p.getgroups())")))
    assert " 0 " not in f" {uid} " and "[]" in uid
    assert not os.path.exists(marker)  # its /tmp is a private tmpfs
    await runtime.close(instance)


async def test_the_answers_are_out_of_reach(runtime: Runtime, appworld_data: Path) -> None:
    instance, task = await fresh(runtime)
    real = appworld_data / "data" / "tasks" / task / "ground_truth"
    assert (real / "evaluation.py").is_file()  # it exists on the host: the evaluator reads it
    probes = {
        "listing": f"print(p.listdir('/appworld/data/tasks/{task}'))",
        "host path": f"print(p.listdir('{real}'))",
        "view path": f"print(p.listdir('/appworld/data/tasks/{task}/ground_truth'))",
        "data root": f"print(p.listdir('{appworld_data}'))",
    }
    seen = {name: output(await runtime.step(instance, code(text))) for name, text in probes.items()}
    assert "ground_truth" not in seen["listing"] and "specs.json" in seen["listing"]
    for name in ("host path", "view path", "data root"):
        assert "FileNotFoundError" in seen[name] or "No such file" in seen[name], (name, seen[name])
    await runtime.close(instance)


async def test_no_other_process_or_instance_is_visible(runtime: Runtime) -> None:
    first, _ = await fresh(runtime)
    second, _ = await fresh(runtime)
    await runtime.step(first, code("p.write(p.open('/tmp/mine.txt', 65), b'first')"))
    assert "mine.txt" not in output(await runtime.step(second, code("print(p.listdir('/tmp'))")))
    highest = "print('pids', max(int(x) for x in p.listdir('/proc') if x.isdigit()))"
    seen = output(await runtime.step(second, code(highest)))
    assert int(seen.split("pids")[1].split()[0]) < 10  # its own PID namespace: bubblewrap's init and the worker
    killed = output(await runtime.step(second, code(f"p.kill({os.getpid()}, 9)")))
    assert "ProcessLookupError" in killed  # the runtime's pid does not exist in there
    for instance in (first, second):
        await runtime.close(instance)


async def test_killing_its_parent_costs_only_its_own_instance(runtime: Runtime) -> None:
    victim, _ = await fresh(runtime)
    bystander, _ = await fresh(runtime)
    try:
        await runtime.step(victim, code("p.kill(p.getppid(), 9)\np.kill(1, 9)\nprint('still here')"))
    except InstanceLost as lost:
        assert lost.infra
    assert "42" in output(await runtime.step(bystander, code("print(6 * 7)")))
    await runtime.close(victim)
    await runtime.close(bystander)


async def test_no_network_and_no_way_to_the_service(runtime: Runtime) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    instance, _ = await fresh(runtime)
    try:
        attempt = (
            "import socket\n"
            "for host in ('127.0.0.1', '127.0.0.2'):\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=2)\n"
            "        print('connected', host)\n"
            "    except OSError as e:\n"
            "        print('refused', host, type(e).__name__)\n"
        )
        seen = output(await runtime.step(instance, code(attempt)))
        assert "connected" not in seen
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's loopback
    finally:
        listener.close()
        await runtime.close(instance)


async def test_a_forked_child_does_not_outlive_its_instance(runtime: Runtime) -> None:
    instance, _ = await fresh(runtime)
    _, worker = runtime.instances[instance]
    fork = "if p.fork() == 0:\n    p.setsid()\n    while True:\n        pass\nprint('parent goes on')"
    assert "parent goes on" in output(await runtime.step(instance, code(fork)))
    tree = [worker.pid, *descendants(worker.pid)]
    if isinstance(worker.proc, ForkedProcess):  # the worker, the child; the joiner; the sandbox's bubblewrap
        tree += [worker.proc.pid, worker.proc.holder.pid, *descendants(worker.proc.holder.pid)]
        assert len(tree) >= 6  # ... its init and the process that holds the sandbox open
    assert len(tree) >= 4  # bubblewrap, its init, the worker and the forked child
    await runtime.close(instance)
    alive = await survivors(tree)
    assert not alive, f"processes outlived their instance: {alive}"


async def test_rewards_come_from_the_evaluator(runtime: Runtime, appworld_data: Path) -> None:
    task = (await runtime.task_ids("appworld", "train"))[0]
    answer = (appworld_data / "data" / "tasks" / task / "ground_truth" / "answer.json").read_text().strip()
    wrong = (await runtime.create("appworld", task)).instance_id
    step = await runtime.step(wrong, code("apis.supervisor.complete_task(answer=987654)"))
    assert step.terminated and step.reward < 1.0
    right = (await runtime.create("appworld", task)).instance_id
    step = await runtime.step(right, code(f"apis.supervisor.complete_task(answer={answer})"))
    assert step.terminated and step.reward == 1.0  # the evaluator kept nothing of the wrong state
    judge = runtime.pools["appworld"]._judge
    assert judge is not None and isinstance(judge.proc, ForkedProcess)  # forked too, into its own sandbox
    assert (await runtime.evaluate(wrong, {"sparse": True})).reward == 0.0
    for instance in (wrong, right):
        await runtime.close(instance)


# --- workers forked from the family's fork server (runtime.forkserver) -------------------------------------

STATUS = "print(p.read(p.open('/proc/self/status', 0), 4096).decode())"


def status_fields(text: str) -> dict[str, str]:
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


async def test_workers_are_forks_that_join_their_own_sandbox_with_nothing_left(runtime: Runtime) -> None:
    """As root, every AppWorld worker is a fork of the warm fork server, inside a bubblewrap of its own: it
    holds no capability in any set, has no_new_privs, its own uid (no groups) and sees only its sandbox."""
    first, _ = await fresh(runtime)
    second, _ = await fresh(runtime)
    uids = []
    for instance in (first, second):
        worker = runtime.instances[instance][1]
        assert isinstance(worker.proc, ForkedProcess), "the worker did not come from the fork server"
        fields = status_fields(output(await runtime.step(instance, code(STATUS))))
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(fields[key], 16) == 0, (key, fields[key])
        assert fields["NoNewPrivs"] == "1"
        assert fields["Groups"] == ""
        real, effective, saved, _ = fields["Uid"].split()
        assert real == effective == saved and int(real) >= 200000
        uids.append(real)
        assert int(fields["Pid"]) < 10  # a member of its sandbox's PID namespace
    assert uids[0] != uids[1]  # per-worker uids: one worker's processes limit and signals never reach another
    for instance in (first, second):
        await runtime.close(instance)


async def test_a_killed_fork_server_costs_its_live_workers_and_is_replaced(runtime: Runtime) -> None:
    instance, _ = await fresh(runtime)
    pool = runtime.instances[instance][0]
    server = pool._forkserver
    assert server is not None and server.proc is not None
    old_pid = server.proc.pid
    os.kill(old_pid, 9)
    started = await pool._start_worker()  # at once: the death is not seen yet, the start must still succeed
    assert isinstance(started.proc, ForkedProcess)
    await started.stop()
    with pytest.raises(InstanceLost) as lost:  # its exit can no longer be learnt: its sandbox is taken down
        for _ in range(50):
            await runtime.step(instance, code("print(1)"))
            await asyncio.sleep(0.1)
    assert lost.value.infra
    again, _ = await fresh(runtime)  # the next start brings a new fork server
    assert "42" in output(await runtime.step(again, code("print(6 * 7)")))
    assert server.proc is not None and server.proc.pid != old_pid
    await runtime.close(again)


async def test_nothing_of_a_fork_server_outlives_its_runtime(appworld_data: Path) -> None:
    appworld = FamilyConfig("appworld", warm=0, create_timeout=300.0, env={"APPWORLD_ROOT": str(appworld_data)})
    async with Runtime(RuntimeConfig(families={"appworld": appworld})) as rt:
        task = (await rt.task_ids("appworld", "train"))[0]
        instance = (await rt.create("appworld", task)).instance_id
        pool, worker = rt.instances[instance]
        assert isinstance(worker.proc, ForkedProcess) and pool._forkserver is not None
        assert pool._forkserver.proc is not None
        assert worker.pid != worker.proc.pid  # the worker's own pid, below its joiner
        pids = [pool._forkserver.proc.pid, worker.proc.pid, worker.pid, *descendants(worker.pid)]
        pids += [worker.proc.holder.pid, *descendants(worker.proc.holder.pid)]
        assert len(pids) >= 6
    alive = await survivors(pids)
    assert not alive, f"processes outlived their runtime: {alive}"
