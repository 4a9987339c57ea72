"""Targets and the markdown table of the service benchmark (pure functions over the results dicts)."""

from __future__ import annotations

import statistics
from typing import Any

REFERENCE_EARLIER = {"create_ms": 2600, "step_ms": 1.9, "evaluate_ms": 38, "episodes_per_s_8": 0.66}


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def step_overhead(trainbox: dict[str, Any]) -> dict[str, Any]:
    """HTTP step latency (one client, no contention) minus the adapter's in-process time for the same step.

    ``paired_p50_ms``: median over step positions of (HTTP median - in-process median) — the headline.
    ``p50_difference_ms``: p50 of all HTTP steps minus p50 of all in-process steps.
    """
    http = _get(trainbox, "latency", "step_ms_by_position") or {}
    local = _get(trainbox, "in_process", "step_ms_by_position") or {}
    paired = [http[k] - local[k] for k in http if k in local]
    if not paired:
        return {}
    return {
        "paired_p50_ms": round(statistics.median(paired), 3),
        "p50_difference_ms": round(_get(trainbox, "latency", "latency_ms", "step", "p50") - local_p50(local), 3),
        "in_process_step_p50_ms": round(local_p50(local), 3),
        "positions": len(paired),
    }


def local_p50(local: dict[str, float]) -> float:
    return statistics.median(local.values())


def targets(trainbox: dict[str, Any] | None, reference: dict[str, Any] | None) -> list[dict[str, Any]]:
    tb = trainbox or {}
    same_run = _get(reference, "throughput", "8", "episodes_per_s")
    quiet = REFERENCE_EARLIER["episodes_per_s_8"]
    tb_eps = _get(tb, "throughput", "8", "episodes_per_s")
    overhead = step_overhead(tb).get("paired_p50_ms")
    memory = _get(tb, "memory") or {}
    peak_rss = _get(memory, "peak", "rss_mib")
    rows = [
        ("BFCL create p50 over HTTP (ms)", _get(tb, "latency", "latency_ms", "create", "p50"), "<= 10", _at_most(10)),
        (
            f"episodes/s at 8 clients vs the reference on a quiet machine ({quiet}/s, measured earlier)",
            round(tb_eps / quiet, 1) if tb_eps else None,
            ">= 100x",
            lambda v: v >= 100,
        ),
        (
            "episodes/s at 8 clients vs the reference in this run (same load)",
            round(tb_eps / same_run, 1) if tb_eps and same_run else None,
            ">= 100x",
            lambda v: v >= 100,
        ),
        ("step overhead p50 (ms)", overhead, "<= 2", lambda v: v <= 2),
        ("BFCL steps/s at 64 clients", _get(tb, "throughput", "64", "steps_per_s"), ">= 2000", lambda v: v >= 2000),
        (
            "10,000 live BFCL instances: tree RSS (MiB)",
            peak_rss if memory.get("live", 0) >= 10_000 else None,
            "< 2048",
            lambda v: v < 2048,
        ),
        ("memory back to idle after release", memory.get("back_to_idle"), "true", lambda v: v is True),
    ]
    return [{"target": name, "value": v, "wanted": want, "met": v is not None and ok(v)} for name, v, want, ok in rows]


def _at_most(limit: float) -> Any:
    return lambda value: value <= limit


def _ms(data: dict[str, Any] | None, op: str) -> str:
    stats = _get(data, "latency", "latency_ms", op)
    if not stats or not stats.get("n"):
        return "—"
    return f"{_num(stats['p50'])} / {_num(stats['p95'])}"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _level(data: dict[str, Any] | None, clients: str, key: str) -> Any:
    return _get(data, "throughput", clients, key)


def markdown(combined: dict[str, Any]) -> str:
    tb, ref = combined.get("trainbox"), combined.get("reference")
    rows: list[tuple[str, str, str]] = [
        ("create latency p50 / p95 (ms), 1 client", _ms(tb, "create"), _ms(ref, "create")),
        ("step latency p50 / p95 (ms), 1 client", _ms(tb, "step"), _ms(ref, "step")),
        ("evaluate latency p50 / p95 (ms), 1 client", _ms(tb, "evaluate"), _ms(ref, "evaluate")),
        ("release latency p50 / p95 (ms), 1 client", _ms(tb, "release"), _ms(ref, "release")),
        ("step overhead p50 (ms): HTTP minus in-process", _num(step_overhead(tb or {}).get("paired_p50_ms")), "—"),
    ]
    for clients in ("8", "32", "64"):
        for key, label in (("episodes_per_s", "episodes/s"), ("steps_per_s", "steps/s")):
            values = [_num(_level(data, clients, key)) for data in (tb, ref)]
            rows.append((f"{label} at {clients} clients", *values))
        p50 = [_get(d, "throughput", clients, "latency_ms", "step", "p50") for d in (tb, ref)]
        rows.append((f"step p50 under load at {clients} clients (ms)", _num(p50[0]), _num(p50[1])))
        rows.append((f"episodes completed / peak live at {clients} clients", _done(tb, clients), _done(ref, clients)))
        rows.append((f"failed episodes at {clients} clients", _failed(tb, clients), _failed(ref, clients)))
    for label, path in (
        ("service tree RSS idle (MiB)", ("memory", "idle", "rss_mib")),
        ("live instances reached (stop reason)", None),
        ("service tree RSS at that peak (MiB)", ("memory", "peak", "rss_mib")),
        ("RSS per live instance (MiB)", ("memory", "rss_mib_per_instance")),
        ("RSS per live instance after one step each (MiB)", ("memory", "rss_mib_per_stepped_instance")),
        ("RSS left after releasing all (MiB)", ("memory", "rss_mib_left_after_release")),
        ("memory back to idle after release", ("memory", "back_to_idle")),
    ):
        if path is None:
            rows.append((label, _reached(tb), _reached(ref)))
        else:
            rows.append((label, _num(_get(tb, *path)), _num(_get(ref, *path))))
    lines = [
        "# Service benchmark: trainbox vs the reference (BFCL multi_turn_base ground truth)",
        "",
        _header(combined),
        "",
        "| metric | trainbox | reference |",
        "| --- | ---: | ---: |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "## Targets",
        "",
        "| target | value | wanted | met |",
        "| --- | ---: | ---: | :---: |",
        *[_target_row(t) for t in combined["targets"]],
        "",
        HOW,
    ]
    return "\n".join(lines) + "\n"


def _stages(data: dict[str, Any] | None) -> str:
    run, probe = _get(data, "run_measured_at"), _get(data, "probe_measured_at")
    if run and probe and run != probe:
        return f"latency/throughput {run}, memory {probe}"
    return str(_get(data, "measured_at"))


def _target_row(t: dict[str, Any]) -> str:
    return f"| {t['target']} | {_num(t['value'])} | {t['wanted']} | {'yes' if t['met'] else 'NO'} |"


def _done(data: dict[str, Any] | None, clients: str) -> str:
    level = _get(data, "throughput", clients)
    if not level:
        return "—"
    return f"{level['episodes']} / {level['peak_live']}"


def _failed(data: dict[str, Any] | None, clients: str) -> str:
    errors = _get(data, "throughput", clients, "errors")
    if errors is None:
        return "—"
    failed = {k.split(":", 1)[1]: n for k, n in errors.items() if k.startswith("episode-failed:")}
    return ", ".join(f"{n} ({kind})" for kind, n in failed.items()) or "0"


def _reached(data: dict[str, Any] | None) -> str:
    memory = _get(data, "memory")
    if not memory:
        return "—"
    return f"{memory['live']:,} ({memory['stop_reason']}, {memory['mem_available_at_peak_mib']:,} MiB available)"


def _header(combined: dict[str, Any]) -> str:
    m, w = combined["machine"], combined["workload"]
    when = (
        f"trainbox {_get(combined, 'trainbox', 'measured_at')} (commit {_get(combined, 'trainbox', 'commit')}), "
        f"reference {_stages(combined.get('reference'))} ({_get(combined, 'reference', 'package')})"
    )
    loads = " / ".join(
        f"{s}: {_get(combined, s, 'loadavg_start')} to {_get(combined, s, 'loadavg_end')}"
        for s in ("trainbox", "reference")
    )
    return (
        f"{m['cpus']} CPUs, {m['mem_total_mib']:,} MiB, Python {m['python']}; measured {when}; "
        f"load average during the runs {loads}. Workload: {len(w['episodes'])} {w['category']} tasks, "
        f"{w['steps_per_episode_mean']} steps per episode on average."
    )


HOW = """## How it was measured

`.venv/bin/python -m bench.compare_reference` (raw JSON next to this file). Both services run on
127.0.0.1 with a one-node Ray (2 CPUs) started on loopback for them; each system is started fresh twice
(latency + throughput, then the memory probe). Clients are keep-alive HTTP/1.1 connections on asyncio
(`bench/loadkit.py`), one per simulated trainer, in the bench process on the same 2 cores.

- **Episode**: create, one step per ground-truth call (`<tool_call>` JSON, the reference's format), a
  message without calls to end each turn (the last one terminates the episode and returns the reward),
  evaluate, release. Tasks with positional-argument ground truth are left out for both.
- **Latency**: one client, episodes back to back (trainbox 100, the reference 5).
- **Throughput**: N clients run episodes back to back; new episodes start during a window (trainbox 20 s;
  the reference 120 s and at most 16 episodes per level, each client at least one), in-flight ones then
  finish (the reference gets 600 s); rate = completed episodes (or steps) / elapsed.
  A memory gate starts no create that could bring the host below 4 GiB available (the reference's
  instances cost ~270 MiB each, so its 64-client level is memory-bound on this machine). A call may
  take as long as its level lasts (window + drain); an episode still running then fails (`TimeoutError`).
- **Step overhead**: per step position, the median HTTP step latency (1 client) minus the median time of
  the same `instance.step(message)` run in-process on the adapter (`bench/bfcl_step_cost.py`); the p50
  over positions. It covers HTTP, the FastAPI front, the Ray call to the host actor, the pipe to the
  worker process and back.
- **Memory**: RSS (and PSS) summed over the service's whole process tree (Ray head with GCS, raylet and
  workers; the service process and its children), idle vs N live instances. The probe creates until
  10,000 instances (trainbox, groups of 50) or until the next create could bring the host below 3 GiB
  available (the reference), steps each instance once, releases all and waits for the tree to settle.
"""
