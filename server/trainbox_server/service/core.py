"""The front's logic, free of HTTP: admission, placement, routing to hosts, groups, caches.

Routing needs no state of its own: generated instance ids name their host; caller-chosen ids live on the
host their hash picks (or, after the host set changed, on whichever host answers ``has``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from trainbox_server.envs.base import SPLITS
from trainbox_server.errors import (
    Busy,
    CapacityExceeded,
    RequestError,
    UnavailableArchitecture,
    UnknownEnvironment,
    UnknownInstance,
)
from trainbox_server.hosts.host import HostSettings
from trainbox_server.hosts.lifecycle import HostLoad, choose_host, host_for_custom_id, host_of
from trainbox_server.hosts.ray_hosts import HostGroup, start_ray
from trainbox_server.runtime.worker import release_memory
from trainbox_server.service.config import ServiceConfig

log = logging.getLogger(__name__)


class SandboxService:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        settings = HostSettings(
            name="",
            idle_ttl=config.idle_ttl,
            max_lifetime=config.max_lifetime,
            max_ttl=config.max_ttl,
            max_live=config.max_live_per_host,
            sweep_interval=config.sweep_interval,
            families=config.families,
        )
        self.hosts = HostGroup(settings, config.hosts_per_node)
        self.families: list[str] = []
        self.loads: list[HostLoad] = []
        self.creates_in_flight = 0
        self._routes: dict[str, str] = {}
        self._tasks: dict[tuple[str, str], list[str]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self.ready = False

    def start(self) -> None:
        """Blocking set-up (Ray, hosts); call from a thread or before serving."""
        start_ray(self.config.ray_address, self.config.ray_num_cpus, self.config.ray_namespace)
        self.hosts.ensure_hosts()

    async def start_async(self) -> None:
        await asyncio.to_thread(self.start)
        self.families = await self.hosts.call(self.hosts.names[0], "families")
        await self.refresh_loads()
        self._refresher = asyncio.create_task(self._refresh_forever())
        self.ready = True

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    async def refresh_loads(self) -> None:
        self.loads = await self.hosts.loads()

    async def _refresh_forever(self) -> None:
        history = [0, 0, 0]  # live instances at the last three refreshes
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.refresh_loads()
            except Exception:
                log.exception("could not refresh host loads")
            history = [*history[1:], sum(h.live for h in self.loads)]
            if history[0] and not history[1] and not history[2]:  # released, and stayed so: give memory back
                self._routes = {}
                release_memory()

    def environments(self) -> list[dict[str, Any]]:
        return [{"name": name, "splits": list(SPLITS)} for name in self.families]

    def _check_env(self, env_type: str) -> None:
        if env_type not in self.families:
            raise UnknownEnvironment(f"unknown environment {env_type!r}; available: {self.families}")

    def _live_hosts(self) -> list[str]:
        return [h.name for h in self.loads if h.alive] or self.hosts.names

    async def task_ids(self, env_type: str, split: str) -> list[str]:
        self._check_env(env_type)
        key = (env_type, split)
        if key not in self._tasks:
            self._tasks[key] = await self.hosts.call(self._live_hosts()[0], "task_ids", env_type, split)
        return self._tasks[key]

    # -- create -----------------------------------------------------------------------------------------

    def _admit(self, count: int) -> None:
        c = self.config
        if not 1 <= count <= c.max_group:
            raise RequestError(f"count must be between 1 and {c.max_group}, got {count}")
        if self.creates_in_flight + count > c.max_creates_in_flight:
            raise Busy(f"{self.creates_in_flight} creations are in flight (limit {c.max_creates_in_flight})", 1.0)
        live = sum(h.live for h in self.loads) + self.creates_in_flight
        if live + count > c.max_live_total:
            raise CapacityExceeded(f"the service holds its maximum of {c.max_live_total} live instances", 5.0)

    def _place(self, arch: str | None, instance_id: str | None) -> str:
        if arch is not None and arch not in {h.arch for h in self.loads if h.alive}:
            archs = sorted({h.arch for h in self.loads if h.alive})
            raise UnavailableArchitecture(f"no host of architecture {arch!r}; available: {archs}")
        if instance_id:
            candidates = [h.name for h in self.loads if h.alive and (arch is None or h.arch == arch)]
            return host_for_custom_id(instance_id, candidates or self.hosts.names)
        chosen = choose_host(self.loads, arch)
        if chosen is None:
            raise CapacityExceeded("every host is at its live-instance limit", 5.0)
        chosen.live += 1  # account now, so a burst spreads before the next refresh
        return chosen.name

    async def create(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        self._check_env(request["env_type"])
        count = int(request.get("count") or 1)
        if request.get("instance_id") and count != 1:
            raise RequestError("instance_id can only be given with count = 1")
        self._admit(count)
        self.creates_in_flight += count
        try:
            return await self._create_group(request, count)
        finally:
            self.creates_in_flight -= count

    async def _create_group(self, request: dict[str, Any], count: int) -> list[dict[str, Any]]:
        homes = [self._place(request.get("arch"), request.get("instance_id")) for _ in range(count)]
        results = await asyncio.gather(
            *(self.hosts.call(home, "create", request) for home in homes), return_exceptions=True
        )
        made = [r for r in results if isinstance(r, dict)]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:  # a group is all or nothing: release what was made
            await asyncio.gather(*(self.release(r["instance_id"]) for r in made), return_exceptions=True)
            raise failed[0]
        for item in made:
            self._routes[item["instance_id"]] = item["host"]
        return made

    # -- per instance -----------------------------------------------------------------------------------

    async def _host(self, instance_id: str) -> str:
        host = host_of(instance_id, self.hosts.names) or self._routes.get(instance_id)
        if host is None:
            host = await self.hosts.find(instance_id)
            if host is None:
                raise UnknownInstance(f"no live instance {instance_id!r} (never created, or released)")
            self._routes[instance_id] = host
        return host

    async def get(self, instance_id: str) -> dict[str, Any]:
        return await self.hosts.call(await self._host(instance_id), "get", instance_id)

    async def step(
        self, instance_id: str, action: dict[str, Any], request_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        if not isinstance(action, dict):
            raise RequestError("action must be an assistant message object, e.g. {'role': 'assistant', ...}")
        return await self.hosts.call(await self._host(instance_id), "step", instance_id, action, request_id, timeout)

    async def info(self, instance_id: str) -> dict[str, Any]:
        return await self.hosts.call(await self._host(instance_id), "info", instance_id)

    async def evaluate(self, instance_id: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.hosts.call(await self._host(instance_id), "evaluate", instance_id, params or {})

    async def release(self, instance_id: str) -> bool:
        try:
            host = await self._host(instance_id)
        except UnknownInstance:
            return False
        self._routes.pop(instance_id, None)
        released: bool = await self.hosts.call(host, "release", instance_id, "explicit")
        return released

    async def stats(self) -> dict[str, Any]:
        return {"hosts": [h.extra for h in self.loads if h.alive], "creates_in_flight": self.creates_in_flight}
