"""Fork of an AppWorld episode (real worlds, sandboxed): the fork re-runs the episode's code in a fresh world
from the warm pool, so it carries the databases, the interaction count and the python variables the code
defined; each fork then goes its own way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from trainbox_server.envs.appworld_dataset import LOGIN
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

pytestmark = [pytest.mark.appworld, pytest.mark.asyncio(loop_scope="module")]


def code(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": f"```python\n{text}\n```"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime(appworld_data: Path) -> AsyncIterator[Runtime]:
    appworld = FamilyConfig(
        "appworld", warm=2, step_timeout=60.0, create_timeout=300.0, memory_mb=1536,
        env={"APPWORLD_ROOT": str(appworld_data)},
    )  # fmt: skip
    async with Runtime(RuntimeConfig(families={"appworld": appworld})) as rt:
        yield rt


async def test_forks_carry_the_world_and_the_variables(runtime: Runtime, appworld_data: Path) -> None:
    task = (await runtime.task_ids("appworld", "train"))[0]
    answer = (appworld_data / "data" / "tasks" / task / "ground_truth" / "answer.json").read_text().strip()
    source = (await runtime.create("appworld", task)).instance_id
    await runtime.step(source, code(LOGIN + "remembered = 'kept across the fork'"))
    right, wrong = "fork-right", "fork-wrong"
    await runtime.fork(source, [right, wrong])
    seen = (await runtime.step(right, code("print(remembered, token is not None)"))).messages[-1]["content"]
    assert "kept across the fork" in seen and "True" in seen
    done = await runtime.step(right, code(f"apis.supervisor.complete_task(answer={answer})"))
    assert done.terminated and done.reward == 1.0
    failed = await runtime.step(wrong, code("apis.supervisor.complete_task(answer=123456)"))
    assert failed.terminated and failed.reward < 1.0
    assert not (await runtime.step(source, code("print('source goes on')"))).terminated  # untouched
    for instance in (source, right, wrong):
        await runtime.close(instance)
