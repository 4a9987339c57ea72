"""How many instances each host holds, as the front knows it between the hosts' reports (pure, no I/O).

The front asks every host for its counts once a second; a report is asked for at one moment and lands
later. Admission cannot wait for it: a create counts the moment it is admitted (a *ticket*), whether its
id is generated or the caller's. A landing report drops the tickets that had completed before it was
asked for (the hosts counted those) and keeps the rest — in flight, or completed while the report was on
its way — which may count an instance twice until the next report: the safe side of a limit. A release
lowers the count at once; any report landing after it drops it (the report either saw the release, or
still counts the instance: again the safe side).
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass


@dataclass
class Ticket:
    host: str
    done_at: int | None = None  # the ledger's clock when the create completed


class LiveLedger:
    def __init__(self) -> None:
        self.reported: dict[str, int] = {}
        self._tickets: dict[int, Ticket] = {}
        self._ticketed: collections.Counter[str] = collections.Counter()
        self._released: collections.Counter[str] = collections.Counter()
        self._numbers = itertools.count(1)
        self._clock = 0

    def admit(self, host: str) -> int:
        """Count one create placed on ``host`` now; returns its ticket."""
        number = next(self._numbers)
        self._tickets[number] = Ticket(host)
        self._ticketed[host] += 1
        return number

    def completed(self, ticket: int) -> None:
        """The create succeeded: it stays counted until a report asked for after this moment lands."""
        self._clock += 1
        if ticket in self._tickets:
            self._tickets[ticket].done_at = self._clock

    def failed(self, ticket: int) -> None:
        """The create failed: it holds nothing."""
        found = self._tickets.pop(ticket, None)
        if found is not None:
            self._ticketed[found.host] -= 1

    def released(self, host: str) -> None:
        self._released[host] += 1

    def asking(self) -> int:
        """Call when asking the hosts for a report; pass the answer to ``landed``."""
        return self._clock

    def landed(self, asked_at: int, live: dict[str, int]) -> None:
        """A report asked for at ``asked_at`` landed with each host's live count."""
        self.reported = dict(live)
        for number, ticket in list(self._tickets.items()):
            if ticket.done_at is not None and ticket.done_at <= asked_at:
                del self._tickets[number]
                self._ticketed[ticket.host] -= 1
        self._released.clear()

    def live(self, host: str) -> int:
        return max(0, self.reported.get(host, 0) + self._ticketed[host] - self._released[host])

    def total(self) -> int:
        hosts = set(self.reported) | set(self._ticketed) | set(self._released)
        return sum(self.live(host) for host in hosts)

    def in_flight(self) -> int:
        return sum(1 for ticket in self._tickets.values() if ticket.done_at is None)
