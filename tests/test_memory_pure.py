"""The memory policy (``runtime.memory``), table-driven on a fake clock: when a process that hosted instances is idle
enough to trim, and that an emptied table starts small again."""

from __future__ import annotations

import sys

import pytest
from trainbox_server.runtime.memory import QUIET_SECONDS, RECYCLE_AFTER_SECONDS, IdleTrim, emptied_table


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# Each event: ("emptied",) or ("observe", hosted) at a time (seconds from the start); the times a trim is due.
CASES = {
    "never hosted: nothing to give back": ([(0, "observe", 0), (5, "observe", 0)], []),
    "emptied, then quiet: one trim": ([(0, "emptied"), (1, "observe", 0), (2, "observe", 0), (9, "observe", 0)], [2]),
    "a poller notices the emptying": (
        [(0, "observe", 3), (1, "observe", 0), (2, "observe", 0), (3, "observe", 0), (4, "observe", 0)],
        [3],
    ),
    "hosting again restarts the wait": (
        [(0, "emptied"), (1, "observe", 1), (2.5, "observe", 0), (4, "observe", 0), (4.5, "observe", 0)],
        [4.5],
    ),
    "a busy loop never trims": ([(t / 10, "emptied" if t % 2 else "observe", 1) for t in range(50)], []),
}


@pytest.mark.parametrize(("events", "trims"), CASES.values(), ids=list(CASES))
def test_idle_trim(events: list[tuple], trims: list[float]) -> None:
    clock = Clock()
    idle, start, due = IdleTrim(clock=clock), clock.now, []
    for at, what, *hosted in events:
        clock.now = start + at
        if what == "emptied":
            idle.emptied()
        elif idle.observe(*hosted):
            due.append(at)
    assert due == trims


def test_wait_says_when_the_owed_trim_falls_due() -> None:
    clock = Clock()
    idle = IdleTrim(clock=clock)
    assert idle.wait() is None
    idle.emptied()
    clock.now += 0.5
    assert idle.wait() == pytest.approx(QUIET_SECONDS - 0.5)
    clock.now += QUIET_SECONDS
    assert idle.wait() == 0.0 and idle.observe(0) and idle.wait() is None
    assert RECYCLE_AFTER_SECONDS > QUIET_SECONDS  # a worker is recycled only after its own trim had its chance


def test_an_emptied_table_starts_small_again() -> None:
    table = {str(i): i for i in range(10_000)}
    assert emptied_table(table) is table
    for key in list(table):
        del table[key]
    fresh = emptied_table(table)
    assert fresh == {} and fresh is not table and sys.getsizeof(fresh) < sys.getsizeof(table)
