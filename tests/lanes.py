"""The cluster lane's claim on the machine while it runs emulated arm64 work (see scripts/test_lanes.py).

`make test` runs the rest of the suite beside the cluster tests, in a CPU cgroup whose path it passes in
``TRAINBOX_REST_CGROUP``. Most of the time the rest lane weighs as much as one of the cluster lane's daemons.
Ray started under qemu-user needs more than one core of two: with the rest lane at that weight, the arm64 server
container's Ray never came up (659 s, then failed). `whole_machine()` drops the rest lane's weight for as long
as such work runs, and gives it back after. Without ``TRAINBOX_REST_CGROUP`` (one pytest, no lanes) it does
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

YIELDING = {"cpu.shares": "64", "cpu.weight": "6"}  # v1 and v2: ≈ 6 % of one session group's share


@contextmanager
def whole_machine() -> Iterator[None]:
    path = os.environ.get("TRAINBOX_REST_CGROUP")
    knob = next((Path(path) / name for name in YIELDING if path and (Path(path) / name).exists()), None)
    if knob is None:
        yield
        return
    before = knob.read_text().strip()
    knob.write_text(YIELDING[knob.name])
    try:
        yield
    finally:
        knob.write_text(before)
