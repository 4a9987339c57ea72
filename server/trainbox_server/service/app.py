"""``create_app()``: the FastAPI application — routers, auth, error handlers, health and metrics."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from trainbox_server import __version__
from trainbox_server.errors import (
    CapacityExceeded,
    InternalError,
    MethodNotAllowed,
    NotFound,
    RequestError,
    TrainboxError,
    Unauthorized,
)
from trainbox_server.service import api_compat, api_v1, fast_routes
from trainbox_server.service.config import ServiceConfig
from trainbox_server.service.core import SandboxService
from trainbox_server.service.metrics import ERRORS, REGISTRY, HostCollector

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


def _is_compat(request: Request) -> bool:
    return not request.url.path.startswith("/v1")


def error_response(request: Request, exc: TrainboxError) -> JSONResponse:
    ERRORS.labels(exc.kind).inc()
    body: dict[str, Any] = {"error": exc.to_dict()}
    if _is_compat(request):  # the reference's envelope, plus our typed error
        body = {"success": False, "data": None, "detail": exc.message, **body}
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, CapacityExceeded) else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def on_trainbox_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrainboxError)
    return error_response(request, exc)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        problems.append("the body is not valid JSON")
    for error in [e for e in exc.errors() if e.get("type") != "json_invalid"][:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    error = RequestError("invalid request: " + "; ".join(problems))
    error.status = 422
    return error_response(request, error)


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, InternalError(f"internal error ({type(exc).__name__}); see the service log"))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Routing errors (no such route, wrong method) in the same envelope as every other error."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error: TrainboxError = NotFound(f"no route {request.method} {request.url.path}; see /docs for the API")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.url.path} does not accept {request.method}; see /docs for the API")
    else:
        error = RequestError(str(exc.detail))
        error.status = exc.status_code
    return error_response(request, error)


class BearerAuth:
    """Every route but health needs ``Authorization: Bearer <token>`` when a token is configured."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                error = Unauthorized("missing or wrong bearer token (send 'Authorization: Bearer <token>')")
                ERRORS.labels(error.kind).inc()
                response = JSONResponse({"error": error.to_dict()}, status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
    app.router.routes.extend(fast_routes.ROUTES)  # matched before the documented routes added next
    app.include_router(api_v1.router)
    app.include_router(api_compat.router)
    app.add_exception_handler(TrainboxError, on_trainbox_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @app.get("/readyz", tags=["health"], summary="Ray and the hosts are ready")
    async def readyz() -> PlainTextResponse:
        alive = sum(h.alive for h in service.loads)
        if not service.ready or not alive:
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse(f"ready: {alive} host(s)")

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    if config.token:
        app.add_middleware(BearerAuth, token=config.token)
    return app
