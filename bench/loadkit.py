"""Measuring tools for the service benchmark: a lean HTTP/1.1 client, process-tree memory and CPU, percentiles.

The client is a keep-alive connection on asyncio streams (one per simulated trainer), not httpx: on a
2-core machine the load generator shares the CPU with the service, and a heavier client would make
both systems look slower. It speaks exactly what both services answer (JSON bodies, Content-Length).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


class HttpError(Exception):
    def __init__(self, status: int, body: Any, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {str(body)[:300]}")
        self.status, self.body, self.retry_after = status, body, retry_after


class Connection:
    """One keep-alive HTTP/1.1 connection to ``127.0.0.1:port`` (reconnects when the server closed it)."""

    def __init__(self, port: int, timeout: float = 300.0) -> None:
        self.port, self.timeout = port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        for attempt in (1, 2):  # a keep-alive connection the server closed in between: reconnect once
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                return await asyncio.wait_for(self._exchange(method, path, body), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: Any) -> Any:
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            raw = await self._chunked()
        else:
            raw = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            await self.close()
        data = json.loads(raw) if raw and "json" in headers.get("content-type", "") else raw.decode()
        if status >= 400:
            retry = headers.get("retry-after")
            raise HttpError(status, data, float(retry) if retry else None)
        return data

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readexactly(2)
        return b"".join(parts)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.reader = None


# -- processes ----------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_pids(roots: list[int]) -> list[int]:
    """``roots`` and all their descendants that are alive now."""
    children, seen, todo = _children(), set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
    return sorted(seen)


def kill_tree(pids: list[int]) -> None:
    """SIGKILL what is left of a process tree snapshot (Ray workers run in sessions of their own, so
    stopping the process groups we started can leave them behind)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def node_ips(roots: list[int]) -> list[str]:
    """Every ``--node-ip-address``/``node_ip_address`` a process of the tree was started with."""
    found = set()
    for pid in tree_pids(roots):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        found.update(re.findall(r"node[-_]ip[-_]address=([0-9a-fA-F.:]+)", cmd))
    return sorted(found)


def _rss_pss_kib(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if line.endswith("kB")}
    return values.get("Rss", 0), values.get("Pss", 0)


def process_role(cmdline: str) -> str | None:
    """Which part of the service a process is, by its command line (pure): ``front``, ``host``, ``worker``
    (a BFCL or AppWorld worker, or the fork server its workers are forks of: they share its command line),
    ``ray`` (Ray's own processes), or None for the rest of the machine."""
    if "trainbox_server serve" in cmdline:
        return "front"
    if cmdline.startswith("ray::InstanceHost"):
        return "host"
    if "trainbox_server.runtime.worker" in cmdline or "trainbox_server.runtime.forkserver" in cmdline:
        return "worker"
    if "/ray/" in cmdline or cmdline.startswith("ray::"):
        return "ray"
    return None


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@dataclass
class TreeSample:
    processes: int
    rss_mib: float
    pss_mib: float
    cpu_s: float  # CPU time of the processes alive now (exited ones are not counted)

    def to_dict(self) -> dict[str, float]:
        return {"processes": self.processes, "rss_mib": round(self.rss_mib, 1), "pss_mib": round(self.pss_mib, 1)}


def rss_by_process(roots: list[int]) -> dict[str, float]:
    """RSS (MiB) of a process tree grouped by process title (``ray::InstanceHost``, ``raylet``, ...)."""
    out: dict[str, float] = {}
    for pid in tree_pids(roots):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace").rsplit("/", 1)[-1] for a in argv[:4] if a and not a.startswith(b"-")]
        title = " ".join(words)[:80]
        out[title] = round(out.get(title, 0.0) + _rss_pss_kib(pid)[0] / 1024, 1)
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def sample_tree(roots: list[int]) -> TreeSample:
    pids = tree_pids(roots)
    sizes = [_rss_pss_kib(p) for p in pids]
    return TreeSample(
        len(pids),
        sum(r for r, _ in sizes) / 1024,
        sum(p for _, p in sizes) / 1024,
        sum(cpu_seconds(p) for p in pids),
    )


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# -- numbers ------------------------------------------------------------------------------------------


def percentiles(values: list[float], scale: float = 1000.0) -> dict[str, float | int]:
    """p50/p95/max of seconds, in milliseconds by default."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(values),
        "p50": round(statistics.median(ordered) * scale, 3),
        "p95": round(p95 * scale, 3),
        "max": round(ordered[-1] * scale, 3),
    }


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
