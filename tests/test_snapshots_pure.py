"""The host's snapshot store: TTL, bounds and why a snapshot is gone, decided without I/O."""

from __future__ import annotations

import pytest
from trainbox_server.errors import SnapshotLimit, UnknownSnapshot
from trainbox_server.hosts.snapshots import SnapshotStore, is_snapshot_id

RECORD = {"family": "bfcl", "task_id": "multi_turn_base_0", "params": {}, "actions": [{"a": 1}], "terminated": False}


def test_a_snapshot_lives_until_its_ttl() -> None:
    store = SnapshotStore("host-amd64-x-0", max_count=10, max_bytes=10_000, ttl=60)
    snapshot_id, snapshot = store.put(RECORD, now=100.0)
    assert is_snapshot_id(snapshot_id) and snapshot_id.startswith("host-amd64-x-0--s")
    assert snapshot.describe(snapshot_id)["expires_at"] == 160.0 and snapshot.size > 0
    assert store.expire(159.9) == [] and store.get(snapshot_id) is snapshot
    assert store.expire(160.0) == [snapshot_id]
    with pytest.raises(UnknownSnapshot, match="past its TTL"):
        store.get(snapshot_id)
    assert store.bytes == 0 and store.released["expired"] == 1


def test_release_is_explicit_and_said_so() -> None:
    store = SnapshotStore("host-a-0", max_count=10, max_bytes=10_000, ttl=60)
    snapshot_id, _ = store.put(RECORD, now=0.0)
    assert store.drop(snapshot_id) is True and store.drop(snapshot_id) is False
    with pytest.raises(UnknownSnapshot, match="released"):
        store.get(snapshot_id)
    with pytest.raises(UnknownSnapshot, match="never taken"):
        store.get("host-a-0--s" + "0" * 32)


@pytest.mark.parametrize(("max_count", "max_bytes"), [(1, 10_000), (10, 150)])
def test_bounds_refuse_with_retry_after(max_count: int, max_bytes: int) -> None:
    store = SnapshotStore("host-a-0", max_count=max_count, max_bytes=max_bytes, ttl=30)
    store.put(RECORD, now=0.0)
    with pytest.raises(SnapshotLimit) as refused:
        store.put(RECORD, now=10.0)
    assert refused.value.status == 429 and refused.value.retry_after == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("host-amd64-abc-0--s" + "a" * 32, True), ("host-amd64-abc-0--" + "a" * 32, False), ("s" * 40, False), (7, False)],
)
def test_snapshot_ids_have_their_own_shape(value: object, ok: bool) -> None:
    assert is_snapshot_id(value) is ok
