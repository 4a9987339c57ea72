"""AppWorld costs inside one worker-like process: cold import, first world, later creates, memory.

Run with the AppWorld venv (it builds the small dataset into --root first if it is not there):

    PYTHONPATH=server .venvs/appworld/bin/python bench/appworld_timings.py --root /tmp/appworld-bench

Prints one JSON object. Wall times use CLOCK_MONOTONIC (freezegun, which AppWorld starts, freezes
time.monotonic and perf_counter); CPU times are the process's own and so do not depend on other load
on the machine, which the output also records.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from trainbox_server.runtime.procfs import status_kib


def wall() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def cpu() -> float:
    return time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID)


def rss_mib() -> int:
    return status_kib() // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="APPWORLD_ROOT (the small dataset is built there)")
    parser.add_argument("--creates", type=int, default=20, help="creates to time after the first world")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    w0, c0 = wall(), cpu()
    from trainbox_server.envs.appworld import family as appworld

    appworld._import_engine()
    w1, c1 = wall(), cpu()
    from trainbox_server.envs.appworld import dataset

    dataset.build(args.root)  # a no-op when the dataset is up to date
    os.environ["APPWORLD_ROOT"] = os.path.abspath(args.root)
    family = appworld.make_family()
    task_ids = [task.task_id for task in dataset.TASKS]
    w2, c2 = wall(), cpu()
    _, instance = family.create(task_ids[0], {})
    instance.close()
    w3, c3 = wall(), cpu()

    walls, cpus = [], []
    for index in range(args.creates):
        start_wall, start_cpu = wall(), cpu()
        _, instance = family.create(task_ids[index % len(task_ids)], {})
        walls.append(wall() - start_wall)
        cpus.append(cpu() - start_cpu)
        instance.close()
    result = {
        "cold_import_wall_s": round(w1 - w0, 2),
        "cold_import_cpu_s": round(c1 - c0, 2),
        "first_world_wall_s": round(w3 - w2, 3),
        "first_world_cpu_s": round(c3 - c2, 3),
        "create_wall_ms_p50": round(1000 * statistics.median(walls), 1),
        "create_cpu_ms_p50": round(1000 * statistics.median(cpus), 1),
        "create_wall_ms_max": round(1000 * max(walls), 1),
        "creates": args.creates,
        "rss_mib": rss_mib(),
        "loadavg_1m_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
