"""Per BFCL release served: create p50 from the warm pool, step p50, memory per live instance, through the runtime.

For each release (``bfcl@<release>``, its own worker venv) a Runtime with one warm worker process: N creates of
``multi_turn_base`` tasks (the worker is warm: its dataset parsed and checker imported), each timed, then each
instance's first ground-truth call as a step, timed; all N are held live. Memory per live instance is the
pool's RSS growth (all its worker processes) from before the first create to all N held (after their first
step), divided by N; the "fit in 16 GiB" figure is 16 GiB minus the idle pool, divided by that. Times include
the pipe round trip to the worker (not HTTP). Writes ``bench/results/bfcl_releases.json``.

    .venv/bin/python -m bench.bfcl_releases [N]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from trainbox_server.envs.releases import RELEASES
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig
from trainbox_server.runtime.procfs import tree_rss_kib

from tests import bfcl_replay as replay

GIB = 1024 * 1024  # KiB


def _p(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100)[int(q) - 1], 3)


async def measure(release: str, n: int) -> dict[str, Any]:
    env = f"bfcl@{release}"
    table = replay.ground_truth("multi_turn_base", release)
    tasks = sorted(table, key=lambda t: int(t.rsplit("_", 1)[1]))
    first_call = {t: replay.multi_turn_steps(t, release=release)[0][0] for t in tasks}
    config = RuntimeConfig(families={"bfcl": FamilyConfig("bfcl", warm=1, processes=1)})
    async with Runtime(config) as rt:
        await rt.task_ids(env, "train")  # the warm worker is up and has parsed the dataset
        warm = (await rt.create(env, tasks[0])).instance_id
        await rt.close(warm)
        await asyncio.sleep(3)  # let the emptied worker trim
        pool = rt.pool(env)
        idle_kib = sum(tree_rss_kib(w.pid) for w in pool.workers)
        workers = len(pool.workers)
        creates, steps, held = [], [], []
        for i in range(n):
            task_id = tasks[i % len(tasks)]
            started = time.perf_counter()
            created = await rt.create(env, task_id)
            creates.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await rt.step(created.instance_id, first_call[task_id])
            steps.append((time.perf_counter() - started) * 1000)
            held.append(created.instance_id)
        live_kib = sum(tree_rss_kib(w.pid) for w in pool.workers)
        for instance_id in held:
            await rt.close(instance_id)
    per_instance = (live_kib - idle_kib) / n
    return {
        "env_type": env,
        "instances": n,
        "create_ms_p50": _p(creates, 50),
        "create_ms_p95": _p(creates, 95),
        "step_ms_p50": _p(steps, 50),
        "step_ms_p95": _p(steps, 95),
        "worker_processes": workers,
        "workers_idle_mib": round(idle_kib / 1024, 1),
        "kib_per_live_instance": round(per_instance, 1),
        "live_instances_in_16_gib": int((16 * GIB - idle_kib) / per_instance) if per_instance > 0 else None,
    }


async def main(n: int) -> None:
    results = {"releases": [await measure(r, n) for r in RELEASES["bfcl"]]}
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = Path(__file__).parent / "results" / "bfcl_releases.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
