"""Table-driven tests of the pure lifecycle decisions: ids that name hosts, TTL deadlines, placement."""

from __future__ import annotations

import pytest
from trainbox_server.hosts.lifecycle import (
    HostLoad,
    Lease,
    choose_host,
    host_for_custom_id,
    host_of,
    new_instance_id,
    validate_ttl,
)

HOSTS = ["host-amd64-a-0", "host-arm64-b-0"]


def test_generated_ids_name_their_host() -> None:
    iid = new_instance_id(HOSTS[1])
    assert host_of(iid, HOSTS) == HOSTS[1]
    assert new_instance_id(HOSTS[1]) != iid


@pytest.mark.parametrize("iid", ["custom-id", "host-gone-0--abc", "--", ""])
def test_other_ids_need_a_lookup(iid: str) -> None:
    assert host_of(iid, HOSTS) is None


def test_custom_ids_have_a_stable_home() -> None:
    homes = {host_for_custom_id(f"id-{i}", HOSTS) for i in range(50)}
    assert homes == set(HOSTS)  # spread
    assert host_for_custom_id("x", HOSTS) == host_for_custom_id("x", list(reversed(HOSTS)))  # order-free


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (100.0, None),
        (129.9, None),
        (130.0, "idle"),  # created 100, idle 30
        (1000.0, "lifetime"),  # lifetime wins once both have passed
    ],
)
def test_expiry_reason(now: float, expected: str | None) -> None:
    assert Lease(created_at=100.0, idle_ttl=30.0, max_lifetime=900.0).expiry_reason(now) == expected


def test_touch_extends_idle_but_not_lifetime() -> None:
    lease = Lease(created_at=0.0, idle_ttl=10.0, max_lifetime=25.0)
    lease.touch(9.0)
    assert lease.expiry_reason(15.0) is None and lease.expires_at() == 19.0
    lease.touch(20.0)
    assert lease.expires_at() == 25.0 and lease.expiry_reason(25.0) == "lifetime"


@pytest.mark.parametrize(
    ("loads", "arch", "expected"),
    [
        ([HostLoad("a", "amd64", 5, 10), HostLoad("b", "amd64", 1, 10)], None, "b"),
        ([HostLoad("a", "amd64", 1, 10), HostLoad("b", "arm64", 0, 10)], "amd64", "a"),
        ([HostLoad("a", "amd64", 10, 10), HostLoad("b", "arm64", 0, 10)], "amd64", None),  # full
        ([HostLoad("a", "amd64", 0, 10, alive=False), HostLoad("b", "amd64", 9, 10)], None, "b"),  # dead
        ([HostLoad("a", "amd64", 0, 10)], "arm64", None),
    ],
)
def test_choose_host(loads: list[HostLoad], arch: str | None, expected: str | None) -> None:
    chosen = choose_host(loads, arch)
    assert (chosen.name if chosen else None) == expected


def _installed(name: str, arch: str, live: int, families: list[str] | None) -> HostLoad:
    return HostLoad(name, arch, live, 10, extra={} if families is None else {"installed": families})


@pytest.mark.parametrize(
    ("loads", "arch", "env_type", "expected"),
    [
        # an arm64 image without AppWorld: AppWorld goes to the amd64 host even though it is busier
        ([_installed("a", "amd64", 5, ["bfcl", "appworld"]), _installed("b", "arm64", 0, ["bfcl"])], None,
         "appworld", "a"),
        ([_installed("a", "amd64", 5, ["bfcl", "appworld"]), _installed("b", "arm64", 0, ["bfcl"])], None,
         "bfcl", "b"),
        ([_installed("a", "amd64", 0, ["bfcl", "appworld"]), _installed("b", "arm64", 0, ["bfcl"])], "arm64",
         "appworld", None),
        ([_installed("a", "amd64", 0, ["bfcl"])], None, "bfcl@2025.10.1", None),  # a release it lacks
        ([_installed("a", "amd64", 3, None), _installed("b", "amd64", 4, ["bfcl"])], None, "appworld", "a"),
    ],
    ids=["family only where installed", "least loaded among those with it", "not on that arch", "release",
         "a host that does not say"],
)  # fmt: skip
def test_choose_host_sends_a_family_only_where_it_is_installed(
    loads: list[HostLoad], arch: str | None, env_type: str, expected: str | None
) -> None:
    chosen = choose_host(loads, arch, env_type)
    assert (chosen.name if chosen else None) == expected


@pytest.mark.parametrize(
    ("value", "ok"), [(None, True), (1, True), (86400, True), (0, False), (-5, False), (1e9, False)]
)
def test_validate_ttl(value: float | None, ok: bool) -> None:
    if ok:
        assert validate_ttl(value, 300.0, "idle_ttl", 86400.0) == (300.0 if value is None else value)
    else:
        with pytest.raises(ValueError, match="idle_ttl"):
            validate_ttl(value, 300.0, "idle_ttl", 86400.0)
