"""Stopping a process tree we started: its process group, plus the descendants that left the group.

Ray puts its worker processes in process groups of their own, and environment workers start their own
sessions, so signalling the service's group alone can leave them running until they notice their parent
is gone. Before stopping, we snapshot the service's descendants from ``/proc`` (Linux; elsewhere the
group is all we know) and afterwards stop whichever of exactly those processes - same PID *and* start
time, so a reused PID is never hit - are still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["Process", "descendants", "signal_group", "stop_leftovers"]

Process = tuple[int, str]  # (pid, start time in clock ticks): identifies a process across PID reuse


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) from /proc/<pid>/stat, or None if it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[19]


def descendants(root: int) -> set[Process]:
    """Every live descendant of ``root`` (children, grandchildren, ...); empty where /proc is missing."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append(int(entry))
            starts[int(entry)] = stat[1]
    found: set[Process] = set()
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.add((pid, starts[pid]))
        stack.extend(children.get(pid, []))
    return found


def _alive(process: Process) -> bool:
    stat = _stat(process[0])
    return stat is not None and stat[1] == process[1]


def signal_group(group: int, sig: int) -> bool:
    """Signal a process group; False if it no longer exists (signal 0 only asks)."""
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal(process: Process, sig: int) -> None:
    if _alive(process):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process[0], sig)


def stop_leftovers(tree: set[Process], group: int | None = None, grace: float = 5.0) -> set[Process]:
    """SIGTERM what is left of ``tree`` (and ``group``), SIGKILL it after ``grace``; returns what survived."""
    if group is not None:
        signal_group(group, signal.SIGTERM)
    for process in tree:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if (group is None or not signal_group(group, 0)) and not any(_alive(p) for p in tree):
            return set()
        time.sleep(0.05)
    if group is not None:
        signal_group(group, signal.SIGKILL)
    for process in tree:
        _signal(process, signal.SIGKILL)
    time.sleep(0.1)
    return {p for p in tree if _alive(p)}
