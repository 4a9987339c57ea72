"""The front's logic, free of HTTP: input bounds, admission, placement, routing to hosts, groups, caches,
and re-creating hosts that died.

Routing needs no state of its own: generated instance ids name their host; caller-chosen ids live on the
host their hash picks (or, after the host set changed, on whichever host answers ``has``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any

from trainbox_server.envs import releases
from trainbox_server.envs.base import SPLITS
from trainbox_server.envs.registry import FAMILIES
from trainbox_server.errors import (
    Busy,
    CapacityExceeded,
    EnvironmentUnavailable,
    HostsUnavailable,
    InstanceLost,
    UnavailableArchitecture,
    UnknownEnvironment,
    UnknownInstance,
    UnknownSnapshot,
)
from trainbox_server.hosts.lifecycle import (
    ID_SEPARATOR,
    HostLoad,
    choose_host,
    could_exist,
    host_for_custom_id,
    is_generated_id,
    serves,
)
from trainbox_server.hosts.ray_hosts import ARCH_LABEL, HostGroup, node_summary
from trainbox_server.hosts.snapshots import is_snapshot_id
from trainbox_server.runtime.memory import IdleTrim, release_memory
from trainbox_server.service import bounds
from trainbox_server.service.admission import LiveLedger
from trainbox_server.service.config import ServiceConfig

log = logging.getLogger(__name__)
RECREATE_EVERY = 30.0  # seconds between looks for new Ray nodes (dead hosts are replaced at once)
NO_HOST_RETRY = 2.0  # Retry-After while no host serves


class SandboxService:
    def __init__(self, config: ServiceConfig, hosts: HostGroup | None = None) -> None:
        """``hosts``: where the instances live (default: on Ray; ``hosts.local_hosts``: in this process)."""
        self.config = config
        self.limits = config.input_limits()
        self.hosts = hosts if hosts is not None else HostGroup(config.host_settings(), config.hosts_per_node)
        self.hosts.deadlines = config.host_deadlines()
        self.families: list[str] = []
        self.loads: list[HostLoad] = []
        self.ledger = LiveLedger()
        self.creates_in_flight = 0
        self._routes: dict[str, str] = {}
        self._tasks: dict[tuple[str, str], list[str]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._recreator: asyncio.Task[None] | None = None
        self._recreated_at = 0.0
        self._dead_seen = 0
        self.ready = False

    def start(self) -> None:
        """Blocking set-up (Ray, hosts); call from a thread or before serving."""
        config = self.config
        self.hosts.connect(config.ray_address, config.ray_num_cpus, config.ray_namespace, config.ray_join_as_node)
        self.hosts.ensure_hosts()

    async def start_async(self) -> None:
        """Join Ray and start the hosts; wait (saying so) while no Ray node can host instances yet — on
        Kubernetes the front may start before any worker pod has joined."""
        await asyncio.to_thread(self.start)
        waited = 0.0
        while not self.hosts.names and not await self.hosts.ensure_hosts_async():
            if waited % 30 == 0:
                log.warning("no Ray node labelled %s yet (nodes: %s); waiting for one", ARCH_LABEL, node_summary())
            await asyncio.sleep(2.0)
            waited += 2.0
        self._recreated_at = time.monotonic()
        self.families = await self.hosts.call(self.hosts.names[0], "families")
        await self.refresh_loads()
        self._refresher = asyncio.create_task(self._refresh_forever())
        self.ready = True

    async def stop(self) -> None:
        for task in (self._refresher, self._recreator):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.hosts.close()

    async def refresh_loads(self) -> None:
        async def one(name: str) -> HostLoad:
            load = await self.hosts.load(name)
            if load.alive and load.fresh:  # at once, with no await in between: see service.admission
                self.ledger.landed(name, load.extra["live"])
            elif name not in self.hosts.handles:
                self.ledger.forget(name)
            return load

        self.loads = list(await asyncio.gather(*(one(name) for name in self.hosts.names)))

    def serving(self) -> list[HostLoad]:
        """The hosts that answered the last refresh and are still known alive."""
        return [h for h in self.loads if h.alive and h.name in self.hosts.handles]

    async def _refresh_forever(self) -> None:
        idle = IdleTrim()  # when the front, its hosts emptied, gives its routes' memory back (runtime.memory)
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.refresh_loads()
            except Exception:
                log.exception("could not refresh host loads")
            self._maybe_recreate()
            if idle.observe(sum(h.live for h in self.loads)):
                self._routes = {}  # every route names a released instance
                release_memory()

    def _maybe_recreate(self) -> None:
        """Replace dead hosts at once (and look for new nodes now and then), one attempt at a time."""
        if self._recreator is not None and not self._recreator.done():
            return
        died = len(self.hosts.dead) > self._dead_seen or not self.serving()
        if died or time.monotonic() - self._recreated_at > RECREATE_EVERY:
            self._dead_seen = len(self.hosts.dead)
            self._recreated_at = time.monotonic()
            self._recreator = asyncio.create_task(self._recreate())

    async def _recreate(self) -> None:
        try:
            added = await self.hosts.ensure_hosts_async()
        except Exception as exc:  # Ray itself unreachable: the next round tries again
            log.warning("could not re-create hosts: %s", exc)
            return
        if added:
            log.warning("started hosts %s", added)
            await self.refresh_loads()

    def environments(self) -> list[dict[str, Any]]:
        return [{**releases.describe(name), "splits": _splits(name)} for name in self.families]

    def _check_env(self, env_type: object) -> str:
        if not isinstance(env_type, str) or env_type not in self.families:
            raise UnknownEnvironment(f"unknown environment {env_type!r}; available: {self.families}")
        return env_type

    def _some_host(self) -> str:
        serving = self.serving()
        if not serving:
            raise HostsUnavailable("no host serves right now (they are being re-created); retry", NO_HOST_RETRY)
        return serving[0].name

    async def task_ids(self, env_type: str, split: object) -> list[str]:
        self._check_env(env_type)
        key = (env_type, bounds.check_split(split))
        if key not in self._tasks:
            self._tasks[key] = await self.hosts.call(self._some_host(), "task_ids", *key)
        return self._tasks[key]

    # -- create -----------------------------------------------------------------------------------------

    def _admit(
        self, count: int, arch: str | None, instance_id: str | None, env_type: str | None = None
    ) -> list[tuple[str, int]]:
        """Admit ``count`` creates and place them: (host, ledger ticket) each, counted from now on."""
        c = self.config
        if self.creates_in_flight + count > c.max_creates_in_flight:
            raise Busy(f"{self.creates_in_flight} creations are in flight (limit {c.max_creates_in_flight})", 1.0)
        if self.ledger.total() + count > c.max_live:
            raise CapacityExceeded(f"the service holds its maximum of {c.max_live} live instances", 5.0)
        serving = self.serving()
        if not serving:
            raise HostsUnavailable("no host serves right now (they are being re-created); retry", NO_HOST_RETRY)
        if arch is not None and arch not in {h.arch for h in serving}:
            archs = sorted({h.arch for h in serving})
            raise UnavailableArchitecture(f"no host of architecture {arch!r}; available: {archs}")
        running = [h for h in serving if serves(h, env_type)]
        if not running:
            raise EnvironmentUnavailable(f"no host has {env_type!r} installed (its image lacks the family)")
        if arch is not None and arch not in {h.arch for h in running}:
            archs = sorted({h.arch for h in running})
            raise UnavailableArchitecture(
                f"no host of architecture {arch!r} has {env_type!r} installed; hosts with it: {archs}"
            )
        placed = []
        for _ in range(count):
            host = self._place(running, arch, instance_id)
            placed.append((host, self.ledger.admit(host)))
        return placed

    def _place(self, serving: list[HostLoad], arch: str | None, instance_id: str | None) -> str:
        if instance_id:
            return host_for_custom_id(instance_id, [h.name for h in serving if arch is None or h.arch == arch])
        chosen = choose_host([dataclasses.replace(h, live=self.ledger.live(h.name)) for h in serving], arch)
        if chosen is None:
            raise CapacityExceeded("every host is at its live-instance limit", 5.0)
        return chosen.name

    async def create(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Check a create completely (the same for both APIs), admit it, run it on the hosts."""
        if request.get("snapshot_id") is not None:
            return await self._restore(request)
        request = {**request, "env_type": releases.with_version(request.get("env_type"), request.get("params"))}
        self._check_env(request["env_type"])
        count = bounds.check_count(request.get("count", 1), self.config.max_group)
        instance_id = bounds.check_instance_id(request.get("instance_id"))
        if instance_id and count != 1:
            raise bounds.invalid("instance_id can only be given with count = 1")
        bounds.check_json(request.get("params") or {}, self.limits, "params")
        placed = self._admit(count, request.get("arch"), instance_id, request["env_type"])
        group_id = uuid.uuid4().hex if count > 1 else None
        self.creates_in_flight += count
        try:
            return await self._create_group({**request, "instance_id": instance_id, "group_id": group_id}, placed)
        finally:
            self.creates_in_flight -= count

    async def _restore(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Instances rebuilt from a snapshot, on the host that keeps it (a snapshot never leaves its host)."""
        snapshot_id = request["snapshot_id"]
        host = self._snapshot_host(snapshot_id)
        count = bounds.check_count(request.get("count", 1), self.config.max_group)
        if request.get("instance_id") is not None:
            raise bounds.invalid("instance_id cannot be given with snapshot_id (restored instances get new ids)")
        if request.get("arch") not in (None, self.hosts.arch.get(host)):
            raise UnavailableArchitecture(f"snapshot {snapshot_id!r} is kept on a {self.hosts.arch.get(host)} host")
        self._check_total(count)
        group_id = uuid.uuid4().hex if count > 1 else None
        placed = [(host, self.ledger.admit(host)) for _ in range(count)]
        self.creates_in_flight += count
        try:
            return await self._create_group({**request, "group_id": group_id}, placed)
        finally:
            self.creates_in_flight -= count

    def _check_total(self, count: int) -> None:
        c = self.config
        if self.creates_in_flight + count > c.max_creates_in_flight:
            raise Busy(f"{self.creates_in_flight} creations are in flight (limit {c.max_creates_in_flight})", 1.0)
        if self.ledger.total() + count > c.max_live:
            raise CapacityExceeded(f"the service holds its maximum of {c.max_live} live instances", 5.0)

    def _snapshot_host(self, snapshot_id: object) -> str:
        if not is_snapshot_id(snapshot_id):
            raise UnknownSnapshot(f"no snapshot {snapshot_id!r}: snapshot ids look like 'host-...--s<32 hex>'")
        assert isinstance(snapshot_id, str)
        host = snapshot_id.partition(ID_SEPARATOR)[0]
        if host not in self.hosts.handles:
            raise UnknownSnapshot(f"no snapshot {snapshot_id!r}: the host that kept it is gone")
        return host

    async def fork(self, instance_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """``count`` copies of an instance's exact state, on its host, or on hosts of another architecture
        when ``arch`` asks for one (the episode crosses as data); they share a new group id."""
        count = bounds.check_count(request.get("count", 1), self.config.max_group)
        host = await self._host(instance_id)
        arch = request.get("arch")
        if arch is not None and arch != self.hosts.arch.get(host):
            return await self._fork_across(host, instance_id, request, count, arch)
        self._check_total(count)
        tickets = [self.ledger.admit(host) for _ in range(count)]
        group_id = uuid.uuid4().hex
        try:
            made: list[dict[str, Any]] = await self.hosts.call(
                host, "fork", instance_id, {**request, "count": count, "group_id": group_id}
            )
        except BaseException:
            for ticket in tickets:
                self.ledger.failed(ticket)
            raise
        for ticket in tickets:
            self.ledger.completed(ticket)
        for item in made:
            self._routes[item["instance_id"]] = item.pop("host")
        return {"instances": made, "group_id": group_id}

    async def _fork_across(
        self, host: str, instance_id: str, request: dict[str, Any], count: int, arch: str
    ) -> dict[str, Any]:
        """The source's episode record (family, task, params, the actions so far: data, no object state) from
        its host, rebuilt on hosts of ``arch`` — placed and admitted like creates."""
        record: dict[str, Any] = await self.hosts.call(host, "export_record", instance_id)
        placed = self._admit(count, arch, None, record["family"])
        group_id = uuid.uuid4().hex
        adopt = {"record": record, "origin": instance_id, "group_id": group_id,
                 "idle_ttl": request.get("idle_ttl"), "max_lifetime": request.get("max_lifetime")}  # fmt: skip
        self.creates_in_flight += count
        try:
            made = await self._create_group(adopt, placed, method="adopt")
        finally:
            self.creates_in_flight -= count
        create_only = ("state", "info", "host", "arch")  # a fork answers what a fork on the same host answers
        instances = [{k: v for k, v in item.items() if k not in create_only} for item in made]
        return {"instances": instances, "group_id": group_id}

    async def snapshot(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.hosts.call(await self._host(instance_id), "snapshot", instance_id)
        return result

    async def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.hosts.call(self._snapshot_host(snapshot_id), "get_snapshot", snapshot_id)
        return result

    async def release_snapshot(self, snapshot_id: str) -> bool:
        try:
            host = self._snapshot_host(snapshot_id)
        except UnknownSnapshot:
            return False
        released: bool = await self.hosts.call(host, "release_snapshot", snapshot_id)
        return released

    async def _create_one(self, home: str, ticket: int, request: dict[str, Any], method: str) -> dict[str, Any]:
        try:
            made: dict[str, Any] = await self.hosts.call(home, method, request)
        except BaseException:
            self.ledger.failed(ticket)
            raise
        self.ledger.completed(ticket)  # as the answer arrives, with no await in between: see service.admission
        return made

    async def _create_group(
        self, request: dict[str, Any], placed: list[tuple[str, int]], method: str = "create"
    ) -> list[dict[str, Any]]:
        results = await asyncio.gather(
            *(self._create_one(home, ticket, request, method) for home, ticket in placed), return_exceptions=True
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
        if is_generated_id(instance_id):
            named = instance_id.partition(ID_SEPARATOR)[0]
            if named in self.hosts.handles:
                return named
            raise InstanceLost(f"instance {instance_id!r} is lost: the host that held it ({named}) is gone")
        host = self._routes.get(instance_id)
        if host is None:
            host = await self.hosts.find(instance_id) if could_exist(instance_id) else None
            if host is None:
                raise UnknownInstance(f"no live instance {instance_id!r} (never created, or released)")
            self._routes[instance_id] = host
        return host

    async def get(self, instance_id: str) -> dict[str, Any]:
        return await self.hosts.call(await self._host(instance_id), "get", instance_id)

    async def step(
        self, instance_id: str, action: object, request_id: object = None, timeout: object = None
    ) -> dict[str, Any]:
        if not isinstance(action, dict):
            raise bounds.invalid("action must be an assistant message object, e.g. {'role': 'assistant', ...}")
        request_id = bounds.check_request_id(request_id)
        timeout = bounds.check_timeout(timeout, self.limits)
        bounds.check_json(action, self.limits, "action")
        return await self.hosts.call(await self._host(instance_id), "step", instance_id, action, request_id, timeout)

    async def info(self, instance_id: str) -> dict[str, Any]:
        return await self.hosts.call(await self._host(instance_id), "info", instance_id)

    async def evaluate(self, instance_id: str, params: object = None) -> dict[str, Any]:
        if params is not None and not isinstance(params, dict):
            raise bounds.invalid("params must be an object, e.g. {'sparse': true}")
        bounds.check_json(params or {}, self.limits, "params")
        return await self.hosts.call(await self._host(instance_id), "evaluate", instance_id, params or {})

    async def release(self, instance_id: str) -> bool:
        try:
            host = await self._host(instance_id)
        except UnknownInstance:
            return False
        self._routes.pop(instance_id, None)
        released: bool = await self.hosts.call(host, "release", instance_id, "explicit")
        if released:
            self.ledger.released(host)
        return released

    async def trajectory(self, instance_id: str) -> dict[str, Any]:
        """An instance's transcript, live or among the finished ones its host keeps."""
        try:
            host = await self._host(instance_id)
        except UnknownInstance:  # released: a custom id no longer routes; any host may keep its transcript
            for load in self.serving():
                with contextlib.suppress(UnknownInstance):
                    found: dict[str, Any] = await self.hosts.call(load.name, "trajectory", instance_id)
                    return found
            raise
        result: dict[str, Any] = await self.hosts.call(host, "trajectory", instance_id)
        return result

    async def trajectories(self, status: str | None, failed: bool, infra: bool) -> list[dict[str, Any]]:
        """Every host's transcript summaries, newest activity first."""
        if status not in (None, "live", "finished"):
            raise bounds.invalid(f"status must be 'live' or 'finished', got {status!r}")
        names = [load.name for load in self.serving()]
        found = await asyncio.gather(*(self.hosts.call(n, "trajectories", status, failed, infra) for n in names))
        return sorted((s for summaries in found for s in summaries), key=lambda s: s["last_at"], reverse=True)


def _splits(name: str) -> list[str]:
    """The splits of a served name's family (a family this front does not know, e.g. a newer host's: the usual)."""
    declared = FAMILIES.get(releases.family_of(name))
    return list(declared.splits if declared is not None else SPLITS)
