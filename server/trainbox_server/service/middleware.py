"""ASGI middleware around the routes: the error envelope, bearer auth, the body size limit, and a guard
that answers every unexpected exception itself.

Why a guard of our own: Starlette's ServerErrorMiddleware answers an unhandled exception and then
re-raises it to the server, and uvicorn then drops the keep-alive connection. The guard answers the JSON
500 and swallows the exception (after logging it), so the connection stays usable.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainbox_server.errors import CapacityExceeded, InternalError, PayloadTooLarge, TrainboxError, Unauthorized
from trainbox_server.service.metrics import ERRORS

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/ui"})  # /ui: a static page, its data needs the token


def is_compat(path: str) -> bool:
    """The reference protocol's routes (and unknown paths) answer with its envelope; /v1 with ours."""
    return not path.startswith("/v1")


def error_response(path: str, exc: TrainboxError) -> JSONResponse:
    """The error envelope: ``{"error": {kind, message, infra}}``; on the reference's routes also its
    ``success``/``data``/``detail``; ``Retry-After`` on capacity errors."""
    ERRORS.labels(exc.kind).inc()
    body: dict[str, Any] = {"error": exc.to_dict()}
    if is_compat(path):
        body = {"success": False, "data": None, "detail": exc.message, **body}
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if isinstance(exc, CapacityExceeded) else None
    return JSONResponse(body, status_code=exc.status, headers=headers)


class ErrorGuard:
    """Outermost: an exception no handler answered becomes a JSON 500 and goes no further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            return  # the client went away mid-request: no one to answer
        except Exception as exc:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not started:  # once a response has started, nothing more can be said on it
                error = InternalError(f"internal error ({type(exc).__name__}); see the service log")
                await error_response(scope["path"], error)(scope, receive, send)


class BearerAuth:
    """Every route but health needs the token when one is configured: ``Authorization: Bearer <token>``, or
    HTTP Basic with the token as the password (any user name) — what a client sends for a URL with user
    info, e.g. OpenEnv's client given ``http://trainbox:<token>@host:8080/openenv/bfcl``, which has no way
    to add a header of its own."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()
        self.expected = b"Bearer " + self.token

    def allows(self, given: bytes) -> bool:
        if given[:6].lower() == b"basic ":
            try:
                _, _, password = base64.b64decode(given[6:].strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(password, self.token)
        return hmac.compare_digest(given, self.expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = scope["type"] in ("http", "websocket") and scope["path"] not in OPEN_PATHS
        if guarded and not self.allows(dict(scope["headers"]).get(b"authorization", b"")):
            if scope["type"] == "websocket":  # refused before the handshake: the client sees a 403
                await send({"type": "websocket.close", "code": 1008})
                return
            error = Unauthorized(
                "missing or wrong bearer token (send 'Authorization: Bearer <token>', or HTTP Basic with the "
                "token as the password)"
            )
            await error_response(scope["path"], error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a body over ``max_bytes`` with 413: by its Content-Length before reading it, or — sent in
    chunks without one — by counting while reading it (the body is then handed on whole)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, scope: Scope, size: str) -> JSONResponse:
        error = PayloadTooLarge(f"the request body is {size}; the limit is {self.max_bytes} bytes")
        return error_response(scope["path"], error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:  # the server enforces it: the body cannot be longer
            if int(length) > self.max_bytes:
                await self._too_large(scope, f"{int(length)} bytes")(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(scope, f"over {self.max_bytes} bytes (sent in chunks)")(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        whole: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)
