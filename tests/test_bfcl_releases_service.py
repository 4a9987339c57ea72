"""BFCL releases through the real app (the fast lane: in-process hosts, real workers): what
``GET /v1/environments`` lists, and how both APIs choose a release — the plain ``bfcl`` is the current one; a
name or a ``version`` param pins another."""

from __future__ import annotations

import pytest
from trainbox_server.envs.releases import RELEASES

from tests import bfcl_replay as replay
from tests.fastlane import App

CURRENT, PREVIOUS = RELEASES["bfcl"][:2]


def test_environments_list_every_release(app: App) -> None:
    with app.client() as client:
        listed = {e["name"]: e for e in client.get("/v1/environments").json()["environments"]}
    assert listed["bfcl"]["release"] == CURRENT and listed["bfcl"]["releases"] == list(RELEASES["bfcl"])
    for release in RELEASES["bfcl"]:
        assert listed[f"bfcl@{release}"] == {
            "name": f"bfcl@{release}", "family": "bfcl", "release": release, "splits": ["train", "val", "test"]
        }  # fmt: skip


def compat_episode(client, env_type: str, params: dict) -> tuple[dict, dict]:
    """A whole ground-truth episode of a task that changed between the releases, on the reference's routes."""
    task_id = "multi_turn_base_0"
    profile = client.post("/get_env_profile", json={"env_type": env_type, "params": {"split": "train", **params}})
    assert profile.status_code == 200 and profile.json()["data"]
    made = client.post("/create", json={"env_type": env_type, "task_id": task_id, "params": params}).json()["data"]
    iid = made["info"]["instance_id"]
    release = made["info"]["release"]
    for turn in replay.multi_turn_steps(task_id, release=release):
        for message in turn:
            client.post("/step", json={"instance_id": iid, "messages": message})
    evaluation = client.post("/evaluate", json={"instance_id": iid, "params": {}}).json()["data"]
    client.post("/release", json={"instance_id": iid})
    return made["info"], evaluation


@pytest.mark.parametrize(
    ("env_type", "params", "release"),
    [
        ("bfcl", {}, CURRENT),
        ("bfcl", {"version": PREVIOUS}, PREVIOUS),
        (f"bfcl@{PREVIOUS}", {}, PREVIOUS),
    ],
)
def test_reference_routes_default_to_the_current_release_and_pin_another(
    app: App, env_type: str, params: dict, release: str
) -> None:
    with app.client() as client:
        info, evaluation = compat_episode(client, env_type, params)
    assert info["release"] == release and info["env_type"] == f"bfcl@{release}"
    assert evaluation["accuracy"] == 1.0 and evaluation["valid"] is True  # the reference's BFCL evaluation dict


def test_an_unknown_release_is_a_404_naming_those_served(app: App) -> None:
    with app.client() as client:
        response = client.post("/v1/instances", json={"env_type": "bfcl", "task_id": "multi_turn_base_0",
                                                      "params": {"version": "1999.1.1"}})  # fmt: skip
    assert response.status_code == 404 and response.json()["error"]["kind"] == "unknown_environment"
    assert f"bfcl@{PREVIOUS}" in response.json()["error"]["message"]
