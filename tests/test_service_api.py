"""The REST API and the reference's wire protocol, against a real service on a real Ray with real BFCL."""

from __future__ import annotations

import uuid

import pytest

from tests.servicekit import Service

pytestmark = pytest.mark.slow
LS = {"role": "assistant", "content": "[ls()]"}


def create(client, task_id: str = "multi_turn_base_0", **extra: object) -> dict:
    response = client.post("/v1/instances", json={"env_type": "bfcl", "task_id": task_id, **extra})
    assert response.status_code == 200, response.text
    return response.json()["instances"][0]


def test_environments_and_tasks(service: Service) -> None:
    with service.client() as client:
        names = [e["name"] for e in client.get("/v1/environments").json()["environments"]]
        assert "bfcl" in names
        train = client.get("/v1/environments/bfcl/tasks", params={"split": "train"}).json()["task_ids"]
        test = client.get("/v1/environments/bfcl/tasks", params={"split": "test"}).json()["task_ids"]
        assert train and test and not set(train) & set(test)


def test_create_step_evaluate_release(service: Service) -> None:
    with service.client() as client:
        made = create(client)
        assert [m["role"] for m in made["state"]][:2] == ["system", "user"]
        iid = made["instance_id"]
        step = client.post(f"/v1/instances/{iid}/step", json={"action": LS}).json()
        assert step["state"][0]["role"] == "tool" and "document" in step["state"][0]["content"]
        assert step["is_terminated"] is False and step["reward"] == 0.0
        evaluation = client.post(f"/v1/instances/{iid}/evaluate", json={"params": {}}).json()
        assert evaluation["reward"] == 0.0 and evaluation["details"]
        assert client.get(f"/v1/instances/{iid}").json()["steps"] == 1
        assert client.delete(f"/v1/instances/{iid}").json()["released"] is True
        assert client.delete(f"/v1/instances/{iid}").json()["released"] is False
        assert client.get(f"/v1/instances/{iid}").status_code == 404


def test_group_create(service: Service) -> None:
    with service.client() as client:
        response = client.post("/v1/instances", json={"env_type": "bfcl", "task_id": "multi_turn_base_1", "count": 4})
        instances = response.json()["instances"]
        assert len({i["instance_id"] for i in instances}) == 4
        assert {i["task_id"] for i in instances} == {"multi_turn_base_1"}
        for instance in instances:
            client.delete(f"/v1/instances/{instance['instance_id']}")


def test_idempotent_step(service: Service) -> None:
    with service.client() as client:
        iid = create(client)["instance_id"]
        body = {"action": {"role": "assistant", "content": "[mkdir(dir_name='once')]"}, "request_id": "r-1"}
        first = client.post(f"/v1/instances/{iid}/step", json=body).json()
        second = client.post(f"/v1/instances/{iid}/step", json=body).json()
        assert first == second
        assert client.get(f"/v1/instances/{iid}").json()["steps"] == 1  # ran once
        client.delete(f"/v1/instances/{iid}")


def test_duplicate_custom_id_is_refused(service: Service) -> None:
    with service.client() as client:
        custom = f"mine-{uuid.uuid4().hex[:6]}"
        assert create(client, instance_id=custom)["instance_id"] == custom
        again = client.post(
            "/v1/instances", json={"env_type": "bfcl", "task_id": "multi_turn_base_0", "instance_id": custom}
        )
        assert again.status_code == 409 and again.json()["error"]["kind"] == "duplicate_instance"
        assert client.post(f"/v1/instances/{custom}/step", json={"action": LS}).status_code == 200
        client.delete(f"/v1/instances/{custom}")


def test_unknown_architecture(service: Service) -> None:
    with service.client() as client:
        body = {"env_type": "bfcl", "task_id": "multi_turn_base_0", "arch": "arm64"}
        made = client.post("/v1/instances", json=body).json()["instances"][0]
        assert "-arm64-" in made["instance_id"]  # the host's name, chosen by Ray's label scheduling
        client.delete(f"/v1/instances/{made['instance_id']}")


def test_metrics(service: Service) -> None:
    with service.client() as client:
        text = client.get("/metrics").text
        for name in (
            "trainbox_request_seconds",
            "trainbox_instances_created_total",
            "trainbox_instances_released_total",
        ):
            assert name in text
