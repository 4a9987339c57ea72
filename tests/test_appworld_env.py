"""AppWorld: real worlds on a dataset built by the project's builder, driven through the Runtime API, and a
fork of an episode (it re-runs the episode's code in a fresh world from the warm pool, so it carries the
databases, the interaction count and the python variables the code defined; each fork then goes its own way).

The dataset (``trainbox_server.envs.appworld.dataset``) is built once per session into a temporary
APPWORLD_ROOT by the AppWorld venv's interpreter. The pure parts of the adapter (action parsing, split
files, rewards) are tested table-driven without the engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from trainbox_server.envs.appworld.dataset import LOGIN, TASKS
from trainbox_server.envs.appworld.family import rewards, split_task_ids
from trainbox_server.envs.appworld.messages import extract_code
from trainbox_server.errors import EnvironmentUnavailable, EpisodeOver, InvalidAction, UnknownSplit, UnknownTask
from trainbox_server.errors import InvalidAction as InvalidActionError
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

REPO = Path(__file__).resolve().parents[1]
TASK = {task.task_id: task for task in TASKS}


def code_message(code: str) -> dict[str, str]:
    return {"role": "assistant", "content": f"Let me do that.\n```python\n{code}```"}


# --- pure parts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code", "call_id"),
    [
        ({"role": "assistant", "content": "```python\nprint(1)\n```"}, "print(1)\n", None),
        ({"content": "think\n```py\nx = 1\n```\n```python\nprint(2)\n```"}, "x = 1\n", None),
        ({"content": "```\nprint(3)\n```"}, "print(3)\n", None),
        ({"content": "stopped at the fence\n```python\nprint(4)\n"}, "print(4)\n", None),
        ({"content": [{"type": "text", "text": "```python\nprint(5)\n```"}]}, "print(5)\n", None),
        (
            {"content": '<tool_call>{"name": "appworld", "arguments": {"code": "print(6)"}}</tool_call>'},
            "print(6)",
            None,
        ),
        (
            {
                "content": None,
                "tool_calls": [
                    {"id": "c7", "type": "function", "function": {"name": "appworld", "arguments": '{"code": "x=7"}'}}
                ],
            },
            "x=7",
            "c7",
        ),
        (
            {"tool_calls": [{"id": "c8", "function": {"name": "appworld", "arguments": {"code": "x=8"}}}]},
            "x=8",
            "c8",
        ),
    ],
)
def test_extract_code_accepts_blocks_and_tool_calls(message: dict, code: str, call_id: str | None) -> None:
    assert extract_code(message) == (code, call_id)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ({"role": "assistant", "content": "I am done."}, "no code to run"),
        ({"content": "```json\n{}\n```"}, "no code to run"),
        ({"content": "```python\n   \n```"}, "no code to run"),
        ({"content": "<tool_call>{not json}</tool_call>"}, "not valid JSON"),
        ({"content": '<tool_call>{"name": "bash", "arguments": {"code": "ls"}}</tool_call>'}, "unknown tool"),
        ({"tool_calls": [{"id": "1", "function": {"name": "search", "arguments": "{}"}}]}, "no tool call named"),
        ({"tool_calls": [{"id": "1", "function": {"name": "appworld", "arguments": "{}"}}]}, '"code"'),
        ("print(1)", "chat message"),
    ],
)
def test_extract_code_refuses_messages_without_code(message: object, says: str) -> None:
    with pytest.raises(InvalidAction) as error:
        extract_code(message)  # type: ignore[arg-type]
    assert says in str(error.value)


def test_split_files_map_to_appworld_datasets(tmp_path: Path) -> None:
    datasets = tmp_path / "data" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "train.txt").write_text("a_1\nb_2\n\n")
    (datasets / "dev.txt").write_text("c_1\n")
    (datasets / "test_normal.txt").write_text("d_1\n")
    (datasets / "test_challenge.txt").write_text("e_1:hard\n")
    assert split_task_ids(str(tmp_path), "train") == ["a_1", "b_2"]
    assert split_task_ids(str(tmp_path), "val") == ["c_1"]
    assert split_task_ids(str(tmp_path), "test") == ["d_1", "e_1"]
    with pytest.raises(UnknownSplit, match="splits are"):
        split_task_ids(str(tmp_path), "dev")
    with pytest.raises(EnvironmentUnavailable, match="make appworld-data") as error:
        split_task_ids(str(tmp_path / "nowhere"), "train")
    assert "APPWORLD_ROOT" in str(error.value)


@pytest.mark.parametrize(
    ("passed", "total", "expected"),
    [(4, 4, (1.0, 1.0)), (3, 4, (0.0, 0.75)), (0, 2, (0.0, 0.0)), (0, 0, (0.0, 0.0))],
)
def test_rewards_sparse_and_dense(passed: int, total: int, expected: tuple[float, float]) -> None:
    assert rewards(passed, total) == expected


# --- real worlds through the runtime ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def appworld_root(appworld_data: Path) -> Iterator[Path]:
    """The suite's builder-made dataset (``appworld_data`` in conftest); APPWORLD_ROOT points at it."""
    root = appworld_data
    previous = os.environ.get("APPWORLD_ROOT")
    os.environ["APPWORLD_ROOT"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("APPWORLD_ROOT", None)
    else:
        os.environ["APPWORLD_ROOT"] = previous


def appworld_config(warm: int, **env: str) -> RuntimeConfig:
    family = FamilyConfig("appworld", warm=warm, processes=1, step_timeout=60.0, create_timeout=300.0, env=env)
    return RuntimeConfig(families={"appworld": family})


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runtime(appworld_root: Path) -> AsyncIterator[Runtime]:
    async with Runtime(appworld_config(warm=2, APPWORLD_ROOT=str(appworld_root))) as rt:
        yield rt


module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.appworld
@module_loop
async def test_task_ids_come_from_appworld_split_files(runtime: Runtime) -> None:
    assert await runtime.task_ids("appworld", "train") == [t.task_id for t in TASKS if t.split == "train"]
    assert await runtime.task_ids("appworld", "val") == [t.task_id for t in TASKS if t.split == "dev"]
    assert await runtime.task_ids("appworld", "test") == [t.task_id for t in TASKS if t.split == "test_normal"]


@pytest.mark.appworld
@module_loop
async def test_correct_solution_scores_one(runtime: Runtime) -> None:
    task = TASK["8c4f2e1_1"]
    created = await runtime.create("appworld", task.task_id)
    try:
        system, user = created.messages
        assert system["role"] == "system" and "apis.supervisor.complete_task" in system["content"]
        assert user["role"] == "user" and task.instruction in user["content"]
        assert "joyce-weav@gmail.com" in user["content"]
        assert created.info["tools"][0]["function"]["name"] == "appworld"

        # Real API calls: the password comes from the supervisor app, the token from Simple Note's login.
        step = await runtime.step(created.instance_id, code_message(LOGIN + "print(len(token) > 10)\n"))
        assert step.messages == [{"role": "user", "content": "Output:\n```\nTrue\n```"}]
        assert (step.reward, step.terminated) == (0.0, False)

        rest = task.solution.removeprefix(LOGIN)
        step = await runtime.step(created.instance_id, code_message(rest))
        assert step.terminated and step.reward == 1.0
        assert step.info["evaluation"]["failures"] == []

        evaluation = await runtime.evaluate(created.instance_id, {"sparse": True})
        assert evaluation.reward == 1.0
        assert evaluation.details["pass_count"] == evaluation.details["num_tests"] == 4
        with pytest.raises(EpisodeOver):
            await runtime.step(created.instance_id, code_message("print(1)\n"))
    finally:
        await runtime.close(created.instance_id)


@pytest.mark.appworld
@module_loop
async def test_wrong_solution_scores_less_and_names_the_failed_requirement(runtime: Runtime) -> None:
    created = await runtime.create("appworld", "3d9a636_1")
    try:
        tool_call = {
            "id": "call_1",
            "type": "function",
            "function": {
                "name": "appworld",
                # Forgets the note added in this task's own data: answers 2 where 3 notes carry the tag.
                "arguments": json.dumps({"code": LOGIN + "apis.supervisor.complete_task(answer=2)"}),
            },
        }
        step = await runtime.step(created.instance_id, {"role": "assistant", "content": "", "tool_calls": [tool_call]})
        assert step.messages[0]["role"] == "tool" and step.messages[0]["tool_call_id"] == "call_1"
        assert step.terminated and step.reward == 0.5

        sparse = await runtime.evaluate(created.instance_id, {"sparse": True})
        dense = await runtime.evaluate(created.instance_id, {"sparse": False})
        assert (sparse.reward, dense.reward) == (0.0, 0.5)
        failures = dense.details["failures"]
        assert [f["requirement"] for f in failures] == ["assert the answer matches the number of notes with the tag."]
        assert "2" in failures[0]["trace"] and "3" in failures[0]["trace"]
    finally:
        await runtime.close(created.instance_id)


@pytest.mark.appworld
@module_loop
async def test_message_without_code_is_invalid_action_and_episode_goes_on(runtime: Runtime) -> None:
    created = await runtime.create("appworld", "b7e05d2_1", {"sparse": True})
    try:
        with pytest.raises(InvalidActionError, match="python"):
            await runtime.step(created.instance_id, {"role": "assistant", "content": "Done, I pinned it."})
        # Errors in model code are observations, not protocol errors.
        step = await runtime.step(created.instance_id, code_message("1 / 0\n"))
        assert "ZeroDivisionError" in step.messages[0]["content"] and not step.terminated
        # Nothing done yet: the no-op-pass requirement passes, the pin requirement fails.
        evaluation = await runtime.evaluate(created.instance_id)
        assert evaluation.reward == 0.0 and evaluation.details["dense"] == 0.5
        step = await runtime.step(created.instance_id, code_message(TASK["b7e05d2_1"].solution))
        assert step.terminated and step.reward == 1.0
    finally:
        await runtime.close(created.instance_id)


@pytest.mark.appworld
@module_loop
async def test_unknown_task_is_refused(runtime: Runtime) -> None:
    for task_id in ("fffffff_9", "../3d9a636_1"):
        with pytest.raises(UnknownTask, match="unknown AppWorld task"):
            await runtime.create("appworld", task_id)


@pytest.mark.appworld
@pytest.mark.asyncio
async def test_missing_data_names_the_command(tmp_path: Path) -> None:
    async with Runtime(appworld_config(warm=0, APPWORLD_ROOT=str(tmp_path / "empty"))) as rt:
        with pytest.raises(EnvironmentUnavailable) as listing:
            await rt.task_ids("appworld", "train")
        with pytest.raises(EnvironmentUnavailable) as creating:
            await rt.create("appworld", "3d9a636_1")
    for error in (listing.value, creating.value):
        assert "make appworld-data" in str(error) and "APPWORLD_ROOT" in str(error)


def fenced(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": f"```python\n{text}\n```"}


@pytest.mark.appworld
@module_loop
async def test_forks_carry_the_world_and_the_variables(runtime: Runtime, appworld_root: Path) -> None:
    task = (await runtime.task_ids("appworld", "train"))[0]
    answer = (appworld_root / "data" / "tasks" / task / "ground_truth" / "answer.json").read_text().strip()
    source = (await runtime.create("appworld", task)).instance_id
    await runtime.step(source, fenced(LOGIN + "remembered = 'kept across the fork'"))
    right, wrong = "fork-right", "fork-wrong"
    await runtime.fork(source, [right, wrong])
    seen = (await runtime.step(right, fenced("print(remembered, token is not None)"))).messages[-1]["content"]
    assert "kept across the fork" in seen and "True" in seen
    done = await runtime.step(right, fenced(f"apis.supervisor.complete_task(answer={answer})"))
    assert done.terminated and done.reward == 1.0
    failed = await runtime.step(wrong, fenced("apis.supervisor.complete_task(answer=123456)"))
    assert failed.terminated and failed.reward < 1.0
    assert not (await runtime.step(source, fenced("print('source goes on')"))).terminated  # untouched
    for instance in (source, right, wrong):
        await runtime.close(instance)
