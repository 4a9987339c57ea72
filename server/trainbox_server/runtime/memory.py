"""Giving memory back to the OS: when a process is idle enough to trim, and how. One policy, which every layer that
keeps instances calls: a worker (its instances), the runtime (its instance table), a host (its records) and the
front (its routes).

Why. glibc keeps freed heap for reuse and a dict keeps the table of its largest size, so a process that hosted a
burst of instances stays at the burst's size after they are gone.

When (``IdleTrim``). A process is idle enough once what it hosted has left and it has hosted nothing for
``QUIET_SECONDS``; it trims once per emptying. A trim costs milliseconds, so it never runs between the release and
the next create of a busy loop. A layer that sees the moment its last instance leaves says so (``emptied``); one
that only polls a count (``observe``) notices the emptying at its next look.

How. ``emptied_table`` gives a table a fresh dict once it is empty; ``release_memory`` collects garbage and then
asks glibc to hand free heap back (``malloc_trim``).

Beyond a trim. A many-instance worker that is still ``RECYCLE_GROWTH_KIB`` above its warm size
``RECYCLE_AFTER_SECONDS`` after it emptied (its own trim came first) is replaced by a fresh warm process
(``runtime.pool``): fragmentation a trim cannot undo goes with the process.

Standard library only: every family's worker process imports it.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import time
from collections.abc import Callable
from typing import TypeVar

QUIET_SECONDS = 2.0
RECYCLE_AFTER_SECONDS = QUIET_SECONDS + 1.0  # the worker's own trim has had its chance by then
RECYCLE_GROWTH_KIB = 16 * 1024

K = TypeVar("K")
V = TypeVar("V")


def emptied_table(table: dict[K, V]) -> dict[K, V]:
    """``table`` while it holds entries; a fresh dict once it is empty (a dict keeps its peak size: start small)."""
    return table if table else {}


def release_memory() -> None:
    """Give freed memory back to the OS: collect garbage, then trim glibc's heap (where glibc is the libc)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class IdleTrim:
    """When one process should trim: once per emptying, after ``quiet`` seconds without anything hosted."""

    def __init__(self, quiet: float = QUIET_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self._clock = clock
        self._hosting = False  # something was hosted at the last look
        self._empty_since: float | None = None  # a trim is owed: the process emptied then

    def emptied(self) -> None:
        """The process's last instance just left: a trim falls due ``quiet`` seconds from now."""
        self._hosting = False
        self._empty_since = self._clock()

    def observe(self, hosted: int) -> bool:
        """What the process hosts now; True when it should trim now (the trim is then taken as done)."""
        if hosted:
            self._hosting, self._empty_since = True, None  # the owed trim waits for the next emptying
            return False
        if self._hosting:
            self.emptied()
        if self._empty_since is None or self._clock() - self._empty_since < self.quiet:
            return False
        self._empty_since = None
        return True

    def wait(self) -> float | None:
        """Seconds until the owed trim falls due if nothing is hosted meanwhile; ``None`` when none is owed."""
        if self._empty_since is None:
            return None
        return max(0.0, self._empty_since + self.quiet - self._clock())
