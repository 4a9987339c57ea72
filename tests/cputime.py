"""Each test's CPU time, counted over every process its lane started: ``make test`` runs each lane in a CPU
accounting cgroup (scripts/test_lanes.py) and names its usage file in ``TRAINBOX_TEST_CPU`` (cgroup v1
``cpuacct.usage`` in ns, v2 ``cpu.stat``'s ``usage_usec``). The suite is CPU-bound on small machines, so this,
not wall time, says which tests make it slow. Recorded as the junit property ``cpu_s`` (setup + call + teardown)
and summed up at the end; without the variable nothing is recorded.

What a lane's cgroup does not hold is not counted: containers that kubelet or Docker start go to their own
cgroups, so the cluster tests' figures leave out their pods' work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

USAGE = os.environ.get("TRAINBOX_TEST_CPU")
SPENT: list[tuple[str, float, float]] = []  # (test, CPU seconds, wall seconds)


def cpu_seconds() -> float | None:
    return usage_seconds(USAGE) if USAGE else None


def usage_seconds(usage: str) -> float | None:
    """What a cgroup's usage file says, in seconds: v1 ``cpuacct.usage`` (ns) or v2 ``cpu.stat`` (usage_usec)."""
    try:
        text = Path(usage).read_text()
    except OSError:
        return None
    if usage.endswith("cpu.stat"):
        usec = next((line.split()[1] for line in text.splitlines() if line.startswith("usage_usec ")), None)
        return int(usec) / 1e6 if usec is not None else None
    return int(text) / 1e9 if text.strip().isdigit() else None


_START = pytest.StashKey[tuple[float | None, float]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    item.stash[_START] = (cpu_seconds(), time.monotonic())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if call.when == "teardown":  # the test's last report: junit writes its properties
        (before, began), after = item.stash.get(_START, (None, 0.0)), cpu_seconds()
        if before is not None and after is not None:
            SPENT.append((item.nodeid, after - before, time.monotonic() - began))
            report.user_properties.append(("cpu_s", f"{after - before:.1f}"))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SPENT:
        return
    terminalreporter.section("most CPU per test (this lane's processes)")
    for test, cpu, wall in sorted(SPENT, key=lambda s: -s[1])[:15]:
        terminalreporter.write_line(f"{cpu:7.1f}s CPU {wall:7.1f}s wall  {test}")
    total = sum(cpu for _, cpu, _ in SPENT)
    terminalreporter.write_line(f"{total:7.1f}s CPU in {len(SPENT)} tests")
