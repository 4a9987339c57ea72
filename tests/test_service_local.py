"""The front's contract in the fast lane (the real app on in-process hosts, real BFCL workers, no Ray): the error
table, the reference's envelope, TTL release driven by the hosts' sweep at a chosen time, admission and auth.
The same paths through a real Ray and service process are in test_service_api.py / test_service_lifecycle.py."""

from __future__ import annotations

import pytest

from tests.fastlane import App

BODY = {"env_type": "bfcl", "task_id": "multi_turn_base_0"}
LS = {"role": "assistant", "content": "[ls()]"}


def create(client, task_id: str = "multi_turn_base_0", **extra: object) -> dict:
    response = client.post("/v1/instances", json={"env_type": "bfcl", "task_id": task_id, **extra})
    assert response.status_code == 200, response.text
    return response.json()["instances"][0]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind"),
    [
        ("post", "/v1/instances", {"env_type": "nope", "task_id": "x"}, 404, "unknown_environment"),
        ("post", "/v1/instances", {"env_type": "bfcl", "task_id": "no_such_task"}, 404, "unknown_task"),
        ("post", "/v1/instances", {"env_type": "bfcl", "task_id": "web_search_0"}, 422, "unsupported_task"),
        ("post", "/v1/instances", {"env_type": "bfcl"}, 422, "bad_request"),
        ("post", "/v1/instances", {"env_type": "bfcl", "task_id": "multi_turn_base_0", "count": 0}, 422, "bad_request"),
        (
            "post",
            "/v1/instances",
            {"env_type": "bfcl", "task_id": "multi_turn_base_0", "idle_ttl": -1},
            422,
            "bad_request",
        ),
        (
            "post",
            "/v1/instances",
            {"env_type": "bfcl", "task_id": "multi_turn_base_0", "arch": "sparc"},
            422,
            "bad_request",
        ),
        ("get", "/v1/environments/bfcl/tasks?split=dev", None, 404, "unknown_split"),
        ("get", "/v1/environments/nope/tasks", None, 404, "unknown_environment"),
        ("post", "/v1/instances/nope/step", {"action": LS}, 404, "unknown_instance"),
        ("post", "/v1/instances/nope/evaluate", {}, 404, "unknown_instance"),
        ("get", "/v1/instances/nope", None, 404, "unknown_instance"),
        ("get", "/v1/nowhere", None, 404, "not_found"),
        ("put", "/v1/environments", None, 405, "method_not_allowed"),
    ],
)
def test_bad_requests(app: App, method: str, path: str, body: dict | None, status: int, kind: str) -> None:
    with app.client() as client:
        response = client.request(method, path, json=body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["kind"] == kind and error["infra"] is False and "Traceback" not in error["message"]


def test_malformed_json_and_bad_actions(app: App) -> None:
    with app.client() as client:
        response = client.post("/v1/instances", content=b"{not json", headers={"content-type": "application/json"})
        assert response.status_code == 422 and "not valid JSON" in response.json()["error"]["message"]
        iid = create(client)["instance_id"]
        response = client.post(f"/v1/instances/{iid}/step", json={"action": "ls()"})
        assert response.status_code == 422
        bad_args = {"role": "assistant", "content": "[cd(folder=1, nonsense='x')]"}
        response = client.post(f"/v1/instances/{iid}/step", json={"action": bad_args})
        # BFCL semantics: a wrong call is the model's mistake, shown to it as the execution error
        assert response.status_code == 200, response.text
        (tool,) = response.json()["state"]
        assert tool["role"] == "tool" and tool["content"].startswith("Error during execution"), tool
        client.delete(f"/v1/instances/{iid}")


def test_reference_protocol(app: App) -> None:
    with app.client() as client:
        ids = client.post("/get_env_profile", json={"env_type": "bfcl", "params": {"split": "train"}}).json()
        assert ids["success"] and "multi_turn_base_0" in ids["data"]
        made = client.post("/create", json={"env_type": "bfcl", "task_id": "multi_turn_base_0"}).json()["data"]
        iid = made["info"]["instance_id"]
        step = client.post("/step", json={"instance_id": iid, "messages": LS, "params": {}}).json()
        assert step["success"] and set(step["data"]) >= {"state", "reward", "is_terminated", "info"}
        score = client.post("/evaluate", json={"instance_id": iid, "params": {"sparse": True}}).json()
        assert score == {"success": True, "data": 0.0}
        info = client.post("/get_info", json={"instance_id": iid}).json()
        assert info["success"] and info["data"]
        assert client.post("/release", json={"instance_id": iid}).json() == {"success": True, "data": None}
        missing = client.post("/step", json={"instance_id": iid, "messages": LS})
        assert missing.status_code == 404 and missing.json()["success"] is False
        assert "Traceback" not in missing.text


def test_idle_ttl_and_lifetime_release(app: App) -> None:
    """The hosts' sweep at a chosen time: nothing before an instance's TTL, 'idle' at its idle TTL (use moves
    it), 'lifetime' at its lifetime however busy it was."""
    with app.client() as client:
        idle_before, life_before = app.released("idle"), app.released("lifetime")
        idle = client.post("/v1/instances", json={**BODY, "idle_ttl": 2}).json()["instances"][0]
        assert idle["expires_at"] - idle["created_at"] == pytest.approx(2, abs=0.01)
        iid = idle["instance_id"]
        assert app.sweep(iid, idle["expires_at"] - 0.01) == []  # not before its time
        step = client.post(f"/v1/instances/{iid}/step", json={"action": LS})
        assert step.status_code == 200
        used = client.get(f"/v1/instances/{iid}").json()
        assert used["expires_at"] == pytest.approx(used["last_used_at"] + 2) and used["expires_at"] > idle["expires_at"]
        between = (idle["expires_at"] + used["expires_at"]) / 2
        assert app.sweep(iid, between) == []  # the step moved its idle deadline
        assert app.sweep(iid, used["expires_at"]) == [(iid, "idle")]
        assert client.get(f"/v1/instances/{iid}").status_code == 404

        busy = client.post("/v1/instances", json={**BODY, "max_lifetime": 3}).json()["instances"][0]
        bid = busy["instance_id"]
        for _ in range(3):  # kept busy, it still ends at its lifetime
            assert client.post(f"/v1/instances/{bid}/step", json={"action": LS}).status_code == 200
        assert app.sweep(bid, busy["created_at"] + 3 - 0.01) == []
        assert app.sweep(bid, busy["created_at"] + 3) == [(bid, "lifetime")]
        assert client.post(f"/v1/instances/{bid}/step", json={"action": LS}).status_code == 404
        assert app.released("idle") == idle_before + 1
        assert app.released("lifetime") == life_before + 1
