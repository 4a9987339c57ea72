"""Hosts that die are re-created (under new names), ids of their instances answer instance_lost (never
404), creates meanwhile get typed answers with Retry-After, and a restarted front states what it lost."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from trainbox_server.hosts.ray_hosts import slot_of

from tests.servicekit import RayCluster, start_service

pytestmark = pytest.mark.slow
BODY = {"env_type": "bfcl", "task_id": "multi_turn_base_0"}
LS = {"role": "assistant", "content": "[ls()]"}
RECOVERY = 300.0  # generous: a new host starts its warm pool on a loaded machine


def alive_hosts(client: httpx.Client) -> dict[str, int]:
    return {h["name"]: h["pid"] for h in client.get("/v1/hosts").json()["hosts"] if h["alive"]}


def assert_lost(client: httpx.Client, iid: str) -> None:
    for response in (
        client.get(f"/v1/instances/{iid}"),
        client.post(f"/v1/instances/{iid}/step", json={"action": LS}),
        client.post("/evaluate", json={"instance_id": iid, "params": {"sparse": True}}),
    ):
        assert response.status_code == 410, response.text
        assert response.json()["error"]["kind"] == "instance_lost" and response.json()["error"]["infra"] is True


def wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + RECOVERY
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {RECOVERY} s: {what}")


def test_dead_hosts_are_recreated_under_new_names(ray_cluster: RayCluster) -> None:
    svc = start_service(ray_cluster.address, TRAINBOX_HOSTS_PER_NODE="1")
    try:
        with svc.client() as client:
            before = alive_hosts(client)
            assert len(before) == 2
            made = client.post("/v1/instances", json={**BODY, "count": 4}).json()["instances"]
            victim = made[0]["instance_id"].split("--")[0]
            os.kill(before[victim], signal.SIGKILL)
            for iid in [m["instance_id"] for m in made if m["instance_id"].startswith(victim + "--")]:
                assert_lost(client, iid)
            wait_for(
                lambda: any(slot_of(n) == slot_of(victim) and n != victim for n in alive_hosts(client)),
                "a new host in the dead one's slot",
            )
            for iid in [m["instance_id"] for m in made if m["instance_id"].startswith(victim + "--")]:
                assert_lost(client, iid)  # still lost, never "unknown": the new host has a new name
            survivors = [m["instance_id"] for m in made if not m["instance_id"].startswith(victim + "--")]
            for iid in survivors:
                assert client.post(f"/v1/instances/{iid}/step", json={"action": LS}).status_code == 200

            # every host dies: once the front has seen it, every create answers 503 hosts_unavailable (with
            # Retry-After) until the hosts are back; none waits forever or gets another answer
            killed = alive_hosts(client)
            for pid in killed.values():
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not set(killed) & set(alive_hosts(client)), "the front sees the hosts dead")
            answers: list[tuple[int, str]] = []

            def create_succeeds() -> bool:
                response = client.post("/v1/instances", json=BODY)
                if response.status_code == 200:
                    client.delete(f"/v1/instances/{response.json()['instances'][0]['instance_id']}")
                    return True
                answers.append((response.status_code, response.json()["error"]["kind"]))
                assert answers[-1] == (503, "hosts_unavailable"), answers
                assert int(response.headers["Retry-After"]) >= 1
                return False

            wait_for(create_succeeds, "a create after every host died")
            wait_for(lambda: client.get("/readyz").status_code == 200, "ready again")
            assert len(alive_hosts(client)) == 2
            for iid in survivors:
                assert_lost(client, iid)
    finally:
        svc.stop()


def test_a_restarted_local_front_says_its_instances_are_lost() -> None:
    """In local mode the front owns Ray: its instances end with it, and a new front says so (410)."""
    first = start_service(None, TRAINBOX_HOSTS_PER_NODE="1")
    try:
        with first.client() as client:
            iid = client.post("/v1/instances", json=BODY).json()["instances"][0]["instance_id"]
    finally:
        first.stop()
    second = start_service(
        None, TRAINBOX_HOSTS_PER_NODE="1", TRAINBOX_RAY_NAMESPACE=first.env["TRAINBOX_RAY_NAMESPACE"]
    )
    try:
        with second.client() as client:
            assert_lost(client, iid)
    finally:
        second.stop()
