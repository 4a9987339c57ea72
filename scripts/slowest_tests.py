"""The slowest tests of a pytest run, from its JUnit XML files:
``python3 scripts/slowest_tests.py [xml...] [count]`` (default: `make test`'s two lanes,
build/test-results/junit-{service,cluster}.xml).

Each test's time is setup + call + teardown (``junit_duration_report = "total"`` in pyproject.toml), so a test
that starts a module's or the session's shared fixture carries its cost.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET


def main(*args: str) -> None:
    count = args[-1] if args and args[-1].isdigit() else "25"
    lanes = [f"build/test-results/junit-{lane}.xml" for lane in ("service", "cluster")]
    paths = [a for a in args if not a.isdigit()] or [p for p in lanes if os.path.exists(p)]
    cases = [case for path in paths for case in ET.parse(path).iter("testcase")]
    total = sum(float(c.get("time", 0)) for c in cases)
    print(f"{len(cases)} tests, {total:.0f} s in tests (collection and start-up not included)")
    for case in sorted(cases, key=lambda c: -float(c.get("time", 0)))[: int(count)]:
        print(f"{float(case.get('time', 0)):8.1f} s  {case.get('classname')}::{case.get('name')}")


if __name__ == "__main__":
    main(*sys.argv[1:])
