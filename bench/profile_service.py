"""Where trainbox's time goes under load: py-spy on the front, the host actor and the BFCL workers while
N clients run the benchmark's episodes; prints each process's CPU share and its hottest functions.

    .venv/bin/python -m bench.profile_service [--clients 64] [--seconds 15] [--py-spy PATH]

Needs ``py-spy`` (PyPI; any venv). Writes the collapsed stacks to ``/tmp/trainbox-profile/``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import time
from pathlib import Path

from bench import phases
from bench.loadkit import cpu_seconds, process_role, sample_tree, tree_pids
from bench.workload import MemoryGate, TrainboxV1, build_episodes
from tests.servicekit import RayCluster, start_service

OUT = Path("/tmp/trainbox-profile")


def role(pid: int) -> str | None:
    """The front, the host actor and the workers (the processes py-spy reads; not Ray's own)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    found = process_role(cmd)
    return found if found in ("front", "host", "worker") else None


def summarize(path: Path, top: int) -> list[str]:
    """Self time by function and inclusive time by a few frames of interest, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        own[stack.split(";")[-1]] += n
    return [f"{n / total:6.1%}  {frame}" for frame, n in own.most_common(top)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    episodes, _ = build_episodes(40)
    cluster = RayCluster.start(archs=("amd64",))
    service = None
    try:
        service = start_service(cluster.address, TRAINBOX_HOSTS_PER_NODE="1", TRAINBOX_IDLE_TTL="3600")
        port = int(service.url.rsplit(":", 1)[1])
        roots = [p.pid for p in cluster.procs] + [service.proc.pid]
        warm = phases.throughput(TrainboxV1(), port, roots, episodes, 8, 3, 30, 1000, MemoryGate(3072, 1))
        asyncio.run(warm)  # starts the worker pools
        targets = {pid: r for pid in tree_pids(roots) if (r := role(pid))}
        record = [args.py_spy, "record", "--nonblocking", "--format", "raw", "-r", "200", "-d", str(int(args.seconds))]
        spies = [
            subprocess.Popen(
                [*record, "-p", str(pid), "-o", str(OUT / f"{r}-{pid}.txt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid, r in targets.items()
        ]
        cpu_before = {pid: cpu_seconds(pid) for pid in targets}
        tree_before, started = sample_tree(roots), time.perf_counter()
        load = phases.throughput(
            TrainboxV1(), port, roots, episodes, args.clients, args.seconds, 30, 100_000, MemoryGate(3072, 1)
        )
        result = asyncio.run(load)
        elapsed = time.perf_counter() - started
        for spy in spies:
            spy.wait(60)
        print(f"{args.clients} clients: {result['steps_per_s']} steps/s, {result['calls_per_s']} calls/s")
        all_cpu = sample_tree(roots).cpu_s - tree_before.cpu_s
        print(f"service tree CPU: {all_cpu / elapsed:.2f} cores; per call {all_cpu / result['calls'] * 1000:.3f} ms")
        for pid, r in sorted(targets.items(), key=lambda item: item[1]):
            used = cpu_seconds(pid) - cpu_before[pid]
            print(f"\n== {r} (pid {pid}): {used / elapsed:.2f} cores, {used / result['calls'] * 1000:.3f} ms per call")
            path = OUT / f"{r}-{pid}.txt"
            if path.exists():
                print("\n".join(summarize(path, args.top)))
    finally:
        if service is not None:
            service.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
