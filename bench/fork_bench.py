"""Fork latency against the alternative a trainer has today: replaying the prefix in a new instance.

Through the runtime (real BFCL workers; AppWorld worlds when ``--appworld-root`` is given), the layer
every fork goes through: for tasks of ``multi_turn_base``, replay the ground truth up to the midpoint,
then time ``fork`` (n = 1 and n = 8; BFCL copies in the same process) and, for the same task, a fresh
instance with the prefix replayed step by step (what a client does without fork). AppWorld's fork and its
replayed create are each timed from a full warm pool with no world warming up behind them, and the fork again
while the pool refills (one world warming up). Then, through a real service with a host
on each of two Ray nodes (amd64, arm64), a fork on the same host and one across hosts (``arch``), over HTTP.
Also the record size a snapshot keeps. Writes ``bench/results/fork.json``.

    .venv/bin/python -m bench.fork_bench [--tasks 40] [--appworld-root DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig

from tests import bfcl_replay as replay
from tests.servicekit import RayCluster, start_service

RESULTS = Path(__file__).parent / "results" / "fork.json"


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 3),
        "n": len(ordered),
    }


async def bfcl(tasks: int) -> dict[str, Any]:
    config = RuntimeConfig(families={"bfcl": FamilyConfig("bfcl", warm=1, processes=1)})
    fork1, fork8, replayed, sizes = [], [], [], []
    async with Runtime(config) as rt:
        for task_id in sorted(replay.ground_truth("multi_turn_base"))[:tasks]:
            steps = [m for turn in replay.multi_turn_steps(task_id) for m in turn]
            prefix = steps[: len(steps) // 2]
            source = (await rt.create("bfcl", task_id)).instance_id
            for message in prefix:
                await rt.step(source, message)
            sizes.append(len(orjson.dumps(rt.record(source))))
            for count, sink in ((1, fork1), (8, fork8)):
                ids = [f"{source}-f{count}-{i}" for i in range(count)]
                began = time.perf_counter()
                await rt.fork(source, ids)
                sink.append((time.perf_counter() - began) / count)
                for instance_id in ids:
                    await rt.close(instance_id)
            began = time.perf_counter()
            again = (await rt.create("bfcl", task_id)).instance_id
            for message in prefix:
                await rt.step(again, message)
            replayed.append(time.perf_counter() - began)
            for instance_id in (source, again):
                await rt.close(instance_id)
    return summary("bfcl", fork1, fork8, replayed, sizes)


async def appworld(root: str, rounds: int) -> dict[str, Any]:
    family = FamilyConfig("appworld", warm=3, create_timeout=300, step_timeout=60, env={"APPWORLD_ROOT": root})
    fork1, busy, replayed, sizes = [], [], [], []
    prefix = [{"role": "assistant", "content": "```python\nprofile = apis.supervisor.show_profile()\n```"}] * 3
    async with Runtime(RuntimeConfig(families={"appworld": family})) as rt:
        task_id = (await rt.task_ids("appworld", "train"))[0]
        for index in range(rounds):
            source = (await rt.create("appworld", task_id)).instance_id
            for message in prefix:
                await rt.step(source, message)
            sizes.append(len(orjson.dumps(rt.record(source))))
            await warm_pool(rt, family.warm)
            began = time.perf_counter()
            await rt.fork(source, [f"aw-fork-{index}"])
            fork1.append(time.perf_counter() - began)
            await warm_pool(rt, family.warm)
            began = time.perf_counter()
            again = (await rt.create("appworld", task_id)).instance_id
            for message in prefix:
                await rt.step(again, message)
            replayed.append(time.perf_counter() - began)
            # The same fork with the pool refilling behind it: the world the last fork took is warming up
            # (imports, a throw-away world: seconds of CPU) on this 2-core machine.
            await warm_pool(rt, 1, quiet=False)
            began = time.perf_counter()
            await rt.fork(source, [f"aw-busy-{index}"])
            busy.append(time.perf_counter() - began)
            for instance_id in (source, again, f"aw-fork-{index}", f"aw-busy-{index}"):
                await rt.close(instance_id)
    return {**summary("appworld", fork1, [], replayed, sizes), "fork_n1_pool_refilling": percentiles(busy)}


async def warm_pool(rt: Runtime, worlds: int, quiet: bool = True, timeout: float = 300.0) -> None:
    """Wait until AppWorld's warm pool holds ``worlds`` worlds and, if ``quiet``, none is starting: the
    target is a fork (or a create) *from the warm pool*, and a world warming up behind it takes seconds of CPU
    (imports, a throw-away world), which on a 2-core machine is what a fork competes with otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        stats = rt.stats()["families"]["appworld"]
        if stats["idle"] >= worlds and not (quiet and stats["starting"]):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("AppWorld's warm pool did not refill")
        await asyncio.sleep(0.05)


def summary(
    family: str, fork1: list[float], fork8: list[float], replayed: list[float], sizes: list[int]
) -> dict[str, Any]:
    out: dict[str, Any] = {"family": family, "fork_n1": percentiles(fork1), "replay_prefix": percentiles(replayed)}
    if fork8:
        out["fork_n8_per_copy"] = percentiles(fork8)
    out["replay_over_fork_p50"] = round(statistics.median(replayed) / statistics.median(fork1), 1)
    out["snapshot_bytes_median"] = int(statistics.median(sizes))
    return out


def across_hosts(tasks: int) -> dict[str, Any]:
    """Through a real service on a local Ray cluster of an amd64- and an arm64-labelled node (a host on each):
    a BFCL instance on the amd64 host, its prefix replayed, then timed over HTTP (loopback) — a fork on the
    same host, and a fork with ``arch: arm64``, rebuilt on the other host from the episode's record."""
    cluster = RayCluster.start()
    service = start_service(cluster.address, TRAINBOX_HOSTS_PER_NODE="1")
    same, across = [], []
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            for task_id in sorted(replay.ground_truth("multi_turn_base"))[:tasks]:
                steps = [m for turn in replay.multi_turn_steps(task_id) for m in turn]
                body = {"env_type": "bfcl", "task_id": task_id, "arch": "amd64"}
                source = client.post("/v1/instances", json=body).json()["instances"][0]["instance_id"]
                for message in steps[: len(steps) // 2]:
                    client.post(f"/v1/instances/{source}/step", json={"action": message}).raise_for_status()
                for sink, fork in ((same, {}), (across, {"arch": "arm64"})):
                    began = time.perf_counter()
                    reply = client.post(f"/v1/instances/{source}/fork", json=fork)
                    sink.append(time.perf_counter() - began)
                    reply.raise_for_status()
                    client.delete(f"/v1/instances/{reply.json()['instances'][0]['instance_id']}")
                client.delete(f"/v1/instances/{source}")
    finally:
        service.stop()
        cluster.stop()
    return {"family": "bfcl", "through": "HTTP on loopback, real Ray hosts", "fork_same_host": percentiles(same),
            "fork_across_hosts": percentiles(across)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--appworld-root")
    parser.add_argument("--appworld-rounds", type=int, default=10)
    args = parser.parse_args()
    results = [asyncio.run(bfcl(args.tasks)), across_hosts(args.tasks)]
    if args.appworld_root:
        results.append(asyncio.run(appworld(args.appworld_root, args.appworld_rounds)))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"time": time.time(), "results": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
