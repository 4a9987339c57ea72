"""Which Ray nodes get instance hosts, and which families a host serves (pure decisions)."""

from __future__ import annotations

import pytest
from trainbox_server.hosts.host import HostSettings
from trainbox_server.hosts.lifecycle import HostLoad, choose_host, missed_report
from trainbox_server.hosts.ray_hosts import host_nodes
from trainbox_server.service.config import ServiceConfig
from trainbox_server.service.core import SandboxService


def node(node_id: str, alive: bool = True, **labels: str) -> dict:
    return {"NodeID": node_id, "Alive": alive, "Labels": labels}


def test_in_a_labelled_cluster_only_labelled_nodes_host() -> None:
    nodes = [
        node("head"),  # a KubeRay head: no arch label
        node("front", **{"trainbox.dev/role": "front"}),
        node("w1", **{"trainbox.dev/arch": "amd64"}),
        node("w2", **{"trainbox.dev/arch": "arm64"}),
        node("gone", alive=False, **{"trainbox.dev/arch": "arm64"}),
    ]
    assert [(n["NodeID"], arch) for n, arch in host_nodes(nodes)] == [("w1", "amd64"), ("w2", "arm64")]


def test_before_any_worker_joins_nothing_hosts() -> None:
    # a KubeRay head and the front, the workers not yet joined: no host on either
    assert host_nodes([node("head"), node("f", **{"trainbox.dev/role": "front"})]) == []


def test_environments_restrict_the_families_a_host_runs() -> None:
    config = HostSettings(name="h", environments=("bfcl",)).runtime_config()
    assert set(config.families) == {"bfcl"} and config.prestart == ("bfcl",)
    assert set(HostSettings(name="h").runtime_config().families) >= {"bfcl", "appworld"}


def test_environments_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINBOX_ENVIRONMENTS", " bfcl, appworld ")
    assert ServiceConfig.from_env().environments == ("bfcl", "appworld")
    monkeypatch.setenv("TRAINBOX_ENVIRONMENTS", "bfcl,nope")
    with pytest.raises(ValueError, match="TRAINBOX_ENVIRONMENTS: unknown families \\['nope'\\]"):
        SandboxService(ServiceConfig.from_env())


def test_a_host_that_misses_a_report_but_answers_its_ping_keeps_serving() -> None:
    last = HostLoad("h1", "amd64", 3, 10, True, {"live": 3})
    slow = missed_report("h1", "amd64", last, answers_ping=True)
    assert slow.alive and not slow.fresh and slow.live == 3
    assert choose_host([slow], None) is slow  # still placed on
    assert not missed_report("h1", "amd64", last, answers_ping=False).alive
    assert not missed_report("h1", "amd64", None, answers_ping=True).alive  # never reported: not serving yet
