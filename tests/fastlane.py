"""The fast lane: the real app (``create_app``) on in-process hosts (``hosts.local_hosts``) with real BFCL
worker processes, no Ray and no service process. Requests go through ``TestClient``; a TTL sweep is a call
of the host's ``sweep(now)`` with the time chosen by the test.

The fixtures are in conftest: ``local_hosts`` (one amd64 and one arm64 host, each with its warm BFCL pool)
start once per session and serve every app; ``app`` is an app with the default settings, one per module.
An app with other settings is ``local_app(local_hosts, **settings)``: cheap (its settings are the front's),
but only one app may run at a time (each registers the process-wide metrics collector).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from fastapi.testclient import TestClient
from trainbox_server.hosts.host import HostSettings, InstanceHost
from trainbox_server.hosts.local_hosts import LocalHostGroup, LocalHosts
from trainbox_server.service.app import create_app
from trainbox_server.service.config import ServiceConfig
from trainbox_server.service.core import SandboxService

# TTLs here are the host defaults; tests that expire instances ask for short ones per instance and sweep.
HOST_SETTINGS = HostSettings(name="", sweep_interval=3600.0)  # the background sweeper never runs: tests sweep


class App:
    """A running app on the local hosts: ``http`` speaks to it, ``service`` is its core, ``hosts`` the hosts."""

    def __init__(self, http: TestClient, service: SandboxService, hosts: LocalHosts) -> None:
        self.http, self.service, self.hosts = http, service, hosts

    def client(self) -> AbstractContextManager[TestClient]:
        """``with app.client() as client:``, as with a service process (``tests.servicekit.Service``)."""
        return nullcontext(self.http)

    def host_of(self, instance_id: str) -> InstanceHost:
        return self.hosts.hosts[instance_id.split("--")[0]]

    def sweep(self, instance_id: str, now: float) -> list[tuple[str, str]]:
        """Run the TTL sweep of the instance's host as if the time were ``now``; what it released."""
        return self.hosts.run(self.host_of(instance_id).sweep(now))

    def released(self, reason: str) -> int:
        return sum(host.released[reason] for host in self.hosts.hosts.values())


@contextmanager
def local_app(hosts: LocalHosts, archs: tuple[str, ...] | None = None, **settings: Any) -> Iterator[App]:
    """An app with these settings (``ServiceConfig`` fields) on the hosts (of ``archs``, default all). It starts
    on empty hosts: the hosts serve the whole session, and an instance an earlier module left live would count
    toward this app's admission and, once its TTL is behind a test's chosen ``now``, be swept by that test."""
    for host in hosts.hosts.values():
        for instance_id in list(host.records):
            hosts.run(host.release(instance_id))
    config = ServiceConfig(**settings)
    service = SandboxService(config, hosts=LocalHostGroup(hosts, archs))
    with TestClient(create_app(config, service), raise_server_exceptions=False) as client:
        yield App(client, service, hosts)
