"""The slowest tests of a pytest run, from its JUnit XML: ``scripts/slowest_tests.py [--cpu] [xml ...] [count]``.

``--cpu`` sorts by CPU time instead (the ``cpu_s`` property `make test` records per test: tests/cputime.py).

Without a file: the lanes' files of the last `make test` (``junit-cluster.xml``, ``junit-rest.xml``), else
``junit.xml``. Each test's time is setup + call + teardown (``junit_duration_report = "total"`` in
pyproject.toml), so a test that starts a module's or the session's shared fixture carries its cost. Lanes run
side by side: their times add up to more than the run took.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

RESULTS = Path("build/test-results")


def main(*args: str) -> None:
    count = int(next((a for a in args if a.isdigit()), "25"))
    by_cpu = "--cpu" in args
    paths = [Path(a) for a in args if not a.isdigit() and a != "--cpu"]
    if not paths:
        lanes = [RESULTS / "junit-cluster.xml", RESULTS / "junit-rest.xml"]
        paths = [p for p in lanes if p.exists()] or [RESULTS / "junit.xml"]
    for path in paths:
        cases = list(ET.parse(path).iter("testcase"))
        total, cpu_total = sum(wall(c) for c in cases), sum(cpu(c) for c in cases)
        print(f"{path}: {len(cases)} tests, {total:.0f} s in tests (collection and start-up not included), "
              f"{cpu_total:.0f} s CPU")  # fmt: skip
        for case in sorted(cases, key=lambda c: -(cpu(c) if by_cpu else wall(c)))[:count]:
            print(f"{wall(case):8.1f} s {cpu(case):8.1f} s CPU  {case.get('classname')}::{case.get('name')}")


def wall(case: ET.Element) -> float:
    return float(case.get("time", 0))


def cpu(case: ET.Element) -> float:
    return sum(float(p.get("value", 0)) for p in case.iter("property") if p.get("name") == "cpu_s")


if __name__ == "__main__":
    main(*sys.argv[1:])
