"""A refused bearer token is answered in the one error envelope: the reference-compatible routes (and
unknown paths) with its ``success: false``, ``/v1`` with ours; HTTP Basic with the token as the password is
accepted too (a URL with user info: OpenEnv's client has no other way to send it). The real app; the auth
check answers before any route, so no Ray is started."""

from __future__ import annotations

import base64

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


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"authorization": "Bearer s3cret"}, True),
        (basic("trainbox", "s3cret"), True),
        (basic("", "s3cret"), True),
        ({"authorization": "basic " + base64.b64encode(b"anyone:s3cret").decode()}, True),
        (basic("s3cret", "wrong"), False),  # the token is the password, not the user
        (basic("trainbox", "s3cret2"), False),
        ({"authorization": "Basic not-base64!"}, False),
        ({"authorization": "Bearer s3cre"}, False),
        ({}, False),
    ],
)
def test_bearer_or_basic_with_the_token_as_password(client: TestClient, headers: dict[str, str], allowed: bool) -> None:
    response = client.get("/v1/no-such-route", headers=headers)  # past auth: a 404; refused: a 401
    assert response.status_code == (404 if allowed else 401), response.text
