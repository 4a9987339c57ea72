"""Soak: 10,000 create/step/release cycles at concurrency 16 through a real service, with a hostile action
mixed into every 100th episode. Every other episode must go through untouched (0 lost bystanders, no
error status at all), the hostile ones get their typed answer, and memory comes back after release.
Then 10,000 fork + release cycles of one mid-episode instance: every fork is made and released, the source
is untouched, and the hosts' and workers' memory is back where it started."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from trainbox_server.runtime.procfs import status_kib

from tests.loadclient import LoadClient, load_client
from tests.servicekit import RayCluster, Service, start_service
from tests.test_bfcl_hostile import BIG_FILE, HOSTILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

CYCLES = 10_000
CONCURRENCY = 16
HOSTILE_EVERY = 100
TASK = "multi_turn_base_15"
MEMORY_TOLERANCE_MIB = 96  # the memory benchmark's tolerance: back to idle after a burst
# The hostile actions and what each must get; a call that never ends gets the offender's own 504.
ATTACKS: list[tuple[dict[str, Any], int]] = [
    *[({"action": action}, 422) for action in HOSTILE.values()],
    ({"action": {"role": "assistant", "content": "[power(base=3, exponent=1000000000)]"}, "timeout": 2}, 504),
]


@pytest.fixture(scope="module")
def soak_service(ray_cluster: RayCluster) -> Iterator[Service]:
    families = '{"bfcl": {"warm": 1, "processes": 2, "step_timeout": 10}}'
    svc = start_service(ray_cluster.address, TRAINBOX_HOSTS_PER_NODE="1", TRAINBOX_FAMILIES=families)
    yield svc
    svc.stop()


def service_rss_mib(client: httpx.Client) -> float:
    """Memory of the service's hosts and their worker processes (the front is this test's peer)."""
    hosts = client.get("/v1/hosts").json()["hosts"]
    kib = 0
    for host in hosts:
        for family in host.get("runtime", {}).get("families", {}).values():
            kib += sum(p["rss_kib"] for p in family["processes"])
    return kib / 1024


async def episode(client: LoadClient, index: int, tally: collections.Counter[str]) -> None:
    created = await client.post("/v1/instances", json={"env_type": "bfcl", "task_id": TASK})
    tally[f"create {created.status_code}"] += 1
    if created.status_code != 200:
        return
    instance = created.json()["instances"][0]["instance_id"]
    hostile = index % HOSTILE_EVERY == HOSTILE_EVERY - 1
    if hostile:  # a file to read back, for the reply that outgrows the frame limit
        # (BFCL 2026.3.23's echo writes only to a file that exists: touch it first)
        write = f"[touch(file_name='big.txt'), echo(content='{BIG_FILE}', file_name='big.txt')]"
        action = {"role": "assistant", "content": write}
        prepared = await client.post(f"/v1/instances/{instance}/step", json={"action": action})
        tally[f"prepare {prepared.status_code}"] += 1
        body, expected = ATTACKS[(index // HOSTILE_EVERY) % len(ATTACKS)]
        answer = await client.post(f"/v1/instances/{instance}/step", json=body)
        tally["hostile as expected" if answer.status_code == expected else f"hostile {answer.status_code}"] += 1
    else:
        action = {"role": "assistant", "content": f"[mkdir(dir_name='d{index}')]"}
        answer = await client.post(f"/v1/instances/{instance}/step", json={"action": action})
        tally[f"step {answer.status_code}"] += 1
    released = await client.delete(f"/v1/instances/{instance}")
    tally[f"release {released.status_code}"] += 1


async def soak(url: str) -> collections.Counter[str]:
    tally: collections.Counter[str] = collections.Counter()
    indices = itertools.count()
    deadline = time.monotonic() + 1800  # bounded in time as well as in count

    async def worker(client: LoadClient) -> None:
        while (index := next(indices)) < CYCLES and time.monotonic() < deadline:
            await episode(client, index, tally)

    async with load_client(url, CONCURRENCY) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return tally


def test_soak_with_hostile_actions(soak_service: Service) -> None:
    with soak_service.client() as client:
        warm = client.post("/v1/instances", json={"env_type": "bfcl", "task_id": TASK}).json()["instances"][0]
        client.delete(f"/v1/instances/{warm['instance_id']}")
        time.sleep(8)  # emptied workers trim after a few idle seconds
        idle = service_rss_mib(client)
    tally = asyncio.run(soak(soak_service.url))
    hostile = CYCLES // HOSTILE_EVERY
    assert tally["create 200"] == CYCLES, tally
    assert tally["hostile as expected"] == hostile, tally
    assert tally["step 200"] == CYCLES - hostile, tally  # no bystander lost, no error of any kind
    assert tally["release 200"] == CYCLES, tally
    assert tally["prepare 200"] == hostile, tally
    assert sum(tally.values()) == 3 * CYCLES + hostile, tally
    with soak_service.client() as client:
        assert sum(host["live"] for host in client.get("/v1/hosts").json()["hosts"]) == 0
        for _ in range(30):  # memory returns to idle once the burst is released
            time.sleep(2)
            after = service_rss_mib(client)
            if after - idle <= MEMORY_TOLERANCE_MIB:
                break
        assert after - idle <= MEMORY_TOLERANCE_MIB, (idle, after)


FORK_CYCLES = 10_000


def hosts_and_workers_rss_mib(client: httpx.Client) -> float:
    """The host actors' own memory (their records, transcripts, snapshots) and their workers'."""
    hosts = client.get("/v1/hosts").json()["hosts"]
    return sum(status_kib(h["pid"]) for h in hosts) / 1024 + service_rss_mib(client)


async def fork_cycles(url: str, source: str) -> collections.Counter[str]:
    tally: collections.Counter[str] = collections.Counter()
    indices = itertools.count()
    deadline = time.monotonic() + 900

    async def worker(client: LoadClient) -> None:
        while next(indices) < FORK_CYCLES and time.monotonic() < deadline:
            forked = await client.post(f"/v1/instances/{source}/fork", json={"count": 1})
            tally[f"fork {forked.status_code}"] += 1
            if forked.status_code != 200:
                continue
            (made,) = forked.json()["instances"]
            released = await client.delete(f"/v1/instances/{made['instance_id']}")
            tally[f"release {released.status_code}"] += 1

    async with load_client(url, CONCURRENCY) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return tally


def test_fork_and_release_cycles_leave_memory_where_it_started(soak_service: Service) -> None:
    action = {"role": "assistant", "content": "[mkdir(dir_name='kept')]"}
    with soak_service.client() as client:
        source = client.post("/v1/instances", json={"env_type": "bfcl", "task_id": TASK}).json()["instances"][0]
        source_id = source["instance_id"]
        assert client.post(f"/v1/instances/{source_id}/step", json={"action": action}).status_code == 200
        warm = client.post(f"/v1/instances/{source_id}/fork", json={"count": 1}).json()["instances"][0]
        client.delete(f"/v1/instances/{warm['instance_id']}")
        time.sleep(8)  # emptied workers trim after a few idle seconds
        idle = hosts_and_workers_rss_mib(client)
    began = time.monotonic()
    tally = asyncio.run(fork_cycles(soak_service.url, source_id))
    took = time.monotonic() - began
    assert tally == {"fork 200": FORK_CYCLES, "release 200": FORK_CYCLES}, tally
    print(f"\n{FORK_CYCLES} fork + release cycles in {took:.0f}s")
    with soak_service.client() as client:
        assert sum(host["live"] for host in client.get("/v1/hosts").json()["hosts"]) == 1  # the source
        status = client.get(f"/v1/instances/{source_id}").json()
        assert status["steps"] == 1 and status["terminated"] is False  # forks never touched it
        for _ in range(30):
            time.sleep(2)
            after = hosts_and_workers_rss_mib(client)
            if after - idle <= MEMORY_TOLERANCE_MIB:
                break
        print(f"hosts and workers: {idle:.0f} MiB before, {after:.0f} MiB after")
        assert after - idle <= MEMORY_TOLERANCE_MIB, (idle, after)
        assert client.delete(f"/v1/instances/{source_id}").json()["released"] is True
