"""``create_app()``: the FastAPI application — routers, auth, error handlers, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainbox_server import __version__
from trainbox_server.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RequestError,
    TrainboxError,
)
from trainbox_server.service import api_compat, api_trajectory, api_v1, openenv, openenv_http
from trainbox_server.service.bounds import invalid, validation_message
from trainbox_server.service.config import ServiceConfig
from trainbox_server.service.core import SandboxService
from trainbox_server.service.fast_routes import body_model
from trainbox_server.service.metrics import REGISTRY, HostCollector
from trainbox_server.service.middleware import BearerAuth, BodyLimit, ErrorGuard, error_response
from trainbox_server.service.schemas import DESCRIPTIONS

log = logging.getLogger(__name__)
# FastAPI's answer when the standard library cannot parse a body (e.g. it nests past the recursion limit)
FASTAPI_PARSE_FAILURE = "There was an error parsing the body"
TEXT = {"text/plain": {"schema": {"type": "string"}}}
COMPAT_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/CompatErrorResponse"}}}


class PrometheusText(Response):
    media_type = CONTENT_TYPE_LATEST


async def on_trainbox_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrainboxError)
    return error_response(request.url.path, exc)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    route = request.scope.get("route")
    model = body_model(route.endpoint)[0] if isinstance(route, APIRoute) else None
    return error_response(request.url.path, invalid(validation_message(exc.errors(), model)))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error: TrainboxError = NotFound(f"no route {request.method} {request.url.path}; see /docs for the API")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.url.path} does not accept {request.method}; see /docs for the API")
    elif exc.status_code == 400 and exc.detail == FASTAPI_PARSE_FAILURE:
        error = InvalidRequest("invalid request: the body is not valid JSON (or nests too deep)")
    else:
        error = RequestError(str(exc.detail))
        error.status = exc.status_code
    return error_response(request.url.path, error)


def create_app(
    config: ServiceConfig | None = None,
    service: SandboxService | None = None,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The service app. ``on_ready`` runs once Ray and the hosts are up (the CLI announces its URL)."""
    config = config or ServiceConfig.from_env()
    service = service or SandboxService(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start_async()
        REGISTRY.register(collector := HostCollector(service))
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            REGISTRY.unregister(collector)
            await service.stop()

    app = FastAPI(
        title="trainbox",
        version=__version__,
        description="Training sandbox for agent RL: environments as instances (create, step, evaluate, release).",
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(api_v1.router)
    app.include_router(api_v1.hot)
    app.include_router(api_trajectory.router)
    app.include_router(api_compat.router)
    app.include_router(openenv_http.router)
    app.include_router(openenv.router)  # the WebSocket session
    app.add_exception_handler(TrainboxError, on_trainbox_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

    @app.get(
        "/healthz",
        tags=["health"],
        summary="The process is up",
        response_class=PlainTextResponse,
        responses={200: {"content": TEXT, "description": "OK"}},
    )
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The front serves: it joined Ray and its hosts came up once",
        response_class=PlainTextResponse,
        responses={
            200: {"content": TEXT, "description": "ready: the number of hosts serving now (0 while re-created)"},
            503: {"content": TEXT, "description": "not ready: starting (no host has come up yet)"},
        },
    )
    async def readyz() -> PlainTextResponse:
        # Once started, the front stays ready while its hosts are re-created: it then answers typed errors
        # (hosts_unavailable 503 with Retry-After, instance_lost 410) that clients act on. Were it unready,
        # a Kubernetes Service would drop it and clients would see refused connections instead.
        if not service.ready:
            return PlainTextResponse("not ready: starting, no host has come up yet", status_code=503)
        alive = len(service.serving())
        return PlainTextResponse(f"ready: {alive} host(s) serving" + ("" if alive else " now (being re-created)"))

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=PrometheusText,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Prometheus text"},
            401: {"content": COMPAT_ERROR, "description": DESCRIPTIONS[401]},
            500: {"content": COMPAT_ERROR, "description": DESCRIPTIONS[500]},
        },
    )
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    if config.token:
        app.add_middleware(BearerAuth, token=config.token)
    app.add_middleware(ErrorGuard)  # added last: the outermost of ours
    return app
