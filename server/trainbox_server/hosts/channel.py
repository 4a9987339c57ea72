"""The data path between the front and a host: one persistent TCP stream per host, framed JSON, many
requests in flight. Ray places, names and supervises the hosts; the calls that carry the traffic (create,
step, evaluate, release, get) skip Ray's per-call overhead and go over this stream instead.

Frames are the worker protocol's (4-byte length + JSON). The host listens on its node's address
(127.0.0.1 on one machine) on a free port and publishes ``(address, secret)`` through Ray; a client's
first frame must carry the secret, so only fronts that can reach the host's actor can use the stream.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from trainbox_server.errors import HostTimeout, InstanceLost, InternalError, InvalidRequest, PayloadTooLarge
from trainbox_server.runtime.framing import HEADER, MAX_FRAME, FrameError, frame

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[Any]]
# Both sides write ``{"id": <int>, ...}`` first (orjson keeps insertion order): a frame that does not parse
# still names the request it answers, so that request fails and the stream goes on.
FRAME_ID = re.compile(rb'\{"id":(\d{1,18})[,}]')
DISCARD_CHUNK = 1 << 20


def _frame(message: Any) -> bytes:
    """One frame; TypeError (orjson.JSONEncodeError) when the message cannot be encoded (strict, unlike the
    worker pipes' ``framing.encode``: a host's reply must be exactly what it returned), FrameError when it
    is over the frame limit."""
    return frame(orjson.dumps(message))


def frame_id(body: bytes) -> int | None:
    """The request id a frame carries, read without parsing it (None: not there)."""
    match = FRAME_ID.match(body)
    return int(match.group(1)) if match else None


async def _read_body(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's body; None when it was over the limit (read and dropped: the stream stays in step)."""
    (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length <= MAX_FRAME:
        return await reader.readexactly(length)
    log.warning("dropped a frame of %d bytes (limit %d)", length, MAX_FRAME)
    while length:
        length -= len(await reader.readexactly(min(length, DISCARD_CHUNK)))
    return None


async def _read(reader: asyncio.StreamReader) -> Any:
    body = await _read_body(reader)
    if body is None:
        raise FrameError("frame over the limit")
    return orjson.loads(body)


def error_reply(request_id: int, error: Exception) -> dict[str, Any]:
    """The envelope a host method would have answered with for ``error``."""
    kind = getattr(error, "kind", InternalError.kind)
    message = getattr(error, "message", None) or f"{type(error).__name__} on the host; see its log"
    return {"id": request_id, "reply": {"ok": False, "error": {"kind": kind, "message": message, "infra": True}}}


class Outbox:
    """Frames written in one event-loop tick leave in one ``write``: under load, one syscall for many replies."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.frames: list[bytes] = []
        self.scheduled = False

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.frames and not self.writer.is_closing():
            self.writer.write(b"".join(self.frames))
        self.frames.clear()


class ChannelServer:
    """Host side: serves ``{"id", "method", "args"}`` frames by calling the host's public coroutines."""

    def __init__(self, methods: dict[str, Handler], host: str = "127.0.0.1") -> None:
        self.methods = methods
        self.host = host
        self.secret = secrets.token_hex(16)
        self.address = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, 0, limit=1 << 22)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{self.host}:{port}"
        return self.address

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await _read(reader)
            if not isinstance(hello, dict) or not hmac.compare_digest(str(hello.get("secret", "")), self.secret):
                return
            outbox = Outbox(writer)
            while True:
                body = await _read_body(reader)
                if body is not None:
                    self._dispatch(body, outbox)
        except (asyncio.IncompleteReadError, ConnectionError, FrameError, orjson.JSONDecodeError):
            pass
        finally:
            writer.close()

    def _dispatch(self, body: bytes, outbox: Outbox) -> None:
        """Start answering one request frame; a frame that does not parse fails that request only."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("id"), int):
            request_id = frame_id(body)
            if request_id is not None:
                outbox.send(_frame(error_reply(request_id, InternalError("the host could not read the request"))))
            else:
                log.warning("dropped an unreadable frame of %d bytes", len(body))
            return
        asyncio.create_task(self._answer(request, outbox))  # noqa: RUF006 - answered on the stream

    async def _answer(self, request: dict[str, Any], outbox: Outbox) -> None:
        """Answer one request, whatever happens: a method that raises or a reply that cannot be sent
        becomes that request's typed error."""
        request_id: int = request["id"]
        method = self.methods.get(str(request.get("method", "")))
        args = request.get("args", ())
        try:
            if method is None or not isinstance(args, list | tuple):
                reply: Any = {"ok": False, "error": {"kind": "bad_request", "message": "unknown host method"}}
            else:
                reply = await method(*args)
        except Exception as exc:
            log.exception("host method %s failed", request.get("method"))
            outbox.send(_frame(error_reply(request_id, InternalError(f"the host failed ({type(exc).__name__})"))))
            return
        try:
            frame = _frame({"id": request_id, "reply": reply})
        except (TypeError, FrameError) as exc:
            log.warning("reply to %s could not be sent: %s", request.get("method"), exc)
            error = InternalError(f"the host's reply could not be sent ({exc})")
            frame = _frame(error_reply(request_id, error))
        outbox.send(frame)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


class ChannelClient:
    """Front side: one connection to one host, opened lazily, requests matched to replies by id."""

    def __init__(self, host_name: str, address: str, secret: str) -> None:
        self.host_name = host_name
        self.address = address
        self.secret = secret
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: Outbox | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            ip, port = self.address.rsplit(":", 1)
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, int(port), limit=1 << 22), 10)
            except (OSError, TimeoutError) as exc:
                raise InstanceLost(f"host {self.host_name} is unreachable ({type(exc).__name__})") from None
            writer.write(_frame({"secret": self.secret}))
            self._writer, self._outbox = writer, Outbox(writer)
            self._reader_task = asyncio.create_task(self._read_replies(reader))
            return writer

    async def call(self, method: str, *args: Any, deadline: float = 300.0) -> Any:
        """Send one request and wait for its reply, at most ``deadline`` seconds (then HostTimeout)."""
        request_id = next(self._ids)
        try:
            frame = _frame({"id": request_id, "method": method, "args": args})
        except TypeError as exc:
            raise InvalidRequest(f"invalid request: the request cannot be encoded as JSON ({exc})") from None
        except FrameError as exc:
            raise PayloadTooLarge(f"the request is too large to forward: {exc}") from None
        writer = self._writer if self._writer is not None and not self._writer.is_closing() else await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            assert self._outbox is not None
            self._outbox.send(frame)
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()
            return await asyncio.wait_for(future, deadline)
        except TimeoutError:
            raise HostTimeout(f"host {self.host_name} did not answer {method} within {deadline:g} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                body = await _read_body(reader)
                if body is not None:
                    self._deliver(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("the stream from host %s broke", self.host_name)
        lost = InstanceLost(f"the connection to host {self.host_name} closed")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    def _deliver(self, body: bytes) -> None:
        """Resolve the request a reply answers; an unreadable reply fails that request only."""
        try:
            message = orjson.loads(body)
            future = self._pending.get(message["id"])
            reply = message["reply"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            request_id = frame_id(body)
            log.warning("unreadable reply from host %s (request %s)", self.host_name, request_id)
            future = self._pending.get(request_id) if request_id is not None else None
            if future is not None and not future.done():
                future.set_exception(InternalError(f"the reply from host {self.host_name} could not be read"))
            return
        if future is not None and not future.done():
            future.set_result(reply)

    def close_now(self) -> None:
        """Close the connection; calls still waiting fail with InstanceLost."""
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        lost = InstanceLost(f"host {self.host_name} is gone")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)

    async def close(self) -> None:
        self.close_now()
