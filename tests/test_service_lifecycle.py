"""Lifecycle and robustness of the real service on a real Ray: the hosts' own sweeper, restarts, host loss, and
many concurrent instances across hosts. (TTL decisions, admission and auth: test_service_local.py and
test_admission_local.py, in the fast lane.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.loadclient import load_client
from tests.servicekit import RayCluster, Service, start_service

pytestmark = pytest.mark.slow
BODY = {"env_type": "bfcl", "task_id": "multi_turn_base_0"}
LS = {"role": "assistant", "content": "[ls()]"}


def wait_gone(client: httpx.Client, iid: str, within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if client.get(f"/v1/instances/{iid}").status_code == 404:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"{iid} still live after {within} s")


def released(client: httpx.Client, reason: str) -> int:
    return sum(h["released"].get(reason, 0) for h in client.get("/v1/hosts").json()["hosts"] if h["alive"])


def test_the_hosts_sweeper_releases_idle_instances(service: Service) -> None:
    """The sweeper runs by itself on a host actor (when exactly is the fast lane's TTL test)."""
    with service.client() as client:
        idle_before = released(client, "idle")
        iid = client.post("/v1/instances", json={**BODY, "idle_ttl": 1}).json()["instances"][0]["instance_id"]
        wait_gone(client, iid, within=30)
        assert released(client, "idle") == idle_before + 1


def test_the_viewer_page_is_open_and_its_data_and_websocket_need_the_token(ray_cluster: RayCluster) -> None:
    svc = start_service(ray_cluster.address, TRAINBOX_TOKEN="s3cret")
    try:
        with svc.client() as client:
            assert client.get("/ui").status_code == 200  # a static page; its data needs the token
            assert client.get("/v1/trajectories").status_code == 401
        ws_url = svc.url.replace("http://", "ws://") + "/openenv/bfcl/ws"
        with pytest.raises(InvalidStatus) as refused:  # the WebSocket upgrade needs the token too
            ws_connect(ws_url, open_timeout=30).close()
        assert refused.value.response.status_code == 403
        with ws_connect(ws_url, additional_headers={"Authorization": "Bearer s3cret"}, open_timeout=30) as ws:
            ws.send(json.dumps({"type": "state"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "state"
    finally:
        svc.stop()


def test_front_restart_keeps_instances(ray_cluster: RayCluster) -> None:
    first = start_service(ray_cluster.address)
    with first.client() as client:
        iid = client.post("/v1/instances", json=BODY).json()["instances"][0]["instance_id"]
        client.post(f"/v1/instances/{iid}/step", json={"action": LS})
    first.stop()
    second = start_service(ray_cluster.address, TRAINBOX_RAY_NAMESPACE=first.env["TRAINBOX_RAY_NAMESPACE"])
    try:
        with second.client() as client:
            assert client.get(f"/v1/instances/{iid}").json()["steps"] == 1
            step = client.post(f"/v1/instances/{iid}/step", json={"action": LS})
            assert step.status_code == 200 and step.json()["state"][0]["role"] == "tool"
            assert client.delete(f"/v1/instances/{iid}").json()["released"] is True
    finally:
        second.stop()


async def _create_step_release(url: str, n: int) -> list[str]:
    async with load_client(url, connections=64) as client:  # aiohttp: a fraction of httpx's CPU (tests/loadclient.py)

        async def one(i: int) -> str:
            made = await client.post("/v1/instances", json={"env_type": "bfcl", "task_id": f"multi_turn_base_{i % 50}"})
            assert made.status_code == 200, made.text
            iid: str = made.json()["instances"][0]["instance_id"]
            step = await client.post(f"/v1/instances/{iid}/step", json={"action": LS})
            assert step.status_code == 200, step.text
            return iid

        ids = await asyncio.gather(*(one(i) for i in range(n)))
        hosts = Counter(i.split("--")[0] for i in ids)
        assert len(hosts) >= 2, hosts  # spread over hosts
        results = await asyncio.gather(*(client.delete(f"/v1/instances/{i}") for i in ids))
        assert all(r.json()["released"] for r in results)
        return list(ids)


def test_200_concurrent_instances_and_host_loss(ray_cluster: RayCluster) -> None:
    svc = start_service(ray_cluster.address, TRAINBOX_HOSTS_PER_NODE="2")
    try:
        ids = asyncio.run(_create_step_release(svc.url, 200))
        assert len(set(ids)) == 200
        with svc.client() as client:
            hosts_now = client.get("/v1/hosts").json()["hosts"]
            made = client.post("/v1/instances", json={**BODY, "count": 8}).json()["instances"]
            by_host: dict[str, list[str]] = {}
            for m in made:
                by_host.setdefault(m["instance_id"].split("--")[0], []).append(m["instance_id"])
            assert len(by_host) >= 2, (hosts_now, client.get("/v1/hosts").json()["hosts"], svc.log())
            victim, survivor = sorted(by_host)[:2]
            hosts = {h["name"]: h for h in client.get("/v1/hosts").json()["hosts"]}
            os.kill(hosts[victim]["pid"], signal.SIGKILL)
            for iid in by_host[victim]:
                lost = client.post(f"/v1/instances/{iid}/step", json={"action": LS})
                assert lost.status_code == 410, lost.text
                assert lost.json()["error"]["kind"] == "instance_lost" and lost.json()["error"]["infra"] is True
            for iid in by_host[survivor]:
                assert client.post(f"/v1/instances/{iid}/step", json={"action": LS}).status_code == 200
            deadline = time.monotonic() + 30  # the front notices the dead host (its next refresh)
            while any(h["name"] == victim and h["alive"] for h in client.get("/v1/hosts").json()["hosts"]):
                assert time.monotonic() < deadline, f"the front still counts {victim} alive"
                time.sleep(0.2)
            for _ in range(6):
                fresh = client.post("/v1/instances", json=BODY)
                assert fresh.status_code == 200 and not fresh.json()["instances"][0]["instance_id"].startswith(victim)
    finally:
        svc.stop()
