"""One instance host: owns a ``Runtime`` (the worker pools), the leases of its instances, TTL release,
idempotent steps and admission limits. Runs as a Ray actor (see ``hosts.ray_hosts``); plain class here.

Every public method returns an envelope — ``{"ok": True, "result": ...}`` or ``{"ok": False, "error": {...}}``
— so errors cross Ray as data, never as pickled tracebacks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import platform
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from trainbox_server.envs.registry import FAMILIES
from trainbox_server.envs.releases import canonical, family_of
from trainbox_server.errors import (
    CapacityExceeded,
    EpisodeOver,
    InstanceLost,
    RequestError,
    TrainboxError,
    UnknownInstance,
)
from trainbox_server.hosts.channel import ChannelServer
from trainbox_server.hosts.lifecycle import (
    IDLE_TTL,
    MAX_LIFETIME,
    MAX_LIVE_PER_HOST,
    MAX_TTL,
    RELEASE_REASONS,
    Lease,
    new_instance_id,
    validate_ttl,
)
from trainbox_server.hosts.snapshots import SnapshotStore
from trainbox_server.hosts.trajectory import TrajectoryStore
from trainbox_server.runtime import FamilyConfig, Runtime, RuntimeConfig
from trainbox_server.runtime.memory import IdleTrim, emptied_table, release_memory

log = logging.getLogger(__name__)
PRESTART = tuple(name for name, family in FAMILIES.items() if family.prestart)
REQUEST_MEMORY = 8  # step results remembered per instance, for retried request ids
# The calls that carry traffic go over the data channel (see hosts.channel); the rest over Ray.
CHANNEL_METHODS = (
    "create", "step", "evaluate", "release", "get", "info", "has", "task_ids", "stats",
    "fork", "snapshot", "get_snapshot", "release_snapshot", "trajectory", "trajectories", "export_record", "adopt",
)  # fmt: skip


@dataclass
class HostSettings:
    name: str
    arch: str = "amd64"
    idle_ttl: float = IDLE_TTL
    max_lifetime: float = MAX_LIFETIME
    max_ttl: float = MAX_TTL
    max_live: int = MAX_LIVE_PER_HOST
    sweep_interval: float = 1.0
    families: dict[str, dict[str, Any]] = field(default_factory=dict)  # FamilyConfig overrides
    environments: tuple[str, ...] = ()  # the families served (empty: every known one)
    prestart: tuple[str, ...] = PRESTART  # pools warmed at start (the others on first use)
    channel_ip: str = "127.0.0.1"  # where the data channel listens: the node's address
    snapshot_ttl: float = 3600.0
    max_snapshots: int = 10_000
    max_snapshot_bytes: int = 256 * 1024 * 1024
    trajectory_steps: int = 200  # steps kept per instance's transcript (0: no transcripts)
    trajectory_chars: int = 4000  # the longest string kept in a transcript
    trajectory_bytes: int = 256 * 1024  # the most a transcript's steps take (JSON bytes; the oldest go first)
    trajectory_keep: int = 0  # finished episodes' transcripts kept after release

    def runtime_config(self) -> RuntimeConfig:
        config = RuntimeConfig(prestart=tuple(self.prestart))
        for name, overrides in self.families.items():
            # "bfcl@2025.10.1" settles on what "bfcl" (every release) says, then its own overrides
            base = config.families.get(name) or config.families.get(family_of(name)) or FamilyConfig(name)
            config.families[name] = FamilyConfig(**{**base.__dict__, **overrides, "name": name})
        if self.environments:
            config.families = {k: v for k, v in config.families.items() if k in self.environments}
            config.prestart = tuple(f for f in config.prestart if f in self.environments)
        return config


@dataclass
class Record:
    env_type: str
    task_id: str
    lease: Lease
    steps: int = 0
    terminated: bool = False
    group_id: str | None = None  # shared by the instances of one create(count=n) or fork(count=n)
    last_reward: float | None = None  # of the last evaluate (the operator shows it on a TrainingInstance)
    results: collections.OrderedDict[str, asyncio.Future[dict[str, Any]]] = field(
        default_factory=collections.OrderedDict
    )

    def describe(self, instance_id: str) -> dict[str, Any]:
        return {
            "instance_id": instance_id,
            "env_type": self.env_type,
            "task_id": self.task_id,
            "created_at": self.lease.created_at,
            "last_used_at": self.lease.last_used_at,
            "expires_at": self.lease.expires_at(),
            "steps": self.steps,
            "terminated": self.terminated,
            "group_id": self.group_id,
            "last_reward": self.last_reward,
        }


def ok(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


async def enveloped(call: Awaitable[Any]) -> dict[str, Any]:
    try:
        return ok(await call)
    except TrainboxError as exc:
        error = exc.to_dict()
        if isinstance(exc, CapacityExceeded):
            error["retry_after"] = exc.retry_after
        return {"ok": False, "error": error}
    except ValueError as exc:  # validation of caller-supplied values
        return {"ok": False, "error": RequestError(str(exc)).to_dict()}


class InstanceHost:
    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.runtime = Runtime(settings.runtime_config())
        self.records: dict[str, Record] = {}
        self.snapshots = SnapshotStore(
            settings.name, settings.max_snapshots, settings.max_snapshot_bytes, settings.snapshot_ttl
        )
        self.transcripts = TrajectoryStore(
            settings.name,
            settings.trajectory_steps,
            settings.trajectory_chars,
            settings.trajectory_keep,
            settings.trajectory_bytes,
        )
        self.creating = 0
        self.created: collections.Counter[str] = collections.Counter()
        self.released: collections.Counter[str] = collections.Counter({r: 0 for r in RELEASE_REASONS})
        self._sweeper: asyncio.Task[None] | None = None
        self._channel: ChannelServer | None = None
        self._idle = IdleTrim()  # when the emptied host gives memory back (runtime.memory)

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def ping(self) -> dict[str, Any]:
        """Start what runs in the background (pools, TTL sweeper, the data channel); say where the channel is."""
        if self._sweeper is None:
            await self.runtime.start()
        self._ensure_sweeper()
        if self._channel is None:
            methods = {m: getattr(self, m) for m in CHANNEL_METHODS}
            self._channel = ChannelServer(methods, self.settings.channel_ip)
            await self._channel.start()
        return ok({
            "name": self.settings.name,
            "arch": self.settings.arch,
            "live": len(self.records),
            "channel": {"address": self._channel.address, "secret": self._channel.secret},
        })  # fmt: skip

    async def families(self) -> dict[str, Any]:
        return ok(self.runtime.families())

    async def task_ids(self, env_type: str, split: str) -> dict[str, Any]:
        return await enveloped(self.runtime.task_ids(env_type, split))

    async def create(self, request: dict[str, Any]) -> dict[str, Any]:
        self._ensure_sweeper()
        return await enveloped(self._create(request))

    async def _create(self, request: dict[str, Any], adopted: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new instance: from its task, from a snapshot kept here, or from an ``adopted`` episode record
        (another host's instance, forked here)."""
        s = self.settings
        self._check_room(1)
        idle_ttl = validate_ttl(request.get("idle_ttl"), s.idle_ttl, "idle_ttl", s.max_ttl)
        max_lifetime = validate_ttl(request.get("max_lifetime"), s.max_lifetime, "max_lifetime", s.max_ttl)
        instance_id = request.get("instance_id") or new_instance_id(s.name)
        source = self.snapshots.get(request["snapshot_id"]).record if request.get("snapshot_id") else adopted
        if (
            source is not None
            and request.get("env_type") not in (None, source["family"])
            and (canonical(str(request["env_type"])) != canonical(source["family"]))
        ):
            raise RequestError(
                f"snapshot {request['snapshot_id']!r} is of {source['family']!r}, "
                f"not {request['env_type']!r}: restore it without env_type or with that one"
            )
        env_type = source["family"] if source else request["env_type"]
        task_id = source["task_id"] if source else request["task_id"]
        self.creating += 1
        try:
            if source is not None:
                created = await self.runtime.create_from(instance_id, source)
            else:
                created = await self.runtime.create(env_type, task_id, request.get("params"), instance_id)
        finally:
            self.creating -= 1
        env_type = created.family  # the release that runs it ("bfcl" → "bfcl@<current release>")
        record = Record(env_type, task_id, Lease(time.time(), idle_ttl, max_lifetime), group_id=request.get("group_id"))
        if source is not None:
            record.steps, record.terminated = len(source["actions"]), bool(source["terminated"])
        self.records[instance_id] = record
        self.created[env_type] += 1
        info = {**created.info, "instance_id": instance_id, "task_id": task_id, "env_type": env_type}
        origin = None
        if request.get("snapshot_id"):
            origin = f"restored from {request['snapshot_id']}"
        elif adopted is not None:
            origin = f"forked from {request.get('origin')} on another host"
        self.transcripts.start(instance_id, env_type, task_id, created.messages, time.time(), origin)
        placed = {"host": s.name, "arch": s.arch}
        return {**record.describe(instance_id), "state": created.messages, "info": info, **placed}

    def _check_room(self, count: int) -> None:
        s = self.settings
        if len(self.records) + self.creating + count > s.max_live:
            raise CapacityExceeded(f"host {s.name} holds its maximum of {s.max_live} live instances", 2.0)

    # -- fork and snapshot --------------------------------------------------------------------------------

    async def fork(self, instance_id: str, request: dict[str, Any]) -> dict[str, Any]:
        return await enveloped(self._fork(instance_id, request))

    async def _fork(self, instance_id: str, request: dict[str, Any]) -> list[dict[str, Any]]:
        s, source = self.settings, self._record(instance_id)
        count = int(request.get("count", 1))
        self._check_room(count)
        idle_ttl = validate_ttl(request.get("idle_ttl"), s.idle_ttl, "idle_ttl", s.max_ttl)
        max_lifetime = validate_ttl(request.get("max_lifetime"), s.max_lifetime, "max_lifetime", s.max_ttl)
        new_ids = [new_instance_id(s.name) for _ in range(count)]
        source.lease.touch(time.time())
        self.creating += count
        try:
            await self.runtime.fork(instance_id, new_ids)
        finally:
            self.creating -= count
        now, made = time.time(), []
        for new_id in new_ids:
            record = Record(source.env_type, source.task_id, Lease(now, idle_ttl, max_lifetime))
            record.steps, record.terminated, record.group_id = source.steps, source.terminated, request.get("group_id")
            self.records[new_id] = record
            self.transcripts.fork(instance_id, new_id, now)
            made.append({**record.describe(new_id), "host": s.name})
        self.created[source.env_type] += count
        return made

    async def export_record(self, instance_id: str) -> dict[str, Any]:
        """An instance's episode as data, for a fork on another host (called by the front, never by clients)."""
        return await enveloped(self._export_record(instance_id))

    async def _export_record(self, instance_id: str) -> dict[str, Any]:
        self._record(instance_id).lease.touch(time.time())
        return self.runtime.record(instance_id)

    async def adopt(self, request: dict[str, Any]) -> dict[str, Any]:
        """A new instance rebuilt here from another host's episode record (``request["record"]``, from
        ``export_record``): the front's cross-host fork. Clients cannot reach it: no route sends a record."""
        self._ensure_sweeper()
        return await enveloped(self._create(request, request["record"]))

    async def snapshot(self, instance_id: str) -> dict[str, Any]:
        return await enveloped(self._snapshot(instance_id))

    async def _snapshot(self, instance_id: str) -> dict[str, Any]:
        self._record(instance_id).lease.touch(time.time())
        snapshot_id, snapshot = self.snapshots.put(self.runtime.record(instance_id), time.time())
        return snapshot.describe(snapshot_id)

    async def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return await enveloped(self._get_snapshot(snapshot_id))

    async def _get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return self.snapshots.get(snapshot_id).describe(snapshot_id)

    async def release_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return ok(self.snapshots.drop(snapshot_id))

    def _record(self, instance_id: str) -> Record:
        record = self.records.get(instance_id)
        if record is None:
            if instance_id in self.runtime.lost:
                raise InstanceLost(f"instance {instance_id!r} was lost: {self.runtime.lost[instance_id]}")
            raise UnknownInstance(f"no live instance {instance_id!r}")
        return record

    async def get(self, instance_id: str) -> dict[str, Any]:
        return await enveloped(self._get(instance_id))

    async def _get(self, instance_id: str) -> dict[str, Any]:
        return self._record(instance_id).describe(instance_id)

    async def info(self, instance_id: str) -> dict[str, Any]:
        return await enveloped(self._info(instance_id))

    async def _info(self, instance_id: str) -> dict[str, Any]:
        self._record(instance_id)
        return await self.runtime.info(instance_id)

    async def has(self, instance_id: str) -> bool:
        return instance_id in self.records

    async def step(
        self, instance_id: str, action: dict[str, Any], request_id: str | None, timeout: float | None
    ) -> dict[str, Any]:
        return await enveloped(self._step(instance_id, action, request_id, timeout))

    async def _step(
        self, instance_id: str, action: dict[str, Any], request_id: str | None, timeout: float | None
    ) -> dict[str, Any]:
        record = self._record(instance_id)
        if request_id is not None and not isinstance(request_id, str):
            raise RequestError("request_id must be a string")
        if request_id and request_id in record.results:
            return await asyncio.shield(record.results[request_id])  # a retry: the first result
        if record.terminated:
            raise EpisodeOver(f"instance {instance_id!r} has terminated; evaluate or release it")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if request_id:
            record.results[request_id] = future
            while len(record.results) > REQUEST_MEMORY:
                record.results.popitem(last=False)
        record.lease.touch(time.time())
        try:
            result = await self._run_step(instance_id, record, action, timeout)
        except BaseException as exc:
            if isinstance(exc, TrainboxError):
                self.transcripts.error(instance_id, action, exc.to_dict(), time.time())
            future.set_exception(exc)
            future.exception()
            record.results.pop(request_id or "", None)  # a failed step may be retried for real
            self._drop_if_lost(instance_id)
            raise
        future.set_result(result)
        return result

    async def _run_step(
        self, instance_id: str, record: Record, action: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        result = await self.runtime.step(instance_id, action, timeout)
        record.steps += 1
        record.terminated = result.terminated
        record.lease.touch(time.time())
        answer = {
            "state": result.messages,
            "reward": result.reward,
            "is_terminated": result.terminated,
            "info": result.info,
            "group_id": record.group_id,
            "env_type": record.env_type,  # for the front's metrics; it pops this before answering
        }
        self.transcripts.step(instance_id, action, answer, time.time())
        return answer

    async def evaluate(self, instance_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return await enveloped(self._evaluate(instance_id, params))

    async def _evaluate(self, instance_id: str, params: dict[str, Any]) -> dict[str, Any]:
        record = self._record(instance_id)
        record.lease.touch(time.time())
        try:
            evaluation = await self.runtime.evaluate(instance_id, params)
        except TrainboxError as exc:
            self.transcripts.error(instance_id, None, exc.to_dict(), time.time(), "evaluate")
            self._drop_if_lost(instance_id)
            raise
        record.last_reward = evaluation.reward
        self.transcripts.evaluation(instance_id, params, evaluation.reward, evaluation.details, time.time())
        return {
            "reward": evaluation.reward,
            "details": evaluation.details,
            "group_id": record.group_id,
            "env_type": record.env_type,
        }

    async def release(self, instance_id: str, reason: str = "explicit") -> dict[str, Any]:
        return await enveloped(self._release(instance_id, reason))

    async def _release(self, instance_id: str, reason: str) -> bool:
        record = self.records.pop(instance_id, None)
        if record is None:
            return False
        self.released[reason] += 1
        self.transcripts.finish(instance_id, reason, time.time())
        await self.runtime.close(instance_id)
        self.records = emptied_table(self.records)
        if not self.records:
            self._idle.emptied()  # the sweeper trims once the host has stayed empty a moment
        return True

    def _drop_if_lost(self, instance_id: str) -> None:
        if instance_id in self.runtime.lost and self.records.pop(instance_id, None) is not None:
            self.released["lost"] += 1
            self.transcripts.finish(instance_id, "lost", time.time())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.sweep(time.time())
            except Exception:  # the sweeper must outlive any one bad release
                log.exception("TTL sweep failed")
            if self._idle.observe(len(self.records) + self.creating):
                release_memory()
            self.runtime.recycle_grown_workers()

    async def trajectory(self, instance_id: str) -> dict[str, Any]:
        return await enveloped(self._trajectory(instance_id))

    async def _trajectory(self, instance_id: str) -> dict[str, Any]:
        transcript = self.transcripts.get(instance_id)
        if transcript is None:
            if instance_id in self.records:
                raise UnknownInstance(f"instance {instance_id!r} has no transcript: TRAINBOX_TRAJECTORY_STEPS is 0")
            raise UnknownInstance(
                f"no transcript of {instance_id!r}: never created, or released (TRAINBOX_TRAJECTORY_KEEP keeps "
                f"the last {self.transcripts.keep_finished} finished)"
            )
        return transcript.to_dict()

    async def trajectories(self, status: str | None, failed: bool, infra: bool) -> dict[str, Any]:
        return ok(self.transcripts.summaries(status, failed, infra))

    async def sweep(self, now: float) -> list[tuple[str, str]]:
        self.snapshots.expire(now)
        """Release every instance past a TTL, and account for instances lost with their worker."""
        for instance_id in [i for i in self.records if i in self.runtime.lost]:
            self._drop_if_lost(instance_id)
        expired = [(i, r.lease.expiry_reason(now)) for i, r in self.records.items()]
        due = [(i, reason) for i, reason in expired if reason]
        for instance_id, reason in due:
            with contextlib.suppress(TrainboxError):
                await self._release(instance_id, reason)
        return due

    async def stats(self) -> dict[str, Any]:
        runtime = self.runtime.stats()
        return ok({
            "name": self.settings.name,
            "arch": self.settings.arch,
            "machine": platform.machine(),  # as the process sees its CPU (aarch64 under emulation too)
            "node_ip": self.settings.channel_ip,
            "pid": os.getpid(),
            "live": len(self.records),
            "capacity": self.settings.max_live,
            "creating": self.creating,
            "created": dict(self.created),
            "released": dict(self.released),
            "live_by_env": dict(collections.Counter(r.env_type for r in self.records.values())),
            "installed": self.runtime.installed(),  # placement sends a family only where it can run
            "runtime": runtime,
        })  # fmt: skip

    async def shutdown(self) -> dict[str, Any]:
        """Release every instance and stop the workers (the in-process hosts' teardown)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for instance_id in list(self.records):
            await self._release(instance_id, "explicit")
        await self.runtime.close_all()
        return ok(True)
