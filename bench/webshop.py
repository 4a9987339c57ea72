"""WebShop: create p50 from the warm pool, step p50, memory per live instance, through the runtime.

On the builder's catalogue (``trainbox_server.envs.webshop.generate``, 300 products, built into a temporary
WEBSHOP_ROOT unless ``--root`` names one): a Runtime with one warm worker process (catalogue loaded, JVM and Lucene
index open, spaCy loaded). First one pass over every goal (create, ``search[<instruction>]`` timed as the uncached
Lucene query, close), which also settles the JVM heap and the process's query cache. Then N creates cycling over
the goals, each timed, and each instance's first two oracle steps, timed: ``search[<instruction>]`` (now answered
from the query cache, as repeated tasks of a training run are) and ``click[<target>]`` (the item page). The step
figures are over both kinds. All N are held live. Memory per live instance is the pool's RSS growth (its worker
processes) from after the first pass to all N held, divided by N; the "fit in 16 GiB" figure is 16 GiB minus
the idle pool, divided by that. Times include the pipe round trip to the worker (not HTTP). Writes
``bench/results/webshop.json``.

    .venv/bin/python -m bench.webshop [--instances N] [--root WEBSHOP_ROOT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from trainbox_server.envs.webshop import catalogue
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig
from trainbox_server.runtime.process import default_python, rss_kib

REPO = Path(__file__).resolve().parents[1]
GIB = 1024 * 1024  # KiB


def _p(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1], 3) if len(values) > 1 else round(values[0], 3)


def act(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


async def measure(root: str, n: int) -> dict[str, Any]:
    shop = catalogue.load(root, "1k")
    config = RuntimeConfig(
        families={"webshop": FamilyConfig("webshop", warm=1, processes=1, env={"WEBSHOP_ROOT": root})}
    )
    async with Runtime(config) as rt:
        started = time.perf_counter()
        await rt.task_ids("webshop", "train")  # the warm worker is up: catalogue, JVM, index, spaCy loaded
        first_ready_s = time.perf_counter() - started
        # One pass over every goal first (timed: uncached searches): the JVM's heap and the query cache settle
        # there, so the memory figure below is the instances', not the caches'.
        uncached: list[float] = []
        for goal_index, goal in enumerate(shop.goals):
            created = await rt.create("webshop", str(goal_index))
            begun = time.perf_counter()
            await rt.step(created.instance_id, act(f"search[{goal['instruction_text']}]"))
            uncached.append((time.perf_counter() - begun) * 1000)
            await rt.close(created.instance_id)
        await asyncio.sleep(3)  # let the emptied worker trim
        pool = rt.pool("webshop")
        idle_kib = sum(rss_kib(w.pid) for w in pool.workers)
        creates: list[float] = []
        searches: list[float] = []
        clicks: list[float] = []
        held = []
        for i in range(n):
            goal_index = i % len(shop.goals)
            goal = shop.goals[goal_index]
            begun = time.perf_counter()
            created = await rt.create("webshop", str(goal_index))
            creates.append((time.perf_counter() - begun) * 1000)
            begun = time.perf_counter()
            result = await rt.step(created.instance_id, act(f"search[{goal['instruction_text']}]"))
            searches.append((time.perf_counter() - begun) * 1000)
            if goal["asin"].lower() in result.info["available_actions"]["clickables"]:
                begun = time.perf_counter()
                await rt.step(created.instance_id, act(f"click[{goal['asin']}]"))
                clicks.append((time.perf_counter() - begun) * 1000)
            held.append(created.instance_id)
        live_kib = sum(rss_kib(w.pid) for w in pool.workers)
        workers = len(pool.workers)
        for instance_id in held:
            await rt.close(instance_id)
    per_instance = (live_kib - idle_kib) / n
    steps = searches + clicks
    return {
        "env_type": "webshop",
        "catalogue": {"products": len(shop.products), "goals": len(shop.goals)},
        "instances": n,
        "first_worker_ready_s": round(first_ready_s, 1),
        "create_ms_p50": _p(creates, 50),
        "create_ms_p95": _p(creates, 95),
        "step_ms_p50": _p(steps, 50),
        "step_ms_p95": _p(steps, 95),
        "search_uncached_ms_p50": _p(uncached, 50),
        "search_uncached_ms_p95": _p(uncached, 95),
        "search_cached_ms_p50": _p(searches, 50),
        "click_ms_p50": _p(clicks, 50),
        "worker_processes": workers,
        "workers_idle_mib": round(idle_kib / 1024, 1),
        "kib_per_live_instance": round(per_instance, 1),
        "live_instances_in_16_gib": int((16 * GIB - idle_kib) / per_instance) if per_instance > 0 else None,
    }


def build(root: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    command = [default_python("webshop"), "-m", "trainbox_server.envs.webshop.generate", "--root", root]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--root", help="a WEBSHOP_ROOT to use (default: build the generated catalogue)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webshop-bench-") as scratch:
        root = args.root or scratch
        if not args.root:
            build(root)
        results = asyncio.run(measure(root, args.instances))
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["load_average"] = [round(x, 1) for x in os.getloadavg()]
    out = Path(__file__).parent / "results" / "webshop.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
