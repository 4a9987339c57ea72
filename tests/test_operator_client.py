"""The operator's calls (``sandbox_api``, the SDK's async client with retries off) against a real service:
create, read back, adopt an instance a lost create made, release."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import trainbox
from trainbox_operator import conditions as c
from trainbox_operator import instances, sandbox_api

from tests.servicekit import Service

pytestmark = pytest.mark.slow
NOW = "2026-01-01T00:00:00Z"


async def create_twice_and_adopt(url: str) -> None:
    body = {
        "metadata": {"uid": uuid.uuid4().hex, "generation": 1},
        "spec": {"envType": "bfcl", "taskId": "multi_turn_base_0", "ttlSeconds": 60},
        "status": {},
    }
    request = instances.create_request(body)
    try:
        made = await sandbox_api.create(url, None, request)
        assert made["instance_id"] == request["instance_id"] and made["state"] and made["arch"]
        first = instances.created_status(body, made, NOW)
        # The same create again (its answer was lost): the service refuses the id, the operator adopts it.
        with pytest.raises(trainbox.DuplicateInstance) as refused:
            await sandbox_api.create(url, None, request)
        assert instances.create_answer(refused.value) is instances.CreateAnswer.ADOPT
        adopted = await sandbox_api.get(url, None, request["instance_id"])
        again = instances.failed_create_status(body, refused.value, adopted, NOW)
        assert c.is_true(again["conditions"], c.READY) and again["instanceId"] == first["instanceId"]
        assert again["expiresAt"] == first["expiresAt"]
        # A request the service refuses fails the instance for good.
        with pytest.raises(trainbox.UnknownTask) as unknown:
            await sandbox_api.create(url, None, {**request, "task_id": "no_such_task", "instance_id": None})
        failed = instances.failed_create_status(body, unknown.value, None, NOW)
        assert c.is_true(failed["conditions"], c.FAILED)
        assert await sandbox_api.release(url, None, request["instance_id"]) is True
        assert await sandbox_api.get(url, None, request["instance_id"]) is None
        assert await sandbox_api.release(url, None, request["instance_id"]) is False
        assert await sandbox_api.ready(url) is True
        hosts = await sandbox_api.hosts(url, None)
        assert hosts and all(h["alive"] for h in hosts)
    finally:
        await sandbox_api.close_all()


def test_create_adopt_release(service: Service) -> None:
    asyncio.run(create_twice_and_adopt(service.url))


def test_a_service_that_does_not_answer_is_retried_later() -> None:
    async def refused() -> None:
        try:
            with pytest.raises(trainbox.ConnectError) as error:
                await sandbox_api.create("http://127.0.0.1:9", None, {"env_type": "bfcl", "task_id": "t"})
            assert error.value.attempts == 1  # no retries of its own: the operator decides when to call again
            assert instances.create_answer(error.value) is instances.CreateAnswer.RETRY
            assert await sandbox_api.ready("http://127.0.0.1:9") is False
            assert await sandbox_api.hosts("http://127.0.0.1:9", None) is None
        finally:
            await sandbox_api.close_all()

    asyncio.run(refused())
