"""Admission and auth in the fast lane (the real app on in-process hosts, real BFCL workers, no Ray): each test
runs an app with its own settings (so this module has no shared app: one app runs at a time)."""

from __future__ import annotations

from trainbox_server.hosts.local_hosts import LocalHosts

from tests.fastlane import local_app

BODY = {"env_type": "bfcl", "task_id": "multi_turn_base_0"}


def test_admission_control(local_hosts: LocalHosts) -> None:
    """The front counts every create as it admits it and every release as it answers: no wait for the hosts'
    next report in either direction."""
    with local_app(local_hosts, max_live=3, max_group=8) as app, app.client() as client:
        answers = [client.post("/v1/instances", json=BODY) for _ in range(3)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        made = [a.json()["instances"][0] for a in answers]
        refused = client.post("/v1/instances", json=BODY)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"] == {**refused.json()["error"], "kind": "capacity_exceeded", "infra": True}
        too_big = client.post("/v1/instances", json={**BODY, "count": 9})
        assert too_big.status_code == 422 and "count" in too_big.json()["error"]["message"]
        client.delete(f"/v1/instances/{made[0]['instance_id']}")
        again = client.post("/v1/instances", json=BODY)
        assert again.status_code == 200, again.text
        for instance in [*made[1:], again.json()["instances"][0]]:
            client.delete(f"/v1/instances/{instance['instance_id']}")


def test_auth(local_hosts: LocalHosts) -> None:
    with local_app(local_hosts, token="s3cret") as app, app.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        denied = client.get("/v1/environments")
        assert denied.status_code == 401 and denied.json()["error"]["kind"] == "unauthorized"
        assert client.get("/v1/environments", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/create", json=BODY).status_code == 401
        ok = client.get("/v1/environments", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
