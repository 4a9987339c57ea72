"""The slowest tests of a pytest run, from its JUnit XML: ``python3 scripts/slowest_tests.py [xml ...] [count]``.

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
    paths = [Path(a) for a in args if not a.isdigit()]
    if not paths:
        lanes = [RESULTS / "junit-cluster.xml", RESULTS / "junit-rest.xml"]
        paths = [p for p in lanes if p.exists()] or [RESULTS / "junit.xml"]
    for path in paths:
        cases = list(ET.parse(path).iter("testcase"))
        total = sum(float(c.get("time", 0)) for c in cases)
        print(f"{path}: {len(cases)} tests, {total:.0f} s in tests (collection and start-up not included)")
        for case in sorted(cases, key=lambda c: -float(c.get("time", 0)))[:count]:
            print(f"{float(case.get('time', 0)):8.1f} s  {case.get('classname')}::{case.get('name')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
