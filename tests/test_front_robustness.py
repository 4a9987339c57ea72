"""Every request gets an answer, and the right one: hostile and clumsy inputs against the real app with real
BFCL workers (the fast lane: in-process hosts; a co-tenant instance must keep serving throughout), plus
admission that counts every create at once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from trainbox_server.hosts.local_hosts import LocalHosts

from tests.fastlane import App, local_app

BODY = {"env_type": "bfcl", "task_id": "multi_turn_base_0"}
LS = {"role": "assistant", "content": "[ls()]"}
MAX_BODY = 256 * 1024
MAX_LIVE = 20


def deep(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.fixture(scope="module")
def small(local_hosts: LocalHosts) -> Iterator[App]:
    with local_app(local_hosts, max_live=MAX_LIVE, max_body_bytes=MAX_BODY) as running:
        yield running


@pytest.fixture()
def bystander(small: App) -> Iterator[str]:
    """A live instance that must keep serving whatever the other requests do."""
    with small.client() as client:
        iid = client.post("/v1/instances", json=BODY).json()["instances"][0]["instance_id"]
        yield iid
        assert client.post(f"/v1/instances/{iid}/step", json={"action": LS}).status_code == 200
        client.delete(f"/v1/instances/{iid}")


def refused(response: httpx.Response, status: int, says: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert says in error["message"] and error["infra"] is False, error


BIG = 10**30


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/v1/instances", {**BODY, "params": {"n": BIG}}, "params.n: an integer of more than 18 digits"),
        ("/v1/instances", {**BODY, "params": deep(300)}, "nests deeper than 64 levels"),
        ("/v1/instances", {**BODY, "count": True}, "count"),
        ("/v1/instances", {**BODY, "instance_id": "host-amd64-x-0-abc--" + "0" * 32}, "reserved"),
        ("/v1/instances", {**BODY, "instance_id": "host-mine"}, "reserved"),
        ("/create", {**BODY, "instance_id": "bad\x00id"}, "instance_id"),
        ("/create", {**BODY, "instance_id": "../../etc"}, "instance_id"),
        ("/create", {**BODY, "instance_id": "two\nlines"}, "instance_id"),
        ("/create", {**BODY, "instance_id": "x" * 5000}, "instance_id"),
        ("/create", {**BODY, "instance_id": "host-amd64-x-0-abc--" + "0" * 32}, "reserved"),
        ("/create", {**BODY, "params": {"n": -BIG}}, "params.n: an integer"),
        ("/get_env_profile", {"env_type": "bfcl", "params": {"split": ["train"]}}, "split"),
        ("/get_env_profile", {"env_type": "bfcl", "params": {"split": {"a": 1}}}, "split"),
    ],
)
def test_bad_creates_and_profiles_are_422(small: App, bystander: str, path: str, body: dict, says: str) -> None:
    with small.client() as client:
        refused(client.post(path, json=body), 422, says)


@pytest.mark.parametrize(
    ("route", "body", "says"),
    [
        ("v1", {"action": {**LS, "x": BIG}}, "action.x: an integer"),
        ("v1", {"action": {**LS, "x": deep(300)}}, "nests deeper"),
        ("v1", {"action": LS, "request_id": ["a"]}, "request_id"),
        ("v1", {"action": LS, "request_id": {"a": 1}}, "request_id"),
        ("v1", {"action": LS, "timeout": 1e-06}, "timeout"),
        ("compat", {"messages": {**LS, "x": BIG}, "params": {}}, "action.x: an integer"),
        ("compat", {"messages": LS, "params": {"request_id": ["a", "b"]}}, "request_id"),
        ("compat", {"messages": LS, "params": {"request_id": {"k": "v"}}}, "request_id"),
        ("compat", {"messages": LS, "params": {"timeout": 1e-06}}, None),  # the reference has no step timeout
    ],
)
def test_bad_steps_are_answered_and_harm_no_one(
    small: App, bystander: str, route: str, body: dict, says: str | None
) -> None:
    with small.client() as client:
        if route == "v1":
            response = client.post(f"/v1/instances/{bystander}/step", json=body)
        else:
            response = client.post("/step", json={"instance_id": bystander, **body})
        if says is None:
            assert response.status_code == 200, response.text
        else:
            refused(response, 422, says)


def test_non_standard_json_numbers_are_refused(small: App, bystander: str) -> None:
    with small.client() as client:
        headers = {"content-type": "application/json"}
        raw = b'{"env_type": "bfcl", "task_id": "multi_turn_base_0", "idle_ttl": Infinity}'
        refused(client.post("/v1/instances", content=raw, headers=headers), 422, "idle_ttl")
        raw = b'{"env_type": "bfcl", "task_id": "multi_turn_base_0", "idle_ttl": NaN}'
        refused(client.post("/v1/instances", content=raw, headers=headers), 422, "idle_ttl")
        step = b'{"action": {"role": "assistant", "content": "[ls()]", "n": %s}}' % (b"9" * 4000)
        refused(client.post(f"/v1/instances/{bystander}/step", content=step, headers=headers), 422, "integer")
        abyss = b'{"env_type": "bfcl", "task_id": "multi_turn_base_0", "params": {"a": %s}}' % (
            b"[" * 50_000 + b"]" * 50_000
        )
        refused(client.post("/v1/instances", content=abyss, headers=headers), 422, "nests too deep")
        step = b'{"action": {"role": "assistant", "content": %s}}' % (b"[" * 50_000 + b"]" * 50_000)
        refused(client.post(f"/v1/instances/{bystander}/step", content=step, headers=headers), 422, "nests too deep")


def test_body_size_limit(small: App, bystander: str) -> None:
    with small.client() as client:
        big = {"action": {**LS, "pad": "x" * (MAX_BODY + 10)}}
        response = client.post(f"/v1/instances/{bystander}/step", json=big)
        assert response.status_code == 413 and str(MAX_BODY) in response.json()["error"]["message"]
        assert response.json()["error"]["kind"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"action": {"role": "assistant", "content": "'
            for _ in range(40):
                yield b"x" * 8192
            yield b'"}}'

        response = client.post(f"/v1/instances/{bystander}/step", content=chunks())
        assert response.status_code == 413 and str(MAX_BODY) in response.json()["error"]["message"]
        response = client.post("/create", json={**BODY, "params": {"pad": "x" * (MAX_BODY + 10)}})
        assert response.status_code == 413 and response.json()["success"] is False


def test_ids_of_unknown_hosts_are_lost_not_unknown(small: App) -> None:
    ghost = f"host-amd64-0123456789-0-dead00--{uuid.uuid4().hex}"
    with small.client() as client:
        for response in (
            client.get(f"/v1/instances/{ghost}"),
            client.post(f"/v1/instances/{ghost}/step", json={"action": LS}),
            client.post("/step", json={"instance_id": ghost, "messages": LS}),
        ):
            assert response.status_code == 410, response.text
            assert response.json()["error"]["kind"] == "instance_lost" and response.json()["error"]["infra"] is True
        assert client.get("/v1/instances/..%2F..%2Fetc").status_code == 404


def _burst(app: App, n: int, custom: bool) -> Counter[int]:
    """``n`` creates at once (16 in flight, as 16 connections would have)."""

    def one(i: int) -> httpx.Response:
        body = {**BODY, "instance_id": f"burst-{uuid.uuid4().hex[:8]}-{i}"} if custom else BODY
        return app.http.post("/v1/instances", json=body)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, range(n)))
        for r in responses:
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["kind"] == "capacity_exceeded"
        made = [r.json()["instances"][0]["instance_id"] for r in responses if r.status_code == 200]
        list(pool.map(lambda iid: app.http.delete(f"/v1/instances/{iid}"), made))
    return Counter(r.status_code for r in responses)


@pytest.mark.parametrize("custom", [True, False], ids=["caller-ids", "generated-ids"])
def test_admission_counts_every_create_at_once(small: App, custom: bool) -> None:
    with small.client() as client:
        live = sum(h["live"] for h in client.get("/v1/hosts").json()["hosts"] if h["alive"])
    codes = _burst(small, 2 * MAX_LIVE, custom)
    assert codes[200] == MAX_LIVE - live and codes[429] == MAX_LIVE + live, codes


def test_release_frees_room_at_once(small: App) -> None:
    with small.client() as client:
        held = []
        while (response := client.post("/v1/instances", json=BODY)).status_code == 200:
            held.append(response.json()["instances"][0]["instance_id"])
            assert len(held) <= MAX_LIVE
        assert response.status_code == 429
        client.delete(f"/v1/instances/{held.pop()}")
        again = client.post("/v1/instances", json=BODY)  # no wait for the hosts' next report
        assert again.status_code == 200, again.text
        held.append(again.json()["instances"][0]["instance_id"])
        for iid in held:
            client.delete(f"/v1/instances/{iid}")
