"""A refused bearer token is answered in the one error envelope: the reference-compatible routes (and
unknown paths) with its ``success: false``, ``/v1`` with ours. The real app; the auth check answers before
any route, so no Ray is started."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from trainbox_server.service import ServiceConfig, create_app

UNAUTHORIZED = {"kind": "unauthorized", "infra": False}


@pytest.fixture(scope="module")
def client() -> TestClient:
    config = ServiceConfig.from_env()
    config.token = "s3cret"
    return TestClient(create_app(config))


@pytest.mark.parametrize("path", ["/create", "/step", "/release", "/get_env_profile", "/metrics", "/no-such"])
def test_compat_routes_answer_401_with_success_false(client: TestClient, path: str) -> None:
    response = client.post(path, json={}, headers={"authorization": "Bearer wrong"})
    body = response.json()
    assert response.status_code == 401
    assert body["success"] is False and body["data"] is None and "bearer token" in body["detail"]
    assert body["error"].items() >= UNAUTHORIZED.items()


@pytest.mark.parametrize("path", ["/v1/instances", "/v1/instances/x/step"])
def test_v1_routes_answer_401_with_the_error_object(client: TestClient, path: str) -> None:
    response = client.post(path, json={})
    assert response.status_code == 401
    assert set(response.json()) == {"error"} and response.json()["error"].items() >= UNAUTHORIZED.items()
