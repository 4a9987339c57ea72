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
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from trainbox_server.errors import InstanceLost
from trainbox_server.runtime.framing import HEADER, decode_length

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[Any]]


def _frame(message: Any) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


async def _read(reader: asyncio.StreamReader) -> Any:
    length = decode_length(await reader.readexactly(HEADER.size))
    return orjson.loads(await reader.readexactly(length))


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
            if not hmac.compare_digest(str(hello.get("secret", "")), self.secret):
                return
            outbox = Outbox(writer)
            while True:
                request = await _read(reader)
                asyncio.create_task(self._answer(request, outbox))  # noqa: RUF006 - answered on the stream
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: dict[str, Any], outbox: Outbox) -> None:
        method = self.methods.get(request.get("method", ""))
        if method is None:
            reply: Any = {"ok": False, "error": {"kind": "bad_request", "message": "unknown host method"}}
        else:
            reply = await method(*request.get("args", ()))
        outbox.send(_frame({"id": request["id"], "reply": reply}))

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

    async def call(self, method: str, *args: Any) -> Any:
        writer = self._writer if self._writer is not None and not self._writer.is_closing() else await self._connect()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            assert self._outbox is not None
            self._outbox.send(_frame({"id": request_id, "method": method, "args": args}))
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await _read(reader)
                future = self._pending.get(message["id"])
                if future is not None and not future.done():
                    future.set_result(message["reply"])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("unreadable reply from host %s", self.host_name)
        lost = InstanceLost(f"the connection to host {self.host_name} closed")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)
        if self._writer is not None:
            self._writer.close()
        self._writer = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
