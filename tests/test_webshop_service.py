"""WebShop through a real service (on the suite's Ray cluster): the SDK, the ``/v1`` API and the reference's routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from trainbox import TrainingSandbox

from tests.servicekit import RayCluster, Service, start_service
from tests.webshop_oracle import first_test_goal, oracle_actions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def webshop_service(ray_cluster: RayCluster, webshop_data: Path) -> Iterator[Service]:
    svc = start_service(
        ray_cluster.address,
        TRAINBOX_ENVIRONMENTS="webshop",
        TRAINBOX_FAMILIES=json.dumps({"webshop": {"env": {"WEBSHOP_ROOT": str(webshop_data)}, "warm": 1}}),
        TRAINBOX_HOSTS_PER_NODE="1",
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def goal(webshop_data: Path) -> dict[str, Any]:
    return first_test_goal(webshop_data)[1]


def test_sdk_episode(webshop_service: Service, goal: dict[str, Any]) -> None:
    with TrainingSandbox(base_url=webshop_service.url) as box:
        test_ids = box.get_env_profile("webshop", "test")
        assert test_ids[0] == "0" and set(test_ids).isdisjoint(box.get_env_profile("webshop", "train"))
        made = box.create_instance("webshop", test_ids[0])
        instance = made["info"]["instance_id"]
        assert [m["role"] for m in made["state"]] == ["system", "user"]
        assert goal["instruction_text"] in made["state"][1]["content"]
        results = [box.step(instance, {"role": "assistant", "content": a}) for a in oracle_actions(goal)]
        assert (
            results[0]["info"]["valid"]
            and goal["asin"].lower() in results[0]["info"]["available_actions"]["clickables"]
        )
        assert [r["is_terminated"] for r in results] == [False] * (len(results) - 1) + [True]
        assert results[-1]["reward"] == 1.0 and box.evaluate(instance, params={"sparse": True}) == 1.0
        details = box.evaluate(instance, details=True)["details"]
        assert details["failed"] == [] and details["purchased"]["asin"] == goal["asin"]


def test_v1_api(webshop_service: Service, goal: dict[str, Any]) -> None:
    with webshop_service.client() as client:
        listed = {e["name"] for e in client.get("/v1/environments").json()["environments"]}
        assert listed == {"webshop"}
        made = client.post("/v1/instances", json={"env_type": "webshop", "task_id": "0"})
        assert made.status_code == 200, made.text
        instance = made.json()["instances"][0]["instance_id"]
        invalid = client.post(f"/v1/instances/{instance}/step", json={"action": {"role": "assistant", "content": "hi"}})
        assert invalid.status_code == 200 and invalid.json()["info"]["valid"] is False
        assert "search[<keywords>]" in invalid.json()["info"]["invalid_action"]
        not_a_message = client.post(f"/v1/instances/{instance}/step", json={"action": "search[mug]"})
        assert not_a_message.status_code == 422, not_a_message.text
        for action in oracle_actions(goal):
            step = client.post(
                f"/v1/instances/{instance}/step", json={"action": {"role": "assistant", "content": action}}
            )
            assert step.status_code == 200, step.text
        assert step.json()["reward"] == 1.0 and step.json()["is_terminated"] is True
        evaluated = client.post(f"/v1/instances/{instance}/evaluate", json={"params": {"sparse": True}}).json()
        assert evaluated["reward"] == 1.0
        assert client.delete(f"/v1/instances/{instance}").status_code == 200


def test_reference_routes(webshop_service: Service, goal: dict[str, Any]) -> None:
    with webshop_service.client() as client:
        profile = client.post("/get_env_profile", json={"env_type": "webshop", "params": {"split": "test"}}).json()
        assert profile["success"] and profile["data"][0] == "0"
        made = client.post("/create", json={"env_type": "webshop", "task_id": "0"}).json()
        assert made["success"], made
        instance = made["data"]["info"]["instance_id"]
        wrong = client.post(
            "/step", json={"instance_id": instance, "messages": {"role": "assistant", "content": "click[nothing]"}}
        ).json()
        assert wrong["success"] and wrong["data"]["state"][0]["content"].startswith("WebShop [SEP] Instruction:")
        for action in oracle_actions(goal):
            step = client.post(
                "/step", json={"instance_id": instance, "messages": {"role": "assistant", "content": action}}
            ).json()
            assert step["success"], step
        assert step["data"]["is_terminated"] and step["data"]["reward"] == 1.0
        assert step["data"]["state"][0]["content"].startswith("Thank you for shopping with us!")
        dense = client.post("/evaluate", json={"instance_id": instance}).json()
        sparse = client.post("/evaluate", json={"instance_id": instance, "params": {"sparse": True}}).json()
        assert dense == {"success": True, "data": 1.0} and sparse == {"success": True, "data": 1.0}
        assert client.post("/release", json={"instance_id": instance}).json()["success"] is True
