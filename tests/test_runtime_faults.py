"""Faults inside worker processes, caused by real model code in real AppWorld worlds (and bad input through
the runtime with real BFCL): each costs only the instance(s) of that process, is reported as a typed error,
and the pool replaces the process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from trainbox_server.errors import (
    DuplicateInstance,
    EnvironmentUnavailable,
    InstanceLost,
    StepTimeout,
    UnknownEnvironment,
    UnknownInstance,
    UnknownSplit,
    UnknownTask,
)
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

pytestmark = [pytest.mark.appworld, pytest.mark.asyncio(loop_scope="module")]

# AppWorld's guard blocks exit(), sys, os.kill and os._exit; this reaches the real kill through builtins.
KILL_SELF = (
    "g = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__\n"
    "imp = g['__builtins__']['__import__']\n"
    "imp('posix').kill(imp('posix').getpid(), 9)\n"
)
GROW_FOREVER = "x = []\nwhile True:\n    x.append(bytearray(10**8))\n"


def code(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": f"```python\n{text}\n```"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime(appworld_data: Path) -> AsyncIterator[Runtime]:
    appworld = FamilyConfig(
        "appworld", warm=2, step_timeout=4.0, create_timeout=300.0, memory_mb=1536,
        env={"APPWORLD_ROOT": str(appworld_data)},
    )  # fmt: skip
    bfcl = FamilyConfig("bfcl", warm=1, processes=1)
    async with Runtime(RuntimeConfig(families={"appworld": appworld, "bfcl": bfcl})) as rt:
        yield rt


async def two_instances(runtime: Runtime) -> tuple[str, str]:
    task = (await runtime.task_ids("appworld", "train"))[0]
    victim = await runtime.create("appworld", task)
    bystander = await runtime.create("appworld", task)
    assert victim.worker_pid != bystander.worker_pid  # one world per process
    return victim.instance_id, bystander.instance_id


async def assert_still_serves(runtime: Runtime, bystander: str) -> None:
    result = await runtime.step(bystander, code("print(6 * 7)"))
    assert "42" in result.messages[-1]["content"]
    task = (await runtime.task_ids("appworld", "train"))[0]
    fresh = await runtime.create("appworld", task)  # the pool replaced what died
    assert "3" in (await runtime.step(fresh.instance_id, code("print(1 + 2)"))).messages[-1]["content"]
    await runtime.close(fresh.instance_id)
    await runtime.close(bystander)


async def test_a_step_past_its_timeout_is_stopped(runtime: Runtime) -> None:
    victim, bystander = await two_instances(runtime)
    with pytest.raises(StepTimeout) as stopped:
        await runtime.step(victim, code("while True:\n    pass"))
    assert stopped.value.infra and "timeout" in stopped.value.message
    with pytest.raises(InstanceLost):
        await runtime.step(victim, code("print(1)"))
    await assert_still_serves(runtime, bystander)


async def test_code_that_kills_its_process_costs_only_its_instance(runtime: Runtime) -> None:
    victim, bystander = await two_instances(runtime)
    with pytest.raises(InstanceLost) as lost:
        await runtime.step(victim, code(KILL_SELF))
    assert lost.value.infra and "SIGKILL" in lost.value.message
    await assert_still_serves(runtime, bystander)


async def test_unbounded_allocation_is_contained(runtime: Runtime) -> None:
    victim, bystander = await two_instances(runtime)
    try:
        result = await runtime.step(victim, code(GROW_FOREVER))
        assert "MemoryError" in result.messages[-1]["content"]  # the engine caught it: the episode goes on
    except InstanceLost as lost:
        assert lost.infra and "memory" in lost.message
    except StepTimeout as stopped:  # a machine too slow to reach the limit in time: still stopped, still typed
        assert stopped.infra
    await assert_still_serves(runtime, bystander)


async def test_exit_is_refused_and_the_episode_goes_on(runtime: Runtime) -> None:
    victim, bystander = await two_instances(runtime)
    result = await runtime.step(victim, code("exit()"))
    assert "not allowed" in result.messages[-1]["content"]
    assert "ok" in (await runtime.step(victim, code("print('ok')"))).messages[-1]["content"]
    await runtime.close(victim)
    await assert_still_serves(runtime, bystander)


async def test_bad_input_is_typed_and_leaves_nothing_behind(runtime: Runtime) -> None:
    with pytest.raises(UnknownEnvironment, match="available"):
        await runtime.create("webshop", "x")
    with pytest.raises(UnknownSplit, match="train"):
        await runtime.task_ids("bfcl", "dev")
    with pytest.raises(UnknownInstance):
        await runtime.step("nope", {"role": "assistant", "content": "[ls()]"})
    live_before = dict(runtime.instances)
    with pytest.raises(UnknownTask):
        await runtime.create("bfcl", "multi_turn_base_999999")
    assert runtime.instances == live_before  # a failed create leaves nothing
    assert sum(len(w.instances) for w in runtime.pool("bfcl").workers) == len(
        [i for i, (pool, _) in runtime.instances.items() if pool is runtime.pool("bfcl")]
    )
    made = await runtime.create("bfcl", "multi_turn_base_0", instance_id="mine")
    with pytest.raises(DuplicateInstance):
        await runtime.create("bfcl", "multi_turn_base_0", instance_id="mine")
    assert await runtime.close(made.instance_id) is True and await runtime.close("mine") is False


async def test_a_family_that_is_not_installed_says_how_to_install_it() -> None:
    missing = FamilyConfig("bfcl", python="/nonexistent/python")
    async with Runtime(RuntimeConfig(families={"bfcl": missing})) as rt:
        with pytest.raises(EnvironmentUnavailable, match="make install"):
            await rt.create("bfcl", "multi_turn_base_0")
