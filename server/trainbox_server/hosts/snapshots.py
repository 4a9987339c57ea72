"""Snapshots kept by a host: an instance's episode as data (see ``Runtime.record``), with a TTL and bounds.

A snapshot never leaves the service: its id (which names its host, like a generated instance id) is all a
client holds, and restoring it rebuilds the episode in our own workers from the record. Pure bookkeeping,
no I/O: the host actor calls it and sweeps it with the instances.
"""

from __future__ import annotations

import collections
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from trainbox_server.errors import SnapshotLimit, UnknownSnapshot
from trainbox_server.hosts.lifecycle import HOST_PREFIX, ID_SEPARATOR

SNAPSHOT_ID = re.compile(rf"{HOST_PREFIX}[A-Za-z0-9._:-]+?{ID_SEPARATOR}s[0-9a-f]{{32}}")
GONE_MEMORY = 10_000  # released/expired snapshot ids remembered, to say why they are gone


def is_snapshot_id(value: object) -> bool:
    return isinstance(value, str) and SNAPSHOT_ID.fullmatch(value) is not None


@dataclass
class Snapshot:
    record: dict[str, Any]
    created_at: float
    expires_at: float
    size: int

    def describe(self, snapshot_id: str) -> dict[str, Any]:
        return {
            "snapshot_id": snapshot_id,
            "env_type": self.record["family"],
            "task_id": self.record["task_id"],
            "steps": len(self.record["actions"]),
            "terminated": self.record["terminated"],
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "bytes": self.size,
        }


class SnapshotStore:
    """At most ``max_count`` snapshots and ``max_bytes`` of records per host, each for ``ttl`` seconds."""

    def __init__(self, host: str, max_count: int, max_bytes: int, ttl: float) -> None:
        self.host = host
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.snapshots: dict[str, Snapshot] = {}
        self.bytes = 0
        self.gone: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.released: collections.Counter[str] = collections.Counter({"explicit": 0, "expired": 0})

    def put(self, record: dict[str, Any], now: float) -> tuple[str, Snapshot]:
        size = len(orjson.dumps(record))
        if len(self.snapshots) >= self.max_count or self.bytes + size > self.max_bytes:
            raise SnapshotLimit(
                f"host {self.host} holds its maximum of snapshots ({len(self.snapshots)} of {self.max_count}, "
                f"{self.bytes} of {self.max_bytes} bytes); release some or wait for their TTL",
                retry_after=max(1.0, min(60.0, self.next_expiry(now) - now)),
            )
        snapshot_id = f"{self.host}{ID_SEPARATOR}s{uuid.uuid4().hex}"
        snapshot = Snapshot(record, now, now + self.ttl, size)
        self.snapshots[snapshot_id] = snapshot
        self.bytes += size
        return snapshot_id, snapshot

    def get(self, snapshot_id: str) -> Snapshot:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            why = self.gone.get(snapshot_id)
            detail = f"it was {why}" if why else "never taken here"
            raise UnknownSnapshot(f"no snapshot {snapshot_id!r} ({detail})")
        return snapshot

    def drop(self, snapshot_id: str, reason: str = "explicit") -> bool:
        snapshot = self.snapshots.pop(snapshot_id, None)
        if snapshot is None:
            return False
        self.bytes -= snapshot.size
        self.released[reason] += 1
        self.gone[snapshot_id] = "released" if reason == "explicit" else "past its TTL"
        while len(self.gone) > GONE_MEMORY:
            self.gone.popitem(last=False)
        return True

    def expire(self, now: float) -> list[str]:
        due = [sid for sid, snap in self.snapshots.items() if snap.expires_at <= now]
        for snapshot_id in due:
            self.drop(snapshot_id, "expired")
        return due

    def next_expiry(self, now: float) -> float:
        return min((s.expires_at for s in self.snapshots.values()), default=now + 1.0)
