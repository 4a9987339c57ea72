"""Side-by-side service benchmark: trainbox vs the reference (AgentScope Runtime's training_box), BFCL.

Same machine, same workload (``bench.workload``), one run. Each system runs twice, fresh each time: first
latency (one client) and throughput (8/32/64 clients), then the live-instance memory probe. Memory is the
RSS (and PSS) sum of the service's whole process tree: its Ray head (GCS, raylet, workers) and the
service process with its children. Results: ``bench/results/service_{trainbox,reference}.json``,
``bench/results/service.json`` (both + targets) and ``bench/results/service.md`` (the table).

    .venv/bin/python -m bench.compare_reference             # full run (~15 min; needs .venvs/reference)
    .venv/bin/python -m bench.compare_reference --quick     # scaled down, to check the machinery
    .venv/bin/python -m bench.compare_reference --only trainbox   # keep the last reference results
    .venv/bin/python -m bench.compare_reference --only reference --stages run   # keep its memory probe
    .venv/bin/python -m bench.compare_reference --report-only     # rewrite service.json/.md

The reference is slow (a Ray actor process per instance), so its phases are scaled down: 5 latency
episodes, at most 16 episodes per throughput level (each client runs at least one), and a memory gate
that starts no create which could bring the host below 4 GiB available (3 GiB for the memory probe,
which stops itself there). Ray stays on loopback: see ``LOOPBACK_RAY``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import phases, report
from bench.loadkit import kill_tree, node_ips, tree_pids
from bench.reference_service import LOOPBACK_RAY, start_reference
from bench.workload import (
    CATEGORY,
    RELEASE,
    Dialect,
    Episode,
    MemoryGate,
    ReferenceProtocol,
    TrainboxV1,
    build_episodes,
)
from tests.servicekit import REPO, RayCluster, start_service

RESULTS = REPO / "bench/results"
LEVELS = (8, 32, 64)


@dataclass
class Plan:
    latency_episodes: int
    ladder: int
    window_s: float
    drain_s: float
    episodes_per_level: int  # at most, spread over the clients (each runs at least one)
    throughput_floor_mib: float
    per_instance_mib: float
    probe_max: int
    probe_floor_mib: float
    probe_concurrency: int
    probe_group: int
    probe_sample_every: int
    probe_time_limit_s: float


PLANS = {
    "trainbox": Plan(100, 300, 20, 60, 10**6, 3072, 1, 10_000, 3072, 4, 50, 1000, 600),
    "reference": Plan(5, 50, 120, 600, 16, 4096, 300, 300, 3072, 2, 1, 5, 900),
}
QUICK = {
    "trainbox": Plan(10, 50, 5, 30, 10**6, 3072, 1, 1000, 3072, 4, 50, 250, 120),
    "reference": Plan(1, 10, 20, 200, 2, 4096, 300, 4, 3072, 2, 1, 2, 300),
}


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "server"], cwd=REPO, capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "mem_total_mib": int(meminfo.split()[1]) // 1024,
        "python": sys.version.split()[0],
        "commit": commit.stdout.strip() + ("+uncommitted server changes" if dirty.stdout.strip() else ""),
    }


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


async def measure_run(dialect: Dialect, port: int, roots: list[int], episodes: list[Episode], plan: Plan) -> dict:
    out: dict[str, Any] = {"idle": phases.sample_tree(roots).to_dict(), "loadavg_start": loadavg()}
    print(f"  latency: {plan.latency_episodes} episodes, one client", flush=True)
    out["latency"] = await phases.latency(dialect, port, episodes, plan.latency_episodes, plan.ladder)
    out["throughput"] = {}
    for clients in LEVELS:
        print(f"  throughput: {clients} clients, {plan.window_s:.0f} s window", flush=True)
        gate = MemoryGate(plan.throughput_floor_mib, plan.per_instance_mib)
        per_client = max(1, -(-plan.episodes_per_level // clients))
        result = await phases.throughput(
            dialect, port, roots, episodes, clients, plan.window_s, plan.drain_s, per_client, gate
        )
        out["throughput"][str(clients)] = result
        print(f"    {result['episodes_per_s']} episodes/s, {result['steps_per_s']} steps/s", flush=True)
    out["loadavg_end"] = loadavg()
    return out


async def measure_probe(dialect: Dialect, port: int, roots: list[int], episodes: list[Episode], plan: Plan) -> dict:
    print(f"  memory probe: up to {plan.probe_max} live instances", flush=True)
    gate = MemoryGate(plan.probe_floor_mib, plan.per_instance_mib)
    first_call = episodes[0].messages[0]
    return await phases.memory_probe(
        dialect,
        port,
        roots,
        [e.task_id for e in episodes],
        plan.probe_max,
        gate,
        plan.probe_concurrency,
        plan.probe_group,
        plan.probe_sample_every,
        first_call,
        plan.probe_time_limit_s,
    )


def run_trainbox(episodes: list[Episode], plan: Plan, stages: tuple[str, ...]) -> dict[str, Any]:
    settings = {"TRAINBOX_HOSTS_PER_NODE": "1", "TRAINBOX_IDLE_TTL": "3600", "TRAINBOX_MAX_LIFETIME": "7200"}
    out: dict[str, Any] = {"system": "trainbox", "settings": settings}
    os.environ.update(LOOPBACK_RAY)  # inherited by the Ray head and the service (one node: allowed)
    for stage in stages:
        started = time.perf_counter()
        cluster = RayCluster.start(archs=("amd64",))
        service, roots = None, [p.pid for p in cluster.procs]
        try:
            service = start_service(cluster.address, **settings)
            port = int(service.url.rsplit(":", 1)[1])
            roots.append(service.proc.pid)
            out["ray_node_ips"] = node_ips(roots)
            print(f"trainbox ({stage}) up in {time.perf_counter() - started:.1f} s at {service.url}", flush=True)
            if stage == "run":
                out.update(asyncio.run(measure_run(TrainboxV1(), port, roots, episodes, plan)))
                out["compat_latency"] = asyncio.run(
                    phases.latency(ReferenceProtocol(), port, episodes, max(plan.latency_episodes // 4, 1), 0)
                )
            else:
                out["memory"] = asyncio.run(measure_probe(TrainboxV1(), port, roots, episodes, plan))
        finally:
            tree = tree_pids(roots)
            if service is not None:
                service.stop()
            cluster.stop()
            kill_tree(tree + tree_pids(tree))
    out["in_process"] = in_process_cost(episodes)
    return out


def run_reference(episodes: list[Episode], plan: Plan, stages: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"system": "reference", "package": "agentscope-runtime==1.1.6.post2, bfcl-eval==2025.10.1"}
    for stage in stages:
        started = time.perf_counter()
        service = start_reference()
        try:
            out[f"startup_s_{stage}"] = round(time.perf_counter() - started, 1)
            out["ray_node_ips"] = node_ips(service.pids)
            print(f"reference ({stage}) up in {out[f'startup_s_{stage}']} s at {service.url}", flush=True)
            if stage == "run":
                out.update(asyncio.run(measure_run(ReferenceProtocol(), service.port, service.pids, episodes, plan)))
            else:
                probe = measure_probe(ReferenceProtocol(), service.port, service.pids, episodes, plan)
                out["memory"] = asyncio.run(probe)
        finally:
            service.stop()
    return out


def in_process_cost(episodes: list[Episode]) -> dict[str, Any]:
    """The adapter's own step/create/evaluate time for the same episodes (``bench/bfcl_step_cost.py``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump([{"task_id": e.task_id, "messages": e.messages} for e in episodes], spec)
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    script = str(REPO / "bench/bfcl_step_cost.py")
    try:
        done = subprocess.run(
            [str(REPO / f".venvs/bfcl-{RELEASE}/bin/python"), script, spec.name, "5"],
            capture_output=True, text=True, env=env, check=True, timeout=600,
        )  # fmt: skip
    finally:
        os.unlink(spec.name)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def load_previous(system: str) -> dict[str, Any] | None:
    path = RESULTS / f"service_{system}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scaled-down run, to check the machinery")
    parser.add_argument("--only", choices=("trainbox", "reference"), help="measure one; keep the other's results")
    parser.add_argument("--stages", default="run,probe", help="run (latency+throughput), probe (memory), or both")
    parser.add_argument("--report-only", action="store_true", help="rewrite service.json/.md from the last results")
    parser.add_argument("--episodes", type=int, default=40, help=f"distinct {CATEGORY} tasks in the workload")
    args = parser.parse_args()
    plans = QUICK if args.quick else PLANS
    episodes, skipped = build_episodes(args.episodes)
    print(f"workload: {len(episodes)} {CATEGORY} ground-truth episodes ({len(skipped)} skipped)", flush=True)
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {}
    for system, run in (("trainbox", run_trainbox), ("reference", run_reference)):
        if args.report_only or (args.only and args.only != system):
            results[system] = load_previous(system)
            continue
        stages = tuple(s for s in ("run", "probe") if s in args.stages.split(","))
        previous = load_previous(system) or {}
        results[system] = run(episodes, plans[system], stages)
        for stage, keys in (("run", ("latency", "throughput", "loadavg_start", "loadavg_end")), ("probe", ("memory",))):
            if stage not in stages:  # keep the last measurement of a stage not run now
                results[system].update({k: previous[k] for k in keys if k in previous})
                when = previous.get(f"{stage}_measured_at", previous.get("measured_at"))
                results[system][f"{stage}_measured_at"] = when
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        results[system].update(quick=args.quick, measured_at=stamp, commit=machine()["commit"])
        results[system].update({f"{s}_measured_at": stamp for s in stages})
        (RESULTS / f"service_{system}.json").write_text(json.dumps(results[system], indent=1) + "\n")
    workload = {
        "category": CATEGORY,
        "episodes": [e.task_id for e in episodes],
        "skipped_positional_ground_truth": skipped,
        "steps_per_episode_mean": round(sum(len(e.messages) for e in episodes) / len(episodes), 2),
    }
    combined = {"machine": machine(), "workload": workload, **results}
    combined["targets"] = report.targets(results["trainbox"], results["reference"])
    (RESULTS / "service.json").write_text(json.dumps(combined, indent=1) + "\n")
    (RESULTS / "service.md").write_text(report.markdown(combined))
    print((RESULTS / "service.md").read_text())


if __name__ == "__main__":
    main()
