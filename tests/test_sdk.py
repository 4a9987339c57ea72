"""The SDK against the real service (real Ray, real BFCL workers): the reference's example flow, sync and async.

The example code is the reference documentation's, with only the import changed and ``env_type="bfcl"``
(AppWorld's task data cannot be downloaded here).
"""

from __future__ import annotations

import asyncio

import pytest
from trainbox import AsyncTrainingSandbox, TrainingSandbox, UnknownInstance

from tests.bfcl_replay import multi_turn_steps

pytest_plugins = ["tests.sdk_fixtures"]
pytestmark = pytest.mark.slow


def test_reference_example_runs_unchanged(trainbox_url, no_trainbox_env, monkeypatch):
    monkeypatch.setenv("TRAINBOX_URL", trainbox_url)

    # -- from the reference's documentation, import line changed --
    from trainbox import TrainingSandbox

    box = TrainingSandbox()
    profile_list = box.get_env_profile(env_type="bfcl", split="train")
    init_response = box.create_instance(
        env_type="bfcl",
        task_id=profile_list[0],
    )
    instance_id = init_response["info"]["instance_id"]
    query = init_response["state"]
    action = {
        "role": "assistant",
        "content": "[cd(folder='document')]",
    }
    result = box.step(
        instance_id=instance_id,
        action=action,
    )
    score = box.evaluate(instance_id, messages={}, params={"sparse": True})
    success = box.release_instance(instance_id)
    # -- end of the reference's code --

    assert profile_list and all(isinstance(task_id, str) for task_id in profile_list)
    assert init_response["info"]["task_id"] == profile_list[0]
    assert [message["role"] for message in query][:2] == ["system", "user"]
    assert set(result) >= {"state", "reward", "is_terminated", "info"}
    assert result["state"][0]["role"] == "tool" and result["is_terminated"] is False
    assert score == 0.0  # one call of a multi-turn task is not the ground truth
    assert success is True
    assert box.release_instance(instance_id) is False  # already gone
    box.close()


@pytest.mark.appworld
@pytest.mark.timeout(900)
def test_reference_example_verbatim_on_appworld(sdk_appworld_root, no_trainbox_env, monkeypatch):
    """The documentation's AppWorld example, character for character but for the import, in embedded mode."""
    monkeypatch.setenv("APPWORLD_ROOT", str(sdk_appworld_root))  # the embedded service inherits it
    monkeypatch.setenv("TRAINBOX_STARTUP_TIMEOUT", "600")  # Ray can start slowly on a busy machine

    # -- from the reference's documentation, import line changed --
    from trainbox import TrainingSandbox

    # create training sandbox
    box = TrainingSandbox()

    profile_list = box.get_env_profile(env_type="appworld", split="train")
    print(profile_list)

    profile_list = box.get_env_profile(env_type="appworld", split="train")
    init_response = box.create_instance(
        env_type="appworld",
        task_id=profile_list[0],
    )
    instance_id = init_response["info"]["instance_id"]
    query = init_response["state"]
    print(f"Created instance {instance_id} with query: {query}")

    action = {
        "role": "assistant",
        "content": "```python\nprint('hello appworld!!')\n```",
    }

    result = box.step(
        instance_id=instance_id,
        action=action,
    )
    print(result)

    score = box.evaluate(instance_id, messages={}, params={"sparse": True})
    print(f"Evaluation score: {score}")

    success = box.release_instance(instance_id)
    print(f"Instance released: {success}")
    # -- end of the reference's code --

    assert box.embedded and profile_list
    assert [message["role"] for message in query][:2] == ["system", "user"]
    assert "hello appworld!!" in result["state"][0]["content"] and result["is_terminated"] is False
    assert score == 0.0 and success is True
    box.close()


def _ground_truth_episode(box: TrainingSandbox, task_id: str) -> tuple[float, float, int]:
    instance_id = box.create_instance("bfcl", task_id)["info"]["instance_id"]
    steps = [message for turn in multi_turn_steps(task_id) for message in turn]
    results = [box.step(instance_id, message) for message in steps]
    ended = [result["is_terminated"] for result in results]
    assert ended == [False] * (len(steps) - 1) + [True], "the episode ends with the last turn, not before"
    return results[-1]["reward"], box.evaluate(instance_id, params={"sparse": True}), len(steps)


def test_ground_truth_episode_scores_one(trainbox_url):
    with TrainingSandbox(base_url=trainbox_url) as box:
        task_id = box.get_env_profile("bfcl", "train")[0]
        final_step_reward, evaluated, steps = _ground_truth_episode(box, task_id)
        details = box.evaluate(next(iter(box.owned_instances)), details=True)
    assert final_step_reward == 1.0 and evaluated == 1.0 and steps > 1
    assert details["reward"] == 1.0 and isinstance(details["details"], dict)


async def test_async_reference_flow_and_groups(trainbox_url):
    async with AsyncTrainingSandbox(base_url=trainbox_url) as box:
        task_ids = await box.get_env_profile(env_type="bfcl", split="train")
        task_id = task_ids[0]
        group = await box.create_group("bfcl", task_id, 4)
        ids = [created["info"]["instance_id"] for created in group]
        assert len(set(ids)) == 4 and all(created["info"]["task_id"] == task_id for created in group)
        assert all(created["state"] == group[0]["state"] for created in group)  # same task, same opening

        # Drive the group concurrently through the ground truth: every member scores 1.0.
        steps = [message for turn in multi_turn_steps(task_id) for message in turn]
        for message in steps:
            results = await box.step_many({instance_id: message for instance_id in ids})
        assert all(result["is_terminated"] and result["reward"] == 1.0 for result in results)
        rewards = await asyncio.gather(*(box.evaluate(i, params={"sparse": True}) for i in ids))
        assert rewards == [1.0] * 4

        status = await box.get_instance(ids[0])
        assert status["steps"] == len(steps) and status["terminated"] is True
        assert await box.release_many(ids) == [True] * 4
        assert box.owned_instances == frozenset()


async def test_async_steps_of_many_rollouts_interleave(trainbox_url):
    async with AsyncTrainingSandbox(base_url=trainbox_url) as box:
        task_ids = (await box.get_env_profile("bfcl", "train"))[:8]
        created = await asyncio.gather(*(box.create_instance("bfcl", task_id) for task_id in task_ids))
        action = {"role": "assistant", "content": "I cannot help with that."}  # no call: ends the turn
        results = await box.step_many([(c["info"]["instance_id"], action) for c in created], return_exceptions=True)
        assert len(results) == 8 and all(isinstance(result, dict) for result in results)


def test_step_with_the_same_request_id_runs_once(trainbox_url):
    with TrainingSandbox(base_url=trainbox_url) as box:
        instance_id = box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"]
        action = {"role": "assistant", "content": "[mkdir(dir_name='made_once')]"}
        first = box.step(instance_id, action, request_id="rollout-7-step-1")
        again = box.step(instance_id, action, request_id="rollout-7-step-1")
        assert again == first
        assert box.get_instance(instance_id)["steps"] == 1


def test_context_manager_releases_what_it_created(trainbox_url):
    with TrainingSandbox(base_url=trainbox_url) as box:
        single = box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"]
        group = [c["info"]["instance_id"] for c in box.create_group("bfcl", "multi_turn_base_1", 3)]
        box.release_instance(group[0])
        assert box.owned_instances == {single, *group[1:]}
    assert box.owned_instances == frozenset()
    with TrainingSandbox(base_url=trainbox_url) as observer:
        for instance_id in [single, *group]:
            with pytest.raises(UnknownInstance):
                observer.get_instance(instance_id)


def test_release_on_close_can_be_turned_off(trainbox_url):
    with TrainingSandbox(base_url=trainbox_url, release_on_close=False) as box:
        kept = box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"]
    with TrainingSandbox(base_url=trainbox_url) as other:
        assert other.get_instance(kept)["instance_id"] == kept
        assert other.release_instance(kept) is True


async def test_async_context_manager_releases_what_it_created(trainbox_url):
    async with AsyncTrainingSandbox(base_url=trainbox_url) as box:
        ids = [c["info"]["instance_id"] for c in await box.create_group("bfcl", "multi_turn_base_2", 3)]
    async with AsyncTrainingSandbox(base_url=trainbox_url) as observer:
        for instance_id in ids:
            with pytest.raises(UnknownInstance):
                await observer.get_instance(instance_id)
