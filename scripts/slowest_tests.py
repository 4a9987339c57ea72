"""The slowest tests of a pytest run, from its JUnit XML: ``python3 scripts/slowest_tests.py [xml] [count]``.

Each test's time is setup + call + teardown (``junit_duration_report = "total"`` in pyproject.toml), so a test
that starts a module's or the session's shared fixture carries its cost.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str = "build/test-results/junit.xml", count: str = "25") -> None:
    cases = list(ET.parse(path).iter("testcase"))
    total = sum(float(c.get("time", 0)) for c in cases)
    print(f"{len(cases)} tests, {total:.0f} s in tests (collection and start-up not included)")
    for case in sorted(cases, key=lambda c: -float(c.get("time", 0)))[: int(count)]:
        print(f"{float(case.get('time', 0)):8.1f} s  {case.get('classname')}::{case.get('name')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
