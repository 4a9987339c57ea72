"""The hot routes (``FastRoute``) accept what FastAPI accepts for the same endpoint and model, refuse what
it refuses, and say why in the same words: each body goes to the real endpoints routed both ways."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from trainbox_server.errors import TrainboxError
from trainbox_server.service import api_v1
from trainbox_server.service.app import on_trainbox_error, on_validation_error
from trainbox_server.service.fast_routes import FastRoute

ACTION = {"role": "assistant", "content": "[ls()]"}


class Recorder:
    """Stands in for the service behind the endpoints: answers with what the endpoint handed it."""

    async def step(self, instance_id: str, action: Any, request_id: Any, timeout: Any) -> dict[str, Any]:
        return {"step": [instance_id, action, request_id, timeout]}

    async def evaluate(self, instance_id: str, params: Any) -> dict[str, Any]:
        return {"evaluate": [instance_id, params]}

    async def release(self, instance_id: str) -> bool:
        return instance_id == "i-1"


def routed(route_class: type[APIRoute]) -> TestClient:
    app = FastAPI()
    app.state.service = Recorder()
    for endpoint, method, path in [
        (api_v1.step, "POST", "/v1/instances/{instance_id}/step"),
        (api_v1.evaluate, "POST", "/v1/instances/{instance_id}/evaluate"),
        (api_v1.release, "DELETE", "/v1/instances/{instance_id}"),
    ]:
        app.router.routes.append(route_class(path, endpoint, methods=[method]))
    app.add_exception_handler(TrainboxError, on_trainbox_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    return TestClient(app)


FAST, DOCUMENTED = routed(FastRoute), routed(APIRoute)
JSON = {"content-type": "application/json"}


def both(path: str, raw: bytes, method: str = "POST") -> dict[str, Any]:
    """The answer of both routings (status and body), after checking that they are the same."""
    fast = FAST.request(method, path, content=raw, headers=JSON)
    documented = DOCUMENTED.request(method, path, content=raw, headers=JSON)
    assert (fast.status_code, fast.json()) == (documented.status_code, documented.json()), raw
    return {"status": fast.status_code, **fast.json()}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"action": {"role": "assistant", "content": "[ls()]"}}', ["i-1", ACTION, None, None]),
        (
            b'{"action": {"role": "assistant", "content": "[ls()]"}, "request_id": "r1", "timeout": 2.5}',
            ["i-1", ACTION, "r1", 2.5],
        ),
        (
            b'{"action": {"role": "assistant", "content": "[ls()]"}, "request_id": null, "timeout": 60}',
            ["i-1", ACTION, None, 60],
        ),
    ],
)
def test_accepts(raw: bytes, expected: list) -> None:
    assert both("/v1/instances/i-1/step", raw) == {"status": 200, "step": expected}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"action": "ls()"}', "action"),
        (b"{}", "action"),
        (b'{"action": {}, "extra": 1}', "unknown field"),
        (b'{"action": {}, "request_id": 5}', "request_id"),
        (b'{"action": {}, "request_id": ""}', "request_id"),
        (b'{"action": {}, "request_id": "%s"}' % (b"r" * 201), "request_id"),
        (b'{"action": {}, "timeout": 0}', "timeout"),
        (b'{"action": {}, "timeout": 7200}', "timeout"),
        (b'{"action": {}, "timeout": true}', "timeout"),
        (b'{"action": {}, "timeout": "5"}', "timeout"),
        (b'{"action": {}, "timeout": NaN}', "timeout"),
    ],
)
def test_refuses(raw: bytes, says: str) -> None:
    answer = both("/v1/instances/i-1/step", raw)
    assert answer["status"] == 422 and answer["error"]["kind"] == "bad_request"
    assert says in answer["error"]["message"], answer


@pytest.mark.parametrize(
    ("raw", "params"), [(b"", {}), (b"{}", {}), (b'{"params": {"sparse": true}}', {"sparse": True})]
)
def test_evaluate_accepts(raw: bytes, params: dict) -> None:
    assert both("/v1/instances/i-1/evaluate", raw) == {"status": 200, "evaluate": ["i-1", params]}


@pytest.mark.parametrize(
    ("raw", "says"), [(b"{x", "not valid JSON"), (b'{"p": 1}', "p: unknown field"), (b'{"params": 3}', "params")]
)
def test_evaluate_refuses(raw: bytes, says: str) -> None:
    answer = both("/v1/instances/i-1/evaluate", raw)
    assert answer["status"] == 422 and says in answer["error"]["message"], answer


def test_release() -> None:
    assert both("/v1/instances/i-1", b"", "DELETE") == {"status": 200, "released": True, "reason": "explicit"}
    assert both("/v1/instances/i-2", b"", "DELETE") == {"status": 200, "released": False, "reason": "explicit"}
