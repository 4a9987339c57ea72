"""How many instances each host holds, as the front knows it between the hosts' reports (pure, no I/O).

Admission cannot wait for the next report (the front asks every host for its counts once a second): a
create counts the moment it is admitted — a *ticket*, whether its id is generated or the caller's — and a
release the moment its answer arrives.

A host's report settles what it covers, exactly: reports and create/release answers travel on the same
ordered stream from that host (the data channel), and the host records an instance and sends the answer
in one step, as it computes a report and sends it in one step. So a report covers precisely the creates
and releases whose answers the front processed before the report's own answer: ``completed`` and
``released`` must be called as those answers arrive, ``landed`` as the report arrives (no awaiting in
between). Creates still in flight stay counted by their tickets (a host reports only finished instances).
"""

from __future__ import annotations

import collections
import itertools


class LiveLedger:
    def __init__(self) -> None:
        self.reported: dict[str, int] = {}
        self._open: dict[int, str] = {}  # ticket -> host, while the create is in flight
        self._opened: collections.Counter[str] = collections.Counter()  # in flight, per host
        self._done: collections.Counter[str] = collections.Counter()  # created since the host's last report
        self._released: collections.Counter[str] = collections.Counter()  # released since then
        self._numbers = itertools.count(1)

    def admit(self, host: str) -> int:
        """Count one create placed on ``host`` from now on; returns its ticket."""
        number = next(self._numbers)
        self._open[number] = host
        self._opened[host] += 1
        return number

    def completed(self, ticket: int) -> None:
        """The create's answer arrived: counted until the host's next report (which includes it)."""
        host = self._open.pop(ticket, None)
        if host is not None:
            self._opened[host] -= 1
            self._done[host] += 1

    def failed(self, ticket: int) -> None:
        """The create failed: it holds nothing."""
        host = self._open.pop(ticket, None)
        if host is not None:
            self._opened[host] -= 1

    def released(self, host: str) -> None:
        """A release's answer arrived."""
        self._released[host] += 1

    def landed(self, host: str, live: int) -> None:
        """``host``'s report arrived: ``live`` instances, counting everything answered before it."""
        self.reported[host] = live
        self._done.pop(host, None)
        self._released.pop(host, None)

    def forget(self, host: str) -> None:
        """``host`` is gone, and its instances with it (creates in flight there fail on their own)."""
        for counts in (self._done, self._released):
            counts.pop(host, None)
        self.reported.pop(host, None)

    def live(self, host: str) -> int:
        held = self.reported.get(host, 0) + self._opened[host] + self._done[host] - self._released[host]
        return max(0, held)

    def total(self) -> int:
        return sum(self.live(host) for host in set(self.reported) | set(self._opened) | set(self._done))

    def in_flight(self) -> int:
        return len(self._open)
