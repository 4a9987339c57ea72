"""The benchmark's phases, each bounded in count and time: sequential latency, concurrent throughput, and
the live-instance memory probe. Every phase returns a plain dict for the results file.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from bench.loadkit import (
    Connection,
    HttpError,
    mem_available_mib,
    own_cpu_seconds,
    percentiles,
    rss_by_process,
    sample_tree,
)
from bench.workload import Dialect, Episode, MemoryGate, Recorder, run_episode

GIB = 1024.0


async def latency(dialect: Dialect, port: int, episodes: list[Episode], count: int, ladder: int) -> dict[str, Any]:
    """One client, ``count`` episodes back to back: each call's latency without contention.

    ``ladder`` requests of ``GET /healthz`` (HTTP alone) and, for trainbox, ``GET /v1/instances/{id}``
    (HTTP + the front + one Ray call to the host, no worker) show where a step's time goes.
    """
    rec, conn = Recorder(), Connection(port)
    for episode in itertools.islice(itertools.cycle(episodes), count):
        await run_episode(dialect, conn, episode, rec)
    out = rec.summary()
    out["step_ms_by_position"] = {
        f"{task}#{n}": round(sorted(v)[len(v) // 2] * 1000, 3) for (task, n), v in rec.step_by_position.items()
    }
    health = []
    for _ in range(ladder):
        started = time.perf_counter()
        await conn.request("GET", "/healthz")
        health.append(time.perf_counter() - started)
    out["healthz_ms"] = percentiles(health)
    if dialect.name == "trainbox":
        (iid,) = await dialect.create(conn, episodes[0].task_id)
        routed = []
        for _ in range(ladder):
            started = time.perf_counter()
            await conn.request("GET", f"/v1/instances/{iid}")
            routed.append(time.perf_counter() - started)
        await dialect.release(conn, iid)
        out["get_instance_ms"] = percentiles(routed)
    await conn.close()
    return out


async def throughput(
    dialect: Dialect,
    port: int,
    roots: list[int],
    episodes: list[Episode],
    clients: int,
    window_s: float,
    drain_s: float,
    per_client: int,
    gate: MemoryGate,
) -> dict[str, Any]:
    """``clients`` trainers, each running episodes back to back; new episodes start only during
    ``window_s`` (at most ``per_client`` each, and only while the memory gate has room); what is in
    flight then gets ``drain_s`` to finish before it is cancelled."""
    rec = Recorder()
    order = itertools.cycle(episodes)
    started, cpu_before, tree_before = time.perf_counter(), own_cpu_seconds(), sample_tree(roots)
    window_end = time.monotonic() + window_s
    peak = {"live": 0, "min_mem_available_mib": mem_available_mib()}
    live = 0

    async def client() -> None:
        nonlocal live
        conn = Connection(port, timeout=window_s + drain_s)  # a call may take as long as the level lasts
        try:
            for _ in range(per_client):
                if time.monotonic() >= window_end or not await gate.wait(window_end):
                    return
                gate.pending += 1
                live += 1
                peak["live"] = max(peak["live"], live)
                try:
                    await run_episode(dialect, conn, next(order), rec)
                except (HttpError, RuntimeError, OSError, TimeoutError) as exc:
                    rec.errors[f"episode-failed:{type(exc).__name__}"] += 1
                finally:
                    gate.pending -= 1
                    live -= 1
                    peak["min_mem_available_mib"] = min(peak["min_mem_available_mib"], mem_available_mib())
        finally:
            await conn.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    _, pending = await asyncio.wait(tasks, timeout=window_s + drain_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = time.perf_counter() - started
    tree_after = sample_tree(roots)
    out = rec.summary()
    out.update(
        clients=clients,
        elapsed_s=round(elapsed, 2),
        episodes_per_s=round(rec.episodes / elapsed, 3),
        steps_per_s=round(rec.steps / elapsed, 1),
        calls_per_s=round(rec.calls / elapsed, 1),
        cut_off_clients=len(pending),
        memory_gate_waits=gate.refusals,
        peak_live=peak["live"],
        min_mem_available_mib=round(peak["min_mem_available_mib"]),
        service_cpu_s=round(tree_after.cpu_s - tree_before.cpu_s, 2),
        bench_cpu_s=round(own_cpu_seconds() - cpu_before, 2),
        service_rss_mib_after=round(tree_after.rss_mib),
    )
    if rec.steps:
        out["service_cpu_ms_per_call"] = round(out["service_cpu_s"] / max(rec.calls, 1) * 1000, 3)
    return out


async def memory_probe(
    dialect: Dialect,
    port: int,
    roots: list[int],
    task_ids: list[str],
    max_instances: int,
    gate: MemoryGate,
    concurrency: int,
    group: int,
    sample_every: int,
    step_message: dict[str, Any] | None,
    time_limit_s: float,
) -> dict[str, Any]:
    """Create instances until ``max_instances``, the memory gate, or ``time_limit_s``; optionally step each
    once; release them all; see whether the service's memory returns to its idle level.

    Idle is measured after one instance was created and released (worker pools started on first
    use are part of a ready service, not of the instances)."""
    await _for_all(await _warm_up(dialect, port, task_ids[0]), 1, lambda conn, iid: dialect.release(conn, iid), port)
    await asyncio.sleep(3)
    idle = sample_tree(roots)
    out: dict[str, Any] = {"idle": idle.to_dict(), "mem_available_idle_mib": round(mem_available_mib())}
    out["rss_by_process_idle"] = rss_by_process(roots)
    held: list[str] = []
    series: list[dict[str, Any]] = []
    stop_reason = "max_instances"
    deadline = time.monotonic() + time_limit_s
    names = itertools.cycle(task_ids)
    started = time.perf_counter()

    async def creator() -> None:
        nonlocal stop_reason
        conn = Connection(port)
        try:
            while len(held) + gate.pending < max_instances:
                if time.monotonic() > deadline:
                    stop_reason = "time_limit"
                    return
                count = min(group, max_instances - len(held) - gate.pending)
                if not gate.room(count):
                    stop_reason = "memory_guard"
                    return
                gate.pending += count
                try:
                    made = await dialect.create(conn, next(names), count)
                except HttpError as exc:
                    if exc.status in (429, 503):
                        stop_reason = f"admission_{exc.status}"
                        return
                    raise
                finally:
                    gate.pending -= count
                before = len(held)
                held.extend(made)
                if len(held) // sample_every > before // sample_every:
                    point = sample_tree(roots).to_dict()
                    series.append({"live": len(held), **point, "mem_available_mib": round(mem_available_mib())})
        finally:
            await conn.close()

    await asyncio.gather(*(creator() for _ in range(concurrency)))
    create_s = time.perf_counter() - started
    peak = sample_tree(roots)
    out["rss_by_process_peak"] = rss_by_process(roots)
    live = len(held)
    out.update(
        stop_reason=stop_reason,
        live=live,
        create_seconds=round(create_s, 1),
        creates_per_s=round(live / create_s, 1) if create_s else None,
        peak=peak.to_dict(),
        mem_available_at_peak_mib=round(mem_available_mib()),
        rss_mib_per_instance=round((peak.rss_mib - idle.rss_mib) / live, 4) if live else None,
        pss_mib_per_instance=round((peak.pss_mib - idle.pss_mib) / live, 4) if live else None,
        series=series,
    )
    if step_message is not None and live:
        await _for_all(held, concurrency, lambda conn, iid: dialect.step(conn, iid, step_message, 0), port)
        stepped = sample_tree(roots)
        out["after_one_step_each"] = stepped.to_dict()
        out["rss_mib_per_stepped_instance"] = round((stepped.rss_mib - idle.rss_mib) / live, 4)
    started = time.perf_counter()
    await _for_all(held, concurrency, lambda conn, iid: dialect.release(conn, iid), port)
    out["release_seconds"] = round(time.perf_counter() - started, 1)
    out["after_release"] = await _settled(roots)
    out["rss_by_process_after_release"] = rss_by_process(roots)
    out["mem_available_after_release_mib"] = round(mem_available_mib())
    left = out["after_release"]["rss_mib"] - idle.rss_mib
    out["rss_mib_left_after_release"] = round(left, 1)
    out["back_to_idle"] = bool(left <= max(64.0, 0.05 * idle.rss_mib))
    return out


async def _warm_up(dialect: Dialect, port: int, task_id: str) -> list[str]:
    conn = Connection(port)
    try:
        return await dialect.create(conn, task_id)
    finally:
        await conn.close()


async def _for_all(ids: list[str], concurrency: int, call: Any, port: int) -> None:
    queue = list(ids)

    async def worker() -> None:
        conn = Connection(port)
        try:
            while queue:
                await call(conn, queue.pop())
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _settled(roots: list[int], limit_s: float = 40.0) -> dict[str, Any]:
    """The process tree's memory once it stops shrinking (or after ``limit_s``)."""
    previous = sample_tree(roots)
    waited = 0.0
    while waited < limit_s:
        await asyncio.sleep(4.0)
        waited += 4.0
        current = sample_tree(roots)
        if current.rss_mib > previous.rss_mib - 8:
            return {**current.to_dict(), "settle_wait_s": waited}
        previous = current
    return {**previous.to_dict(), "settle_wait_s": waited}
