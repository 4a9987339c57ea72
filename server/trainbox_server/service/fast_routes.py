"""The hot routes (step, evaluate, release) without FastAPI's per-request machinery (dependency solving,
model validation, generic encoding): the calls a trainer makes for every step and episode. Registered
ahead of the documented ``/v1`` routes, which stay in the OpenAPI schema; these accept and answer exactly
the same, and check their bodies by hand.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trainbox_server.service.bounds import LONG_DIGITS, MAX_REQUEST_ID_CHARS, invalid
from trainbox_server.service.metrics import timed

STEP_FIELDS = frozenset({"action", "request_id", "timeout"})


def load_json(raw: bytes) -> Any:
    """The body as JSON, integers exact: orjson reads an integer past 64 bits as a float, so a body with
    a long run of digits is read again by the standard library (the bound checks then refuse such
    integers, as they do on the documented routes)."""
    try:
        body = json.loads(raw) if LONG_DIGITS.search(raw) else orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, RecursionError):
        raise invalid("the body is not valid JSON (or nests too deep)") from None
    return body


def parse_step_body(raw: bytes) -> tuple[dict[str, Any], str | None, float | None]:
    """The step body's (action, request_id, timeout), or a 422 saying what is wrong and what is accepted."""
    body = load_json(raw)
    if not isinstance(body, dict):
        raise invalid('the body must be an object: {"action": {...}, "request_id": ..., "timeout": ...}')
    extra = sorted(set(body) - STEP_FIELDS)
    if extra:
        raise invalid(f"unknown field(s) {extra}; accepted: {sorted(STEP_FIELDS)}")
    action = body.get("action")
    if not isinstance(action, dict):
        raise invalid("action: must be the assistant message object, e.g. {'role': 'assistant', ...}")
    request_id = body.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS):
        raise invalid(f"request_id: must be a string of 1 to {MAX_REQUEST_ID_CHARS} characters")
    timeout = body.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600
    ):
        raise invalid("timeout: must be a number of seconds in (0, 3600]")
    return action, request_id, timeout


async def step(request: Request) -> Response:
    action, request_id, timeout = parse_step_body(await request.body())
    async with timed("step") as timing:
        result = await request.app.state.service.step(request.path_params["instance_id"], action, request_id, timeout)
        timing.env = result.pop("env_type", "unknown")
    return Response(orjson.dumps(result), media_type="application/json")


def parse_evaluate_body(raw: bytes) -> dict[str, Any]:
    """The evaluate body's params (an empty body means none), or a 422 saying what is accepted."""
    if not raw.strip():
        return {}
    body = load_json(raw)
    if not isinstance(body, dict) or set(body) - {"params"}:
        raise invalid('the body must be {"params": {...}}')
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise invalid("params: must be an object, e.g. {'sparse': true}")
    return params


async def evaluate(request: Request) -> Response:
    params = parse_evaluate_body(await request.body())
    async with timed("evaluate") as timing:
        result = await request.app.state.service.evaluate(request.path_params["instance_id"], params)
        timing.env = result.pop("env_type", "unknown")
    return Response(orjson.dumps(result), media_type="application/json")


async def release(request: Request) -> Response:
    released = await request.app.state.service.release(request.path_params["instance_id"])
    return Response(orjson.dumps({"released": released, "reason": "explicit"}), media_type="application/json")


ROUTES = [
    Route("/v1/instances/{instance_id}/step", step, methods=["POST"], include_in_schema=False),
    Route("/v1/instances/{instance_id}/evaluate", evaluate, methods=["POST"], include_in_schema=False),
    Route("/v1/instances/{instance_id}", release, methods=["DELETE"], include_in_schema=False),
]
