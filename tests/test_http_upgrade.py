"""Java's HTTP client offers an h2c upgrade on every plain-HTTP request (``Connection: Upgrade,
HTTP2-Settings`` + ``Upgrade: h2c``); the front ignores the offer and serves the request, body included.

Raw sockets against a real uvicorn running the service's protocol class (a small app, so the edge cases —
a body that arrives after the head, pipelining, keep-alive — are cheap to drive), then the real service
(``python -m trainbox_server serve``) with exactly those headers through httpx.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from trainbox_server.service.http_protocol import UpgradeIgnoringProtocol

from tests.servicekit import Service, free_port

JAVA_UPGRADE = {
    "Connection": "Upgrade, HTTP2-Settings",
    "Upgrade": "h2c",
    "HTTP2-Settings": "AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA",
    "User-Agent": "Java-http-client/17.0.12",
}


class Responses:
    """HTTP/1.1 responses read off a raw socket one at a time (pipelined answers may share a recv)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the server closed the connection"
        self.buffer += chunk

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), body


class Echo(BaseModel):
    text: str


def build_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(body: Echo) -> dict[str, str]:
        return {"text": body.text}

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        build_app(), host="127.0.0.1", port=port, log_level="critical", http=UpgradeIgnoringProtocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def post(body: bytes, upgrade: bool = True, path: bytes = b"/echo") -> tuple[bytes, bytes]:
    """The request head and body, with Java's upgrade offer when ``upgrade``."""
    offer = "".join(f"{k}: {v}\r\n" for k, v in JAVA_UPGRADE.items()).encode() if upgrade else b""
    head = (
        b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + offer + b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    return head, body


def test_upgrade_offer_with_body_is_served_as_http11(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        answers = Responses(sock)
        head, body = post(b'{"text": "hello"}')
        sock.sendall(head + body)
        assert answers.next() == (200, b'{"text":"hello"}')
        # the connection stays HTTP/1.1 and usable, with and without the offer
        for text, upgrade in (("again", True), ("plain", False), ("third", True)):
            head, body = post(b'{"text": "%s"}' % text.encode(), upgrade)
            sock.sendall(head + body)
            assert answers.next() == (200, b'{"text":"%s"}' % text.encode())


def test_body_arriving_after_the_head_and_in_pieces(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        answers = Responses(sock)
        head, body = post(b'{"text": "' + b"x" * 5000 + b'"}')
        sock.sendall(head)
        time.sleep(0.2)
        for start in range(0, len(body), 1000):
            sock.sendall(body[start : start + 1000])
            time.sleep(0.02)
        status, answer = answers.next()
        assert status == 200 and answer == b'{"text":"' + b"x" * 5000 + b'"}'


def test_pipelined_requests_after_an_offer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        answers = Responses(sock)
        first = b"".join(post(b'{"text": "one"}'))
        second = b"".join(post(b'{"text": "two"}'))
        sock.sendall(first + second + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answers.next() == (200, b'{"text":"one"}')
        assert answers.next() == (200, b'{"text":"two"}')
        assert answers.next() == (200, b'{"ok":"yes"}')


def test_offer_without_body_and_chunked_offer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        answers = Responses(sock)
        offer = "".join(f"{k}: {v}\r\n" for k, v in JAVA_UPGRADE.items()).encode()
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n" + offer + b"\r\n")
        assert answers.next() == (200, b'{"ok":"yes"}')
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        answers = Responses(sock)
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\n" + offer + b"Transfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head + b"4\r\n{}{}\r\n0\r\n\r\n")
        status, answer = answers.next()
        assert status == 400 and b"Content-Length" in answer


def java_post(client: httpx.Client, op: str, **body: Any) -> Any:
    reply = client.post(f"/{op}", json=body, headers=JAVA_UPGRADE)
    assert reply.status_code == 200, (op, reply.status_code, reply.text)
    return reply.json()


@pytest.mark.slow
def test_the_service_serves_java_style_requests(service: Service) -> None:
    """Every reference-protocol op and a /v1 create, each POST carrying Java's upgrade offer, one connection."""
    with service.client() as client:
        tasks = java_post(client, "get_env_profile", env_type="bfcl", params={"split": "train"})["data"]
        assert tasks and all(isinstance(t, str) for t in tasks)
        made = java_post(client, "create", env_type="bfcl", task_id="multi_turn_base_0")["data"]
        iid = made["info"]["instance_id"]
        step = java_post(client, "step", instance_id=iid, messages={"role": "assistant", "content": "done"})
        assert step["success"] is True and step["data"]["state"][0]["role"] == "user"
        assert isinstance(java_post(client, "get_info", instance_id=iid)["data"], str | dict | list)
        assert java_post(client, "evaluate", instance_id=iid, params={"sparse": True})["data"] == 0.0
        assert java_post(client, "release", instance_id=iid) == {"success": True, "data": None}
        created = client.post(
            "/v1/instances", json={"env_type": "bfcl", "task_id": "simple_python_0"}, headers=JAVA_UPGRADE
        )
        assert created.status_code == 200, created.text
        instance_id = created.json()["instances"][0]["instance_id"]
        assert client.delete(f"/v1/instances/{instance_id}", headers=JAVA_UPGRADE).status_code < 300
