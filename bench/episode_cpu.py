"""CPU per BFCL episode through the real service, split by process: the front, the host actor, the BFCL workers
(and their fork server), Ray's own processes, and the load client. An episode is create, one step, release
(``multi_turn_base_15``), at ``--concurrency`` over keep-alive connections, after a warm-up of the same size.

    .venv/bin/python -m bench.episode_cpu [--episodes 2000] [--concurrency 16] [--rounds 3]

Writes ``bench/results/episode_cpu.json``: per round, the CPU seconds of each role over the measured episodes
and the milliseconds per episode; then the median of each. A process that exits during a round (a retired
worker) is not counted: the pools here keep theirs (``processes: 2``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.loadkit import process_role
from tests.loadclient import load_client
from tests.servicekit import RayCluster, start_service

RESULTS = Path(__file__).parent / "results" / "episode_cpu.json"
TASK = "multi_turn_base_15"
TICK = os.sysconf("SC_CLK_TCK")
FAMILIES = '{"bfcl": {"warm": 1, "processes": 2}}'


def cpu_by_pid() -> dict[tuple[int, str], tuple[float, str]]:
    """Every process's CPU seconds, keyed by (pid, start time) so that a reused pid is another process."""
    seen = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seen[(int(name), fields[19])] = ((int(fields[11]) + int(fields[12])) / TICK, cmdline.strip())
    return seen


async def episodes(url: str, count: int, concurrency: int) -> None:
    numbers = iter(range(count))
    async with load_client(url, concurrency) as client:

        async def one_client() -> None:
            for number in numbers:
                made = await client.post("/v1/instances", json={"env_type": "bfcl", "task_id": TASK})
                assert made.status_code == 200, made.text
                instance = made.json()["instances"][0]["instance_id"]
                action = {"role": "assistant", "content": f"[mkdir(dir_name='d{number}')]"}
                step = await client.post(f"/v1/instances/{instance}/step", json={"action": action})
                assert step.status_code == 200, step.text
                await client.delete(f"/v1/instances/{instance}")

        await asyncio.gather(*(one_client() for _ in range(concurrency)))


def measure(url: str, count: int, concurrency: int) -> dict[str, Any]:
    asyncio.run(episodes(url, count, concurrency))  # warm-up: pools, connections, caches
    before, client_before, started = cpu_by_pid(), time.process_time(), time.monotonic()
    asyncio.run(episodes(url, count, concurrency))
    wall, client = time.monotonic() - started, time.process_time() - client_before
    time.sleep(0.5)
    after = cpu_by_pid()
    roles: dict[str, float] = {"client": client}
    for key, (cpu, cmdline) in after.items():
        found = process_role(cmdline)
        if found is not None:
            name = "workers" if found == "worker" else found
            roles[name] = roles.get(name, 0.0) + cpu - before.get(key, (0.0, ""))[0]
    return {
        "episodes": count,
        "wall_s": round(wall, 2),
        "cpu_s": {k: round(v, 2) for k, v in roles.items()},
        "ms_per_episode": {k: round(v / count * 1000, 3) for k, v in roles.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cluster = RayCluster.start(("amd64",))
    try:
        service = start_service(cluster.address, TRAINBOX_HOSTS_PER_NODE="1", TRAINBOX_FAMILIES=FAMILIES)
        try:
            rounds = []
            for number in range(args.rounds):
                rounds.append(measure(service.url, args.episodes, args.concurrency))
                print(f"round {number + 1}: {json.dumps(rounds[-1]['ms_per_episode'])}", flush=True)
        finally:
            service.stop()
    finally:
        cluster.stop()
    names = sorted({name for r in rounds for name in r["ms_per_episode"]})
    median = {n: round(statistics.median(r["ms_per_episode"].get(n, 0.0) for r in rounds), 3) for n in names}
    result = {
        "what": "CPU per BFCL episode (create, one step, release) through the service, by process",
        "episodes_per_round": args.episodes,
        "concurrency": args.concurrency,
        "median_ms_per_episode": median,
        "median_total_ms_per_episode": round(sum(median.values()), 3),
        "rounds": rounds,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"median_ms_per_episode": median, "total": result["median_total_ms_per_episode"]}))


if __name__ == "__main__":
    main()
