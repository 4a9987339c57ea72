"""The front->host channel over real loopback sockets: every call gets an answer (a method that raises,
a reply that cannot be encoded, a request that cannot be, a host that never answers), and a bad frame
fails one request while the connection goes on serving."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from trainbox_server.errors import HostTimeout, InternalError, InvalidRequest, TrainboxError
from trainbox_server.hosts.channel import ChannelClient, ChannelServer, _frame, _read
from trainbox_server.runtime.framing import HEADER


async def echo(value: Any) -> dict[str, Any]:
    return {"ok": True, "result": value}


async def boom(_: Any) -> dict[str, Any]:
    raise TypeError("unhashable type: 'list'")


async def huge_int(_: Any) -> dict[str, Any]:
    return {"ok": True, "result": 10**4000}


async def hang(_: Any) -> dict[str, Any]:
    await asyncio.sleep(3600)
    return {"ok": True, "result": None}


METHODS = {"echo": echo, "boom": boom, "huge_int": huge_int, "hang": hang}


async def _with_channel(test: Any) -> None:
    server = ChannelServer(METHODS, "127.0.0.1")
    await server.start()
    client = ChannelClient("host-test", server.address, server.secret)
    try:
        await test(server, client)
    finally:
        await client.close()
        await server.close()


def run(test: Any) -> None:
    asyncio.run(asyncio.wait_for(_with_channel(test), 60))


def test_every_call_is_answered() -> None:
    async def test(server: ChannelServer, client: ChannelClient) -> None:
        assert await client.call("echo", [1, "a"]) == {"ok": True, "result": [1, "a"]}
        failed = await client.call("boom", 1)  # the method raised: a typed error, not silence
        assert failed["ok"] is False and failed["error"]["kind"] == "internal_error"
        unsendable = await client.call("huge_int", 1)  # the reply cannot be encoded
        assert unsendable["ok"] is False and "could not be sent" in unsendable["error"]["message"]
        unknown = await client.call("nope")
        assert unknown["ok"] is False
        with pytest.raises(InvalidRequest):  # never sent: the request itself cannot be encoded
            await client.call("echo", 10**30)
        with pytest.raises(HostTimeout):
            await client.call("hang", 1, deadline=0.5)
        assert await client.call("echo", "still there") == {"ok": True, "result": "still there"}

    run(test)


def test_a_bad_frame_fails_one_request_not_the_connection() -> None:
    async def test(server: ChannelServer, _: ChannelClient) -> None:
        ip, port = server.address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(ip, int(port))
        writer.write(_frame({"secret": server.secret}))
        broken = b'{"id":7,"method":"echo","args":[\xff'
        writer.write(HEADER.pack(len(broken)) + broken)
        writer.write(_frame({"id": 8, "method": "echo", "args": ["fine"]}))
        await writer.drain()
        replies = {}
        for _ in range(2):
            reply = await _read(reader)
            replies[reply["id"]] = reply["reply"]
        assert replies[7]["ok"] is False and replies[7]["error"]["kind"] == "internal_error"
        assert replies[8] == {"ok": True, "result": "fine"}
        writer.close()

    run(test)


def test_an_unreadable_reply_fails_one_call() -> None:
    async def fake_host(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read(reader)  # hello
            first, second = await _read(reader), await _read(reader)
            broken = b'{"id":%d,"reply":\xff' % first["id"]
            writer.write(HEADER.pack(len(broken)) + broken)
            writer.write(_frame({"id": second["id"], "reply": {"ok": True, "result": 2}}))
            await writer.drain()
            await asyncio.sleep(5)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(fake_host, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = ChannelClient("host-fake", f"127.0.0.1:{port}", "s")
        first = asyncio.create_task(client.call("a"))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(client.call("b"))
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(results[0], InternalError) and isinstance(results[0], TrainboxError)
        assert results[1] == {"ok": True, "result": 2}
        await client.close()
        server.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_frames_name_their_request_first() -> None:
    assert orjson.dumps({"id": 3, "method": "x", "args": []}).startswith(b'{"id":3,')
