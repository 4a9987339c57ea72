"""In-process cost of the benchmark's BFCL steps: the environment's own work, without any service around it.

Runs in the BFCL venv (``PYTHONPATH=server``), replays the given ground-truth episodes ``repeats`` times
directly on the adapter, and prints per step position the median time of ``instance.step(message)``.
The service benchmark subtracts these from its HTTP step latencies: the difference is trainbox's step
overhead (HTTP, the front, the Ray call to the host, the pipe to the worker and back).

    PYTHONPATH=server .venvs/bfcl-2026.3.23/bin/python bench/bfcl_step_cost.py episodes.json [repeats]
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from trainbox_server.envs.bfcl import make_family


def main() -> None:
    with open(sys.argv[1]) as spec:
        episodes = json.load(spec)
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    family = make_family()
    times: dict[str, list[float]] = {}
    create, evaluate = [], []
    for round_ in range(repeats + 1):  # round 0 warms up (parses the category, builds prompts)
        for episode in episodes:
            started = time.perf_counter()
            _, instance = family.create(episode["task_id"], {})
            created = time.perf_counter() - started
            for n, message in enumerate(episode["messages"]):
                started = time.perf_counter()
                result = instance.step(message)
                if round_:
                    times.setdefault(f"{episode['task_id']}#{n}", []).append(time.perf_counter() - started)
                if result.terminated:
                    break
            started = time.perf_counter()
            instance.evaluate({})
            if round_:
                create.append(created)
                evaluate.append(time.perf_counter() - started)
            instance.close()
    medians = {key: statistics.median(v) * 1000 for key, v in times.items()}
    print(
        json.dumps(
            {
                "step_ms_by_position": {k: round(v, 4) for k, v in medians.items()},
                "step_ms_p50": round(statistics.median([t * 1000 for v in times.values() for t in v]), 4),
                "create_ms_p50": round(statistics.median(create) * 1000, 4),
                "evaluate_ms_p50": round(statistics.median(evaluate) * 1000, 4),
                "repeats": repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
