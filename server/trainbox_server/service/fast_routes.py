"""``FastRoute``: a documented route served without FastAPI's per-request machinery (dependency solving,
generic encoding) — for the calls a trainer makes on every step and episode (step, evaluate, release).

The route is declared like any other (its endpoint, body model and answers are in the OpenAPI schema) and
has one handler, its endpoint. Only the way in differs: the body is read with orjson (integers exact) and
validated by the endpoint's own pydantic model in the same mode FastAPI uses, so the limits live once, in
the model, and a refusal says the same words as on every other route (``bounds.validation_message``).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from trainbox_server.service.bounds import LONG_DIGITS, invalid, validation_message


def load_json(raw: bytes) -> Any:
    """The body as JSON, read as FastAPI reads it (the standard library's ``json``), at orjson's speed where
    that is the same: orjson reads an integer past 64 bits as a float and refuses ``NaN``/``Infinity``, so
    such bodies are read again by the standard library (the bound checks then refuse those values, with
    the words they use on every route)."""
    if not LONG_DIGITS.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid("the body is not valid JSON (or nests too deep)") from None


def body_model(endpoint: Callable[..., Any]) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model of ``endpoint``'s ``body`` parameter (None: it takes no body), and whether the
    body may be left out (the parameter defaults to None)."""
    parameter = inspect.signature(endpoint).parameters.get("body")
    if parameter is None:
        return None, True
    hint = typing.get_type_hints(endpoint)["body"]
    models = [t for t in (typing.get_args(hint) or (hint,)) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0], parameter.default is None


def parse_body(model: type[BaseModel], raw: bytes, optional: bool = False) -> BaseModel | None:
    """``raw`` validated by ``model`` as FastAPI validates a body (parsed JSON, python mode), or a 422 in
    the words every route uses. An empty body is None where the body may be left out."""
    if optional and not raw.strip():
        return None
    body = load_json(raw)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(validation_message(exc.errors(), model)) from None


class FastRoute(APIRoute):
    """An ``APIRoute`` whose handler calls its endpoint straight: ``endpoint(service=..., **path_params,
    body=...)``. The endpoint takes the service, its path parameters (strings) and at most one body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        model, optional = body_model(endpoint)

        async def handle(request: Request) -> Response:
            kwargs: dict[str, Any] = dict(request.path_params)
            if model is not None:
                kwargs["body"] = parse_body(model, await request.body(), optional)
            result = await endpoint(service=request.app.state.service, **kwargs)
            return Response(orjson.dumps(result), media_type="application/json")

        return handle
