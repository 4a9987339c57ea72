"""Hosts in this process, without Ray: ``InstanceHost`` objects on an event-loop thread of their own, and a
``HostGroup`` that calls them as the front calls Ray's actors.

What Ray gives the hosts (a process of their own, detached from the front, found by name) this gives the
same shape in one process: the hosts run on their own loop, so they outlive any one front (an app, a test
client) that uses them; the calls that carry traffic go over each host's real data channel (loopback TCP,
framed JSON); the others (``ping``, ``families``) cross to the hosts' loop as Ray's actor calls would.
The worker processes are real. The test suite's fast lane serves its apps from these (tests/fastlane.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from trainbox_server.hosts.host import HostSettings, InstanceHost
from trainbox_server.hosts.ray_hosts import HostGroup, NewHost, slot_name

T = TypeVar("T")
NODE_ID = "local00000"  # the node part of local host names (Ray's are node ids)


class LocalHosts:
    """``InstanceHost`` objects per architecture, on an event loop in a thread of this process."""

    def __init__(self, settings: HostSettings, archs: tuple[str, ...] = ("amd64",), per_arch: int = 1) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="trainbox-local-hosts", daemon=True)
        self.hosts: dict[str, InstanceHost] = {}
        self.arch: dict[str, str] = {}
        self.channels: dict[str, dict[str, str]] = {}
        self._slots = [(arch, index) for arch in archs for index in range(per_arch)]

    def start(self, timeout: float = 120.0) -> LocalHosts:
        """Start every host (its warm pools, TTL sweeper and data channel); blocks until they answer."""
        self._thread.start()
        for arch, index in self._slots:
            name = f"{slot_name(arch, NODE_ID, index)}-{uuid.uuid4().hex[:6]}"
            host = InstanceHost(replace(self.settings, name=name, arch=arch, channel_ip="127.0.0.1"))
            self.hosts[name], self.arch[name] = host, arch
            self.channels[name] = self.run(host.ping(), timeout)["result"]["channel"]
        return self

    def submit(self, call: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(call, self.loop)

    def run(self, call: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the hosts' loop and wait for it (e.g. ``hosts.run(host.sweep(now))``)."""
        return self.submit(call).result(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Release every instance and stop every worker, then the loop."""
        for host in self.hosts.values():
            self.run(host.shutdown(), timeout)
            if host._channel is not None:
                self.run(host._channel.close(), timeout)
        self.run(_cancel_the_rest(), timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self.loop.close()


async def _cancel_the_rest() -> None:
    """Cancel what still runs on the loop (connections being served, pool refills) and let it finish."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _Method:
    def __init__(self, hosts: LocalHosts, host: InstanceHost, name: str) -> None:
        self.hosts, self.host, self.name = hosts, host, name

    def remote(self, *args: Any) -> asyncio.Future[Any]:
        """What ``actor.method.remote(...)`` is in Ray: the call runs on the host's side, awaited here."""
        return asyncio.wrap_future(self.hosts.submit(getattr(self.host, self.name)(*args)))


class LocalHandle:
    """Stands in for a Ray actor handle: ``handle.method.remote(*args)`` runs on the hosts' loop."""

    def __init__(self, hosts: LocalHosts, host: InstanceHost) -> None:
        self._hosts, self._host = hosts, host

    def __getattr__(self, name: str) -> _Method:
        return _Method(self._hosts, self._host, name)


class LocalHostGroup(HostGroup):
    """The front's view of ``LocalHosts`` (all of them, or those of some architectures): ``HostGroup``'s
    calls, routing and bookkeeping, with the hosts found in this process instead of on Ray."""

    def __init__(self, hosts: LocalHosts, archs: tuple[str, ...] | None = None) -> None:
        super().__init__(hosts.settings)
        self.local = hosts
        self.serve_archs = archs

    def connect(self, address: str | None, num_cpus: int | None, namespace: str, join_as_node: bool) -> None:
        """Nothing to join: the hosts run in this process."""

    def prepare(self) -> list[NewHost]:
        known = set(self.handles) | self.dead
        return [
            NewHost(name, self.local.arch[name], LocalHandle(self.local, host), self.local.channels[name])
            for name, host in self.local.hosts.items()
            if name not in known and (self.serve_archs is None or self.local.arch[name] in self.serve_archs)
        ]
