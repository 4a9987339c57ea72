"""BFCL through the Runtime API: real bfcl-eval data, environments and official checkers in worker processes,
for every release served (``bfcl@<release>``, each in its own venv; plain ``bfcl`` is the current one).

Acceptance, per release: every task of the four multi-turn categories scores 1.0 when its ground-truth calls are
replayed through create/step/evaluate, both one call per step (spread over the three action formats) and all of
a turn's calls in one step, a plain message ending each turn; a wrong call scores 0.0 with the checker's reason;
every single-turn task's ground truth scores 1.0 (except the few whose ground truth the release's own checker
rejects: ``bfcl_replay.UNPASSABLE_BY_RELEASE``) and a wrong argument scores 0.0.

Without the runtime, the same replay runs in a release's venv: ``PYTHONPATH=server
.venvs/bfcl-2026.3.23/bin/python tests/bfcl_replay.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from trainbox_server.envs.bfcl.data import UPSTREAM_FIXES
from trainbox_server.envs.bfcl.splits import natural_key
from trainbox_server.errors import (
    EnvironmentUnavailable,
    EpisodeOver,
    InvalidAction,
    InvalidRequest,
    UnknownEnvironment,
    UnknownSplit,
    UnknownTask,
    UnsupportedTask,
)
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

from tests import bfcl_replay as replay

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]  # every test starts workers
CONCURRENCY = 16
RELEASES = replay.RELEASES


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def rt() -> AsyncIterator[Runtime]:
    config = RuntimeConfig(families={"bfcl": FamilyConfig("bfcl", warm=1, processes=2)})
    async with Runtime(config) as runtime:
        yield runtime


async def play(
    rt: Runtime, task_id: str, turns: list[list[dict[str, Any]]], env: str = "bfcl"
) -> tuple[Any, list[Any]]:
    """Create, play every message, evaluate (sparse and dense), close. Returns (last step, evaluations)."""
    created = await rt.create(env, task_id, {})
    try:
        last = None
        for turn in turns:
            for message in turn:
                last = await rt.step(created.instance_id, message)
        evaluations = [await rt.evaluate(created.instance_id, {"sparse": s}) for s in (True, False)]
        return last, evaluations
    finally:
        await rt.close(created.instance_id)


async def gather_limited(coroutines: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(coroutine: Any) -> Any:
        async with gate:
            return await coroutine

    return await asyncio.gather(*(run(c) for c in coroutines))


# --- task listing and creation ---------------------------------------------------------------------------


async def test_splits_are_deterministic_disjoint_and_stratified(rt: Runtime) -> None:
    splits = {s: await rt.task_ids("bfcl", s) for s in ("train", "val", "test")}
    every = [i for ids in splits.values() for i in ids]
    assert len(every) == len(set(every))
    for category in ("multi_turn_base", "multi_turn_long_context", "simple_python", "live_multiple"):
        sizes = {s: sum(i.rsplit("_", 1)[0] == category for i in ids) for s, ids in splits.items()}
        total = sum(sizes.values())
        assert total == len(replay.ground_truth(category))
        assert sizes["train"] == round(total * 0.8) and sizes["val"] == round(total * 0.9) - sizes["train"]
    assert "multi_turn_base_12" in splits["test"]  # pinned by the scheme (see bfcl.splits)
    assert not any(i.startswith(("memory", "web_search")) for i in every)
    assert sum(i.startswith("format_sensitivity_") for i in every) == 200 * 26  # 200 tasks in 26 prompt formats
    with pytest.raises(UnknownSplit, match="train"):
        await rt.task_ids("bfcl", "dev")


async def test_create_gives_system_prompt_first_user_turn_and_tools(rt: Runtime) -> None:
    created = await rt.create("bfcl", "multi_turn_base_0", {})
    try:
        system, user = created.messages
        assert system["role"] == "system" and "[func_name1(params_name1=params_value1" in system["content"]
        assert '"name": "cd"' in system["content"]
        assert user == {"role": "user", "content": replay_question("multi_turn_base_0", 0)}
        names = {t["function"]["name"] for t in created.info["tools"]}
        assert {"cd", "mv", "post_tweet"} <= names and created.info["tools"][0]["type"] == "function"
        assert created.info["num_turns"] == 4 and created.info["multi_turn"] is True
    finally:
        await rt.close(created.instance_id)
    single = await rt.create("bfcl", "simple_python_0", {})
    assert [m["role"] for m in single.messages] == ["system", "user"]
    assert {t["function"]["name"] for t in single.info["tools"]} == {"calculate_triangle_area"}
    await rt.close(single.instance_id)


def replay_question(task_id: str, turn: int) -> str:
    path = Path(replay.BFCL_PYTHON).parents[1] / "lib"
    data = next(path.glob("python*/site-packages/bfcl_eval/data"))
    category = task_id.rsplit("_", 1)[0]
    for line in (data / f"BFCL_v4_{category}.json").read_text().splitlines():
        entry = json.loads(line)
        if entry["id"] == task_id:
            return str(entry["question"][turn][0]["content"])
    raise KeyError(task_id)


@pytest.mark.parametrize(
    ("task_id", "error", "fragment"),
    [
        ("multi_turn_base_9999", UnknownTask, r"task_ids\(split\)"),
        ("no_such_category_1", UnknownTask, "multi_turn_base_0"),
        ("memory_kv_0-customer-0", UnsupportedTask, "embedding-model"),
        ("web_search_base_0", UnsupportedTask, "internet"),
        ("format_sensitivity_0", UnknownTask, "format_sensitivity"),  # the id names its format and source task
    ],
)
async def test_bad_task_ids_are_typed_errors(rt: Runtime, task_id: str, error: type, fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        await rt.create("bfcl", task_id, {})


# --- multi-turn -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("batched", [False, True], ids=["call-per-step", "turn-per-step"])
@pytest.mark.parametrize("category", replay.MULTI_TURN)
@pytest.mark.parametrize("release", RELEASES)
async def test_every_multi_turn_ground_truth_scores_one(
    rt: Runtime, release: str, category: str, batched: bool
) -> None:
    task_ids = list(replay.ground_truth(category, release))
    steps = {t: replay.multi_turn_steps(t, release=release, batched=batched) for t in task_ids}
    if batched:  # really one step per turn with calls (plus the plain message that ends it)
        assert all(len(turn) <= 2 for turns in steps.values() for turn in turns)
    results = await gather_limited([play(rt, t, steps[t], f"bfcl@{release}") for t in task_ids])
    failures = {
        t: (last, [e.details.get("error_message") for e in evals])
        for t, (last, evals) in zip(task_ids, results, strict=True)
        if not (last.terminated and last.reward == 1.0 and [e.reward for e in evals] == [1.0, 1.0])
    }
    assert not failures, f"{len(failures)}/{len(task_ids)} failed: {dict(list(failures.items())[:3])}"
    assert len(task_ids) == 200


@pytest.mark.parametrize("task_id", ["multi_turn_base_0", "multi_turn_miss_param_3", "multi_turn_long_context_7"])
@pytest.mark.parametrize("release", RELEASES)
async def test_a_wrong_call_scores_zero_with_the_checkers_reason(rt: Runtime, release: str, task_id: str) -> None:
    wrong = replay.wrong_multi_turn_steps(task_id, release)
    last, (sparse, dense) = await play(rt, task_id, wrong, f"bfcl@{release}")
    assert last.terminated and last.reward == 0.0 and sparse.reward == 0.0
    assert sparse.details["valid"] is False and sparse.details["finished"] is True
    assert sparse.details["error_type"] == "multi_turn:instance_state_mismatch"
    assert "does not match the state with ground truth" in sparse.details["error_message"]
    assert sparse.details["findings"]["differences"]
    assert dense.reward == 0.0 and dense.details["turns_passed"] == 0


async def test_dense_reward_credits_the_turns_passed_before_a_failure(rt: Runtime) -> None:
    task_id = "multi_turn_base_0"
    turns = replay.multi_turn_steps(task_id)
    last_turn = [{"role": "assistant", "content": "[mkdir(dir_name='not_asked_for')]"}, replay.END_OF_TURN]
    _, (sparse, dense) = await play(rt, task_id, [*turns[:-1], last_turn])
    num_turns = len(turns)
    assert sparse.reward == 0.0 and dense.details["mode"] == "dense"
    assert dense.details["turns_passed"] == num_turns - 1
    assert dense.reward == pytest.approx((num_turns - 1) / num_turns)


async def test_multi_turn_observations_and_turn_flow(rt: Runtime) -> None:
    created = await rt.create("bfcl", "multi_turn_base_0", {})
    iid = created.instance_id
    openai = replay._as_format([("cd", {"folder": "document"}), ("ls", {})], 2, "t")
    step = await rt.step(iid, openai)
    assert [m["tool_call_id"] for m in step.messages] == ["t-0", "t-1"]
    assert [m["role"] for m in step.messages] == ["tool", "tool"] and not step.terminated
    assert json.loads(step.messages[0]["content"]) == {"current_working_directory": "document"}
    # model mistakes BFCL shows as execution errors are observations, not exceptions
    step = await rt.step(iid, {"role": "assistant", "content": "[rm_rf(path='/'), cd(fold='x'), cd(folder=3)]"})
    contents = [m["content"] for m in step.messages]
    assert all(c.startswith("Error during execution: ") for c in contents)
    assert "'rm_rf' is not defined" in contents[0] and "available functions" in contents[0]
    assert "missing a required argument: 'folder'; signature: cd(folder: str)" in contents[1]
    assert "expects string, got int 3" in contents[2]
    # broken call syntax and non-literal arguments are refused; the episode goes on
    for bad in ("<tool_call>{oops}</tool_call>", "[cd(folder=__import__('os').getcwd())]"):
        with pytest.raises(InvalidAction, match="accepted call formats"):
            await rt.step(iid, {"role": "assistant", "content": bad})
    step = await rt.step(iid, {"role": "assistant", "content": "Done with this part."})
    assert step.messages == [{"role": "user", "content": replay_question("multi_turn_base_0", 1)}]
    assert step.reward == 0.0 and not step.terminated and step.info["turn"] == 1
    await rt.close(iid)


async def test_miss_func_turn_reveals_the_held_out_tools(rt: Runtime) -> None:
    task_id = "multi_turn_miss_func_0"
    created = await rt.create("bfcl", task_id, {})
    iid = created.instance_id
    assert "sort" not in {t["function"]["name"] for t in created.info["tools"]}
    turns = replay.multi_turn_steps(task_id)
    revealed = None
    for turn in turns[:3]:
        for message in turn:
            step = await rt.step(iid, message)
            if "new_tools" in step.info:
                revealed = step
    assert revealed is not None and revealed.info["turn"] == 3
    assert [t["function"]["name"] for t in revealed.info["new_tools"]] == ["sort"]
    assert "sort" in {t["function"]["name"] for t in revealed.info["tools"]}
    assert "I have updated some more functions" in revealed.messages[0]["content"]
    assert "'name': 'sort'" in revealed.messages[0]["content"]
    await rt.close(iid)


async def test_step_after_the_end_and_unfinished_evaluation(rt: Runtime) -> None:
    task_id = "multi_turn_base_1"
    created = await rt.create("bfcl", task_id, {})
    iid = created.instance_id
    early = await rt.evaluate(iid, {})
    assert early.reward == 0.0 and early.details["finished"] is False
    for turn in replay.multi_turn_steps(task_id):
        for message in turn:
            last = await rt.step(iid, message)
    assert last.terminated and last.reward == 1.0 and last.info["evaluation"]["valid"] is True
    with pytest.raises(EpisodeOver):
        await rt.step(iid, replay.END_OF_TURN)
    await rt.close(iid)


async def test_model_text_is_never_executed(rt: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    created = await rt.create("bfcl", "multi_turn_base_0", {})
    for attack in (
        f"[__import__('os').system('touch {marker}')]",
        f"[cd(folder=__import__('os').system('touch {marker}'))]",
        f"[cd(folder='x'), exec(\"open('{marker}', 'w')\")]",
        f'<tool_call>{{"name": "exec", "arguments": {{"source": "open(\'{marker}\',\'w\')"}}}}</tool_call>',
    ):
        with contextlib.suppress(InvalidAction):
            await rt.step(created.instance_id, {"role": "assistant", "content": attack})
    await rt.close(created.instance_id)
    assert not marker.exists() and not os.path.exists(marker)


# --- single-turn ------------------------------------------------------------------------------------------


async def single_turn(rt: Runtime, task_id: str, style: int, wrong: bool = False, release: str = replay.CURRENT) -> Any:
    created = await rt.create(f"bfcl@{release}", task_id, {})
    try:
        step = await rt.step(created.instance_id, replay.single_turn_message(task_id, style, wrong, release))
        evaluation = await rt.evaluate(created.instance_id, {})
        assert step.terminated and step.reward == evaluation.reward
        return evaluation
    except InvalidAction as exc:
        return exc
    finally:
        await rt.close(created.instance_id)


@pytest.mark.slow
@pytest.mark.parametrize("category", replay.SINGLE_TURN)
@pytest.mark.parametrize("release", RELEASES)
async def test_every_single_turn_ground_truth_scores_one(rt: Runtime, release: str, category: str) -> None:
    unpassable = replay.UNPASSABLE_BY_RELEASE[release]
    task_ids = list(replay.ground_truth(category, release))
    results = await gather_limited([single_turn(rt, t, i % 3, release=release) for i, t in enumerate(task_ids)])
    scores = dict(zip(task_ids, results, strict=True))
    failures = {t: r for t, r in scores.items() if getattr(r, "reward", None) != 1.0 and t not in unpassable}
    assert not failures, f"{len(failures)}/{len(task_ids)} failed: {dict(list(failures.items())[:3])}"
    for task_id in set(unpassable) & set(scores):  # the list is exact: each of them really fails
        assert getattr(scores[task_id], "reward", 0.0) == 0.0


@pytest.mark.parametrize(
    ("task_id", "error_type"),
    [
        ("simple_python_0", "value_error"),
        ("parallel_3", "parallel_function_checker_no_order:cannot_find_match"),
        ("multiple_10", "value_error"),
        ("live_simple_0-0-0", "value_error"),
        ("simple_javascript_1", "value_error"),
    ],
)
@pytest.mark.parametrize("release", RELEASES)
async def test_a_wrong_argument_scores_zero_with_the_checkers_reason(
    rt: Runtime, release: str, task_id: str, error_type: str
) -> None:
    right = await single_turn(rt, task_id, 0, release=release)
    wrong = await single_turn(rt, task_id, 1, wrong=True, release=release)
    assert right.reward == 1.0 and wrong.reward == 0.0
    assert wrong.details["valid"] is False and error_type in wrong.details["error_type"]
    assert "Invalid value" in json.dumps(wrong.details["error_message"]) or "Could not find" in json.dumps(
        wrong.details["error_message"]
    )


async def test_irrelevance_passes_without_a_call_and_fails_with_one(rt: Runtime) -> None:
    assert (await single_turn(rt, "irrelevance_0", 0)).reward == 1.0
    created = await rt.create("bfcl", "irrelevance_0", {})
    name = created.info["tools"][0]["function"]["name"]
    required = created.info["tools"][0]["function"]["parameters"]["required"]
    call = replay._as_format([(name, dict.fromkeys(required, 1.0))], 1, "x")
    step = await rt.step(created.instance_id, call)
    assert step.terminated and step.reward == 0.0 and step.info["evaluation"]["error_type"] == "irrelevance_error"
    await rt.close(created.instance_id)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("The area is 25.", "no function call found"),
        ("[area_of_triangle(base=10, height=5)]", "unknown function 'area_of_triangle'"),
        ("[calculate_triangle_area(10, 5)]", "by keyword"),
        ("[calculate_triangle_area(base=10, hieght=5)]", "unknown parameter 'hieght'"),
        ("[calculate_triangle_area(base=10)]", "missing required parameter 'height'"),
        ("[calculate_triangle_area(base='ten', height=5)]", "expects integer, got str 'ten'"),
        ('<tool_call>{"name": "calculate_triangle_area", "arguments": "base=10"}</tool_call>', "not valid JSON"),
    ],
)
async def test_single_turn_bad_actions_are_invalid(rt: Runtime, content: str, fragment: str) -> None:
    created = await rt.create("bfcl", "simple_python_0", {})
    with pytest.raises(InvalidAction, match=fragment):
        await rt.step(created.instance_id, {"role": "assistant", "content": content})
    evaluation = await rt.evaluate(created.instance_id, {})
    assert evaluation.reward == 0.0 and evaluation.details["error_type"] == "trainbox:no_action"
    await rt.close(created.instance_id)


async def test_single_turn_accepts_openai_names_for_dotted_functions(rt: Runtime) -> None:
    created = await rt.create("bfcl", "simple_python_1", {})
    tool = created.info["tools"][0]["function"]
    assert "." not in tool["name"]
    _, kwargs = replay.single_turn_calls("simple_python_1")[0]
    step = await rt.step(created.instance_id, replay._as_format([(tool["name"], kwargs)], 2, "o"))
    assert step.reward == 1.0
    with pytest.raises(EpisodeOver):
        await rt.step(created.instance_id, replay.END_OF_TURN)
    await rt.close(created.instance_id)


async def test_a_turn_is_cut_off_after_bfcls_step_limit(rt: Runtime) -> None:
    created = await rt.create("bfcl", "multi_turn_base_0", {})
    iid = created.instance_id
    for _ in range(20):
        step = await rt.step(iid, {"role": "assistant", "content": "[pwd()]"})
        assert not step.terminated
    step = await rt.step(iid, {"role": "assistant", "content": "[pwd()]"})
    assert step.terminated and step.reward == 0.0
    assert step.messages[-1] == {"role": "user", "content": "Model has been forced to quit after 20 steps."}
    evaluation = await rt.evaluate(iid, {})
    assert evaluation.reward == 0.0 and evaluation.details["finished"] is False
    with pytest.raises(EpisodeOver):
        await rt.step(iid, replay.END_OF_TURN)
    await rt.close(iid)


# --- releases side by side ----------------------------------------------------------------------------------


def changed_multi_turn_task(category: str = "multi_turn_base") -> str:
    """A task whose ground truth differs between the two releases (about a third of them do)."""
    current, previous = (replay.ground_truth(category, r) for r in RELEASES[:2])
    return next(t for t in sorted(current, key=natural_key) if current[t] != previous.get(t))


async def test_the_plain_name_serves_the_current_release_and_version_pins_another(rt: Runtime) -> None:
    assert {"bfcl", *(f"bfcl@{r}" for r in RELEASES)} <= set(rt.families())
    current = await rt.create("bfcl", "multi_turn_base_0", {})
    pinned = await rt.create("bfcl", "multi_turn_base_0", {"version": RELEASES[1]})
    named = await rt.create(f"bfcl@{RELEASES[1]}", "multi_turn_base_0", {})
    try:
        assert (current.family, current.info["release"]) == (f"bfcl@{RELEASES[0]}", RELEASES[0])
        assert (pinned.family, pinned.info["release"]) == (f"bfcl@{RELEASES[1]}", RELEASES[1])
        assert (named.family, named.info["release"]) == (f"bfcl@{RELEASES[1]}", RELEASES[1])
        now, then = rt.pool("bfcl"), rt.pool(f"bfcl@{RELEASES[1]}")  # each release has its own workers
        assert now is rt.pool(f"bfcl@{RELEASES[0]}") and now is not then
        assert now.python.endswith(f"bfcl-{RELEASES[0]}/bin/python")
        assert then.python.endswith(f"bfcl-{RELEASES[1]}/bin/python")
        assert current.worker_pid in {w.pid for w in now.workers}
        assert {pinned.worker_pid, named.worker_pid} <= {w.pid for w in then.workers}
    finally:
        for created in (current, pinned, named):
            await rt.close(created.instance_id)
    assert await rt.task_ids("bfcl", "train") == await rt.task_ids(f"bfcl@{RELEASES[0]}", "train")


async def test_each_release_is_checked_against_its_own_ground_truth(rt: Runtime) -> None:
    task_id = changed_multi_turn_task()
    for release, other in (RELEASES[:2], RELEASES[1::-1]):
        own, (sparse, _) = await play(rt, task_id, replay.multi_turn_steps(task_id, release=release), f"bfcl@{release}")
        assert own.reward == 1.0 and sparse.reward == 1.0
        foreign = replay.multi_turn_steps(task_id, release=other)
        last, (sparse, _) = await play(rt, task_id, foreign, f"bfcl@{release}")
        assert last.reward == 0.0 and sparse.reward == 0.0 and sparse.details["error_type"].startswith("multi_turn:")


@pytest.mark.parametrize(
    ("env", "params", "error", "fragment"),
    [
        ("bfcl", {"version": "1999.1.1"}, UnknownEnvironment, "bfcl@1999.1.1"),
        ("bfcl@1999.1.1", {}, UnknownEnvironment, "available"),
        (f"bfcl@{RELEASES[1]}", {"version": RELEASES[0]}, InvalidRequest, "different releases"),
        ("bfcl", {"version": 2025}, InvalidRequest, "its releases are"),
    ],
)
async def test_an_unknown_or_contradictory_release_is_refused(
    rt: Runtime, env: str, params: dict[str, Any], error: type, fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        await rt.create(env, "multi_turn_base_0", params)


async def test_the_base_154_fix_applies_only_to_the_release_that_needs_it() -> None:
    for release in RELEASES:
        fixed = replay.ground_truth("multi_turn_base", release)["multi_turn_base_154"]
        shipped = raw_ground_truth(release, "multi_turn_base")["multi_turn_base_154"]
        assert len(fixed) == 5  # one ground-truth turn per user turn: the checker can pass it
        assert (fixed != shipped) == (release in UPSTREAM_FIXES), release
    assert UPSTREAM_FIXES == {"2025.10.1": ("multi_turn_base_154",)}


def raw_ground_truth(release: str, category: str) -> dict[str, Any]:
    site = next((replay.bfcl_python(release).parents[1] / "lib").glob("python*/site-packages"))
    lines = (site / "bfcl_eval/data/possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines()
    return {entry["id"]: entry["ground_truth"] for entry in map(json.loads, filter(None, lines))}


async def test_an_interpreter_of_another_release_is_refused_with_the_reason() -> None:
    wrong = FamilyConfig(f"bfcl@{RELEASES[1]}", python=str(replay.bfcl_python(RELEASES[0])), warm=1, processes=1)
    async with Runtime(RuntimeConfig(families={wrong.name: wrong})) as runtime:
        with pytest.raises(EnvironmentUnavailable, match=f"bfcl-eval=={RELEASES[1]}.*has {RELEASES[0]}"):
            await runtime.create(wrong.name, "multi_turn_base_0", {})


FORMAT_EXAMPLES = {
    "python": "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]",
    "json": '[{"function":"func_name1","parameters":{"param1":"value1","param2":"value2"...}}',
    "verbose_xml": '<param name="param1" value="value1" type="type1"/>',
    "concise_xml": '<param name="param1" type="type1">value1</param>',
}


@pytest.mark.parametrize("release", RELEASES)
async def test_format_sensitivity_scores_the_answer_in_the_format_it_asks_for(rt: Runtime, release: str) -> None:
    by_format = {}
    for task_id in await rt.task_ids(f"bfcl@{release}", "train"):
        if task_id.startswith("format_sensitivity_") and task_id.endswith(":simple_python_58"):
            by_format.setdefault(task_id.split("ret_fmt=")[1].split("&")[0], task_id)
    assert set(by_format) == {"python", "json", "verbose_xml", "concise_xml"}
    for task_id in by_format.values():
        created = await rt.create(f"bfcl@{release}", task_id, {})
        assert created.info["category"] == "format_sensitivity"
        asked = FORMAT_EXAMPLES[task_id.split("ret_fmt=")[1].split("&")[0]]  # BFCL's own format text
        assert asked in created.messages[0]["content"] and created.messages[1]["role"] == "user"
        await rt.close(created.instance_id)
        right = await single_turn(rt, task_id, 0, release=release)
        wrong = await single_turn(rt, task_id, 0, wrong=True, release=release)
        assert right.reward == 1.0 and wrong.reward == 0.0 and wrong.details["error_type"].startswith("value_error")
    # an answer in another format than the one asked for does not decode: 0 with the decoder's reason
    python_text = replay.single_turn_message(by_format["python"], release=release)["content"]
    created = await rt.create(f"bfcl@{release}", by_format["concise_xml"], {})
    step = await rt.step(created.instance_id, {"role": "assistant", "content": python_text})
    assert step.terminated and step.reward == 0.0
    assert step.info["evaluation"]["error_type"] == "ast_decoder:decoder_failed"
    await rt.close(created.instance_id)
