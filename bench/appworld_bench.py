"""AppWorld create latency from the warm pool vs cold, and the memory of a world process.

Builds the project's small AppWorld-format dataset (real engine, real worlds), then through the runtime:
* cold: the pool keeps no warm process (``warm=0``), so each create starts a process, imports AppWorld and
  opens the world;
* warm: the pool keeps pre-started, pre-imported processes; the next create waits until one is ready, as a
  trainer pacing its rollouts would see it.
Both with workers forked from the pool's fork server (as root: ``runtime.forkserver``), and cold once more with
``TRAINBOX_FORKSERVER=off`` (each worker its own interpreter, importing AppWorld). ``cpu_s_per_episode`` is
the whole machine's busy time (``/proc/stat``) per create + step + close, the first round (the fork server's
own start) left out: run it on an otherwise idle machine. Writes ``bench/results/appworld.json``.

    .venv/bin/python -m bench.appworld_bench [--rounds 10]
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

from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig, forkclient
from trainbox_server.runtime.process import default_python

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def build_dataset() -> str:
    root = tempfile.mkdtemp(prefix="tb-appworld-")
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    cmd = [default_python("appworld"), "-m", "trainbox_server.envs.appworld.dataset", "--root", root]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return root


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
        "n": len(ordered),
    }


async def measure(root: str, warm: int, rounds: int) -> dict[str, Any]:
    family = FamilyConfig("appworld", warm=warm, create_timeout=300, env={"APPWORLD_ROOT": root})
    async with Runtime(RuntimeConfig(families={"appworld": family})) as runtime:
        task = (await runtime.task_ids("appworld", "train"))[0]
        pool = runtime.pools["appworld"]
        samples, rss, cpu = [], [], []
        for _ in range(rounds):
            while warm and len(pool.idle) < warm:  # pace like a trainer: the pool has refilled
                await asyncio.sleep(0.05)
            start, busy = time.perf_counter(), busy_seconds()
            created = await runtime.create("appworld", task)
            samples.append(time.perf_counter() - start)
            await runtime.step(created.instance_id, {"role": "assistant", "content": "```python\nprint(1)\n```"})
            stats = runtime.stats()["families"]["appworld"]["processes"]
            rss += [p["rss_kib"] for p in stats if p["pid"] == created.worker_pid]
            await runtime.close(created.instance_id)
            while warm == 0 and pool.workers:  # the retired process is gone: its exit is in this episode's cost
                await asyncio.sleep(0.02)
            cpu.append(busy_seconds() - busy)
        per_episode = round(statistics.median(cpu[1:] or cpu), 2)
        return {
            **summary(samples),
            "world_process_rss_mib": round(statistics.median(rss) / 1024, 1),
            "cpu_s_per_episode": per_episode,
        }


def busy_seconds() -> float:
    """The machine's busy CPU seconds so far (all but idle and iowait), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    root = build_dataset()
    forked = forkclient.enabled()
    print("cold creates (fork server) ...", flush=True)
    cold = asyncio.run(measure(root, warm=0, rounds=args.rounds))
    print("warm-pool creates ...", flush=True)
    warm = asyncio.run(measure(root, warm=2, rounds=args.rounds))
    print("cold creates (each worker its own interpreter) ...", flush=True)
    os.environ["TRAINBOX_FORKSERVER"] = "off"
    own = asyncio.run(measure(root, warm=0, rounds=args.rounds))
    result = {
        "fork_server": forked,
        "cold_create": cold,
        "warm_pool_create": warm,
        "cold_create_own_interpreter": own,
        "target_warm_p50_ms": 100,
        "met": warm["p50_ms"] <= 100,
        "load_average": os.getloadavg()[0],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "appworld.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
