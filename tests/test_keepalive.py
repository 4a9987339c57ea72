"""After an unexpected exception (a 500) the keep-alive connection stays usable: a real uvicorn server on
loopback, the front's ErrorGuard, raw sockets (so nothing reconnects behind our back)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from trainbox_server.service.middleware import BodyLimit, ErrorGuard

from tests.servicekit import free_port

CHUNKED_POST = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"


def build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug")

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    app.add_middleware(BodyLimit, max_bytes=1000)
    app.add_middleware(ErrorGuard)
    return app


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(), host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    return int(head.split()[1]), body


def test_connection_survives_a_500(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=30) as sock:
        for _ in range(5):
            sock.sendall(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            status, body = read_response(sock)
            assert status == 500 and b'"internal_error"' in body and b"Traceback" not in body
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock) == (200, b'{"ok":"yes"}')


def test_chunked_body_over_the_limit_is_413(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=30) as sock:
        chunk = b"x" * 600
        request = (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        )
        sock.sendall(request + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
        status, body = read_response(sock)
        assert status == 413 and b"1000 bytes" in body
    with socket.create_connection(("127.0.0.1", server_port), timeout=30) as sock:
        small = b'{"a": "b"}'
        request = (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        )
        sock.sendall(request + b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small))
        assert read_response(sock) == (200, b'{"a":"b"}')
