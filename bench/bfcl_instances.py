"""Per-instance cost of BFCL in one worker process: create+close time and memory per live instance.

Runs in the BFCL venv, in-process (no IPC), after a warm-up that parses the categories used and builds
each task's prompt once (what a warm worker has done). Memory is ``tracemalloc``'s count of live Python
allocations while N instances are held, divided by N (RSS deltas are reported alongside).

    # writes bench/results/bfcl_instances.json:
    PYTHONPATH=server .venvs/bfcl-2026.3.23/bin/python bench/bfcl_instances.py [N]
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from trainbox_server.envs.bfcl import make_family
from trainbox_server.runtime.procfs import status_kib

TASKS = {
    "multi_turn": [f"multi_turn_base_{i}" for i in range(200)] + [f"multi_turn_long_context_{i}" for i in range(50)],
    "single_turn": [f"simple_python_{i}" for i in range(200)],
}
FIRST_CALL = {"role": "assistant", "content": "[ls(a=True)]"}


def rss_kib() -> int:
    return status_kib()


def measure(family: Any, task_ids: list[str], n: int, step: bool) -> dict[str, float]:
    for task_id in task_ids:  # warm-up: categories parsed, prompts built
        family.create(task_id, {})[1].close()
    gc.collect()
    started = time.perf_counter()
    for i in range(n):
        _, instance = family.create(task_ids[i % len(task_ids)], {})
        instance.close()
    create_close_us = (time.perf_counter() - started) / n * 1e6
    gc.collect()
    rss_before = rss_kib()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    held = []
    for i in range(n):
        _, instance = family.create(task_ids[i % len(task_ids)], {})
        if step:
            instance.step(FIRST_CALL)
        held.append(instance)
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = rss_kib()
    for instance in held:
        instance.close()
    return {
        "instances": n,
        "create_close_us": round(create_close_us, 1),
        "traced_kib_per_instance": round((current - base) / n / 1024, 2),
        "rss_kib_per_instance": round((rss_after - rss_before) / n, 2),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    family = make_family()
    results = {
        "multi_turn_created": measure(family, TASKS["multi_turn"], n, step=False),
        "single_turn_created": measure(family, TASKS["single_turn"], n, step=False),
        "multi_turn_after_first_call": measure(family, TASKS["multi_turn"], min(n, 2000), step=True),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": sys.version.split()[0],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(__file__).parent / "results" / "bfcl_instances.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
