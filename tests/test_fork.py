"""Fork and snapshot through a real service (real Ray, real BFCL workers), with the SDK a trainer uses.

Every multi-turn task of ``multi_turn_base`` (issue 10: every task of one category) in the current BFCL release,
and every tenth of them in each earlier release (forking is release-independent: it replays the episode's
actions; each release's ground truths are replayed task by task in test_bfcl_env): replay the ground truth up to
its midpoint, fork into 3, finish each fork and the source with the rest → all score 1.0; a fork that goes wrong
scores 0 while its siblings still score 1.0; a snapshot restored after its source was released behaves the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from trainbox import (
    AsyncTrainingSandbox,
    BadRequest,
    InstanceStatus,
    UnknownInstance,
    UnknownSnapshot,
)

from tests import bfcl_replay as replay
from tests.servicekit import Service

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(1800)]
CATEGORY = "multi_turn_base"
FORKS = 3
WRONG = {"role": "assistant", "content": "[mkdir(dir_name='not_asked_for')]"}
EARLIER_RELEASE_STRIDE = 10  # an earlier release forks every 10th task of the category (20 of 200)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def box(service: Service) -> AsyncIterator[AsyncTrainingSandbox]:
    async with AsyncTrainingSandbox(base_url=service.url, timeout=300) as sandbox:
        yield sandbox


def halves(task_id: str, release: str = replay.CURRENT) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    steps = [message for turn in replay.multi_turn_steps(task_id, release=release) for message in turn]
    middle = len(steps) // 2
    return steps[:middle], steps[middle:]


async def play(box: AsyncTrainingSandbox, instance_id: str, steps: list[dict[str, Any]]) -> None:
    for message in steps:
        await box.step(instance_id, message)


async def fork_episode(box: AsyncTrainingSandbox, task_id: str, release: str) -> list[float]:
    before, after = halves(task_id, release)
    source = (await box.create_instance(f"bfcl@{release}", task_id))["info"]["instance_id"]
    await play(box, source, before)
    forks: list[InstanceStatus] = await box.fork(source, FORKS)
    assert len({f["group_id"] for f in forks}) == 1 and all(f["steps"] == len(before) for f in forks)
    ids = [source, *(f["instance_id"] for f in forks)]
    await asyncio.gather(*(play(box, i, after) for i in ids))
    rewards = [await box.evaluate(i, params={"sparse": True}) for i in ids]
    for instance_id in ids:
        await box.release_instance(instance_id)
    return rewards


@pytest.mark.parametrize("release", replay.RELEASES)
async def test_every_fork_of_every_task_finishes_like_its_source(box: AsyncTrainingSandbox, release: str) -> None:
    tasks = sorted(replay.ground_truth(CATEGORY, release))
    if release != replay.CURRENT:
        tasks = tasks[::EARLIER_RELEASE_STRIDE]
    limit = asyncio.Semaphore(8)

    async def one(task_id: str) -> tuple[str, list[float]]:
        async with limit:
            return task_id, await fork_episode(box, task_id, release)

    results = dict(await asyncio.gather(*(one(t) for t in tasks)))
    failed = {t: r for t, r in results.items() if r != [1.0] * (FORKS + 1)}
    assert len(results) == len(tasks) and not failed


async def test_forks_are_independent(box: AsyncTrainingSandbox) -> None:
    task_id = "multi_turn_base_0"
    before, after = halves(task_id)
    source = (await box.create_instance("bfcl", task_id))["info"]["instance_id"]
    await play(box, source, before)
    wrong, right = (f["instance_id"] for f in await box.fork(source, 2))
    await box.step(wrong, WRONG)  # only this fork sees it
    await asyncio.gather(*(play(box, i, after) for i in (wrong, right, source)))
    scores = [await box.evaluate(i, params={"sparse": True}) for i in (wrong, right, source)]
    assert scores == [0.0, 1.0, 1.0]
    for instance_id in (wrong, right, source):
        await box.release_instance(instance_id)


async def test_a_fork_crosses_to_a_host_of_another_architecture(box: AsyncTrainingSandbox, service: Service) -> None:
    """`fork(arch=...)` rebuilds the episode on a host of that architecture from its record (data, not object
    state): the copies are there, at the source's position, independent of it and of each other."""
    task_id = "multi_turn_base_4"
    before, after = halves(task_id)
    made = await box.create_instance("bfcl", task_id, arch="amd64")
    source = made["info"]["instance_id"]
    await play(box, source, before)
    forks = await box.fork(source, 2, arch="arm64")
    assert all(f["steps"] == len(before) and not f["terminated"] for f in forks)
    assert len({f["group_id"] for f in forks}) == 1
    with pytest.raises(BadRequest):  # not an architecture
        await box.fork(source, 1, arch="sparc")
    async with httpx.AsyncClient(base_url=service.url) as client:
        archs = {h["name"]: h["arch"] for h in (await client.get("/v1/hosts")).json()["hosts"] if h["alive"]}
    wrong, right = (f["instance_id"] for f in forks)
    assert [archs[i.partition("--")[0]] for i in (source, wrong, right)] == ["amd64", "arm64", "arm64"]
    await box.step(wrong, WRONG)  # only this copy sees it
    await asyncio.gather(*(play(box, i, after) for i in (wrong, right, source)))
    scores = [await box.evaluate(i, params={"sparse": True}) for i in (wrong, right, source)]
    assert scores == [0.0, 1.0, 1.0]
    for instance_id in (wrong, right, source):
        await box.release_instance(instance_id)


async def test_a_snapshot_outlives_its_source(box: AsyncTrainingSandbox) -> None:
    task_id = "multi_turn_base_1"
    before, after = halves(task_id)
    source = (await box.create_instance("bfcl", task_id))["info"]["instance_id"]
    await play(box, source, before)
    snap = await box.snapshot(source)
    assert snap["steps"] == len(before) and snap["bytes"] > 0 and snap["env_type"] == f"bfcl@{replay.CURRENT}"
    await box.release_instance(source)
    restored = await box.create_instance(snapshot_id=snap["snapshot_id"])
    instance_id = restored["info"]["instance_id"]
    assert (await box.get_instance(instance_id))["steps"] == len(before)
    await play(box, instance_id, after)
    assert await box.evaluate(instance_id, params={"sparse": True}) == 1.0
    await box.release_instance(instance_id)
    assert (await box.get_snapshot(snap["snapshot_id"]))["task_id"] == task_id
    assert await box.release_snapshot(snap["snapshot_id"]) is True
    assert await box.release_snapshot(snap["snapshot_id"]) is False
    with pytest.raises(UnknownSnapshot, match="released"):
        await box.create_instance(snapshot_id=snap["snapshot_id"])


async def test_bad_fork_and_snapshot_requests_are_typed(box: AsyncTrainingSandbox) -> None:
    source = (await box.create_instance("bfcl", "multi_turn_base_2"))["info"]["instance_id"]
    snap = await box.snapshot(source)
    for count in (0, 10_000):
        with pytest.raises(BadRequest):
            await box.fork(source, count)
    with pytest.raises(BadRequest):  # restore into another family
        await box.create_instance("appworld", snapshot_id=snap["snapshot_id"])
    forged = snap["snapshot_id"][:-4] + "abcd"
    for snapshot_id in (forged, "host-x--s" + "0" * 32, "not-a-snapshot"):
        with pytest.raises(UnknownSnapshot):
            await box.create_instance(snapshot_id=snapshot_id)
    await box.release_instance(source)
    with pytest.raises(UnknownInstance):
        await box.fork(source, 1)
    with pytest.raises(UnknownInstance):
        await box.snapshot(source)
    await box.release_snapshot(snap["snapshot_id"])


async def test_a_terminated_episode_forks_terminated(box: AsyncTrainingSandbox) -> None:
    task_id = "multi_turn_base_3"
    source = (await box.create_instance("bfcl", task_id))["info"]["instance_id"]
    steps = [message for turn in replay.multi_turn_steps(task_id) for message in turn]
    await play(box, source, steps)
    assert (await box.get_instance(source))["terminated"]
    (fork,) = await box.fork(source, 1)
    assert fork["terminated"] and await box.evaluate(fork["instance_id"], params={"sparse": True}) == 1.0
    for instance_id in (source, fork["instance_id"]):
        await box.release_instance(instance_id)
