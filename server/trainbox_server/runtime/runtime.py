"""The environment runtime: routes list/create/step/evaluate/close to the family pools' worker processes.

It owns the instance table (instance id → worker) and remembers, for a while, instances that were lost
with their worker, so a later call says *lost* (infrastructure) rather than *unknown* (caller error).

Co-tenants survive a killed worker. A worker that hosts many instances (BFCL) is killed when one of them
runs past its timeout or exhausts memory; the others did nothing wrong. The runtime keeps each such
instance's episode as data — its task, create params and the actions of its completed steps — and
restores it in a fresh worker by replaying them (BFCL's environments are deterministic: their randomness
is seeded per scenario). Calls that were queued behind the offending one never ran: they wait for the
restore and run then. Only the offending instance answers ``timeout`` / ``instance_lost``.

Rewards of families that cannot see their answers (AppWorld: model code runs in a sandbox without the
ground truth) come from the family's evaluator process: the worker hands the world's state over as data.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from trainbox_server.envs import releases
from trainbox_server.envs.base import SPLITS, Evaluation, Message, StepResult
from trainbox_server.envs.registry import FAMILIES
from trainbox_server.errors import (
    DuplicateInstance,
    InstanceLost,
    NotForkable,
    RequestError,
    StepTimeout,
    TrainboxError,
    UnknownEnvironment,
    UnknownInstance,
    UnknownSplit,
)
from trainbox_server.runtime.memory import emptied_table
from trainbox_server.runtime.pool import FamilyConfig, FamilyPool
from trainbox_server.runtime.process import WorkerProcess, default_python
from trainbox_server.runtime.procfs import tree_rss_kib

log = logging.getLogger(__name__)
LOST_MEMORY = 100_000  # how many lost instance ids are remembered
MAX_REPLAY_STEPS = 10_000  # an episode longer than this is not restored (it is lost with its worker)


def default_families() -> dict[str, FamilyConfig]:
    """Every family of the registry, with its pool defaults."""
    return {name: FamilyConfig(name, **dataclasses.asdict(family.pool)) for name, family in FAMILIES.items()}


@dataclass
class RuntimeConfig:
    families: dict[str, FamilyConfig] = field(default_factory=default_families)
    # Families to pre-start at ``start()``; others start on first use.
    prestart: tuple[str, ...] = ()


@dataclass
class Episode:
    """What the runtime knows of one live instance, beyond its worker: enough to restore or judge it."""

    family: str
    task_id: str
    params: dict[str, Any]
    actions: list[Message] | None = None  # completed steps (None: too many to replay)
    terminated: bool = False
    restoring: asyncio.Future[None] | None = None


@dataclass
class CreatedInstance:
    instance_id: str
    family: str
    task_id: str
    messages: list[Message]
    info: dict[str, Any]
    worker_pid: int


class Runtime:
    """``async with Runtime(config) as rt: ...`` — see the module docstring."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.pools: dict[str, FamilyPool] = {}
        self.instances: dict[str, tuple[FamilyPool, WorkerProcess]] = {}
        self.lost: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.episodes: dict[str, Episode] = {}
        self.restored = 0  # co-tenants restored after their worker was killed
        self._task_cache: dict[tuple[str, str], list[str]] = {}

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_all()

    async def start(self) -> None:
        """Pre-start the pools of ``config.prestart`` (those whose interpreter is installed)."""
        for name in self.config.prestart:
            try:
                self._pool(name)
            except TrainboxError as exc:
                log.warning("not pre-starting %s: %s", name, exc)

    def families(self) -> list[str]:
        """Every environment name served (a family served in releases: its plain name and each release)."""
        return releases.served_names(n for n in self.config.families if releases.family_of(n) in FAMILIES)

    def installed(self) -> list[str]:
        """The served names whose interpreter is on this machine (an image may carry some families only)."""
        names = []
        for name in self.families():
            config = self._config(name)
            if config is not None and os.path.exists(config.python or default_python(name)):
                names.append(name)
        return names

    def _config(self, name: str) -> FamilyConfig | None:
        """The pool settings of a served name: its own entry, else its family's (applied to each release)."""
        if name not in self.families():
            return None
        config = self.config.families.get(name) or self.config.families.get(releases.family_of(name))
        return None if config is None else dataclasses.replace(config, name=name)

    def _pool(self, family: str) -> FamilyPool:
        name = releases.canonical(family) if isinstance(family, str) else family
        pool = self.pools.get(name)
        if pool is None:
            config = self._config(name) if isinstance(name, str) else None
            if config is None:
                raise UnknownEnvironment(f"unknown environment {family!r}; available: {self.families()}")
            pool = FamilyPool(config, self._worker_died)
            pool.start()  # raises EnvironmentUnavailable if the family is not installed
            self.pools[name] = pool
        return pool

    def pool(self, family: str) -> FamilyPool:
        """The pool serving an environment name (``bfcl`` is the pool of its current release)."""
        return self._pool(family)

    async def task_ids(self, family: str, split: str) -> list[str]:
        declared = FAMILIES.get(releases.family_of(family)) if isinstance(family, str) else None
        splits = declared.splits if declared is not None else SPLITS  # an unknown family is refused just below
        if split not in splits:
            raise UnknownSplit(f"unknown split {split!r}; splits are {list(splits)}")
        key = (self._pool(family).config.name, split)
        if key not in self._task_cache:
            pool = self._pool(family)
            worker = await pool.any_worker()
            self._task_cache[key] = await worker.request("tasks", {"split": split}, pool.config.create_timeout)
        return list(self._task_cache[key])

    async def create(
        self, family: str, task_id: str, params: dict[str, Any] | None = None, instance_id: str | None = None
    ) -> CreatedInstance:
        pool = self._pool(releases.with_version(family, params))
        family = pool.config.name  # canonical: a lease or snapshot of "bfcl" names the release it runs
        instance_id = instance_id or uuid.uuid4().hex
        if instance_id in self.instances:
            raise DuplicateInstance(f"instance id {instance_id!r} is already in use")
        self.lost.pop(instance_id, None)
        args = {"instance_id": instance_id, "task_id": task_id, "params": params or {}}
        for attempt in (1, 2):  # a worker lost under a create (not by it) is worth one more try
            worker = await pool.acquire(instance_id)
            self.instances[instance_id] = (pool, worker)
            try:
                reply = await worker.request("create", args, pool.config.create_timeout)
                self.episodes[instance_id] = Episode(family, task_id, dict(params or {}), [])
                break
            except InstanceLost:
                self._drop_failed_create(pool, worker, instance_id)
                if attempt == 2:
                    raise
            except BaseException:
                self._drop_failed_create(pool, worker, instance_id)
                raise
        return CreatedInstance(instance_id, family, task_id, reply["messages"], reply["info"], worker.pid)

    def _drop_failed_create(self, pool: FamilyPool, worker: WorkerProcess, instance_id: str) -> None:
        """A failed create leaves nothing behind."""
        self.instances.pop(instance_id, None)
        self.lost.pop(instance_id, None)
        self.episodes.pop(instance_id, None)
        pool.instance_closed(worker, instance_id)

    def _route(self, instance_id: str) -> tuple[FamilyPool, WorkerProcess]:
        try:
            return self.instances[instance_id]
        except KeyError:
            if instance_id in self.lost:
                raise InstanceLost(f"instance {instance_id!r} was lost: {self.lost[instance_id]}") from None
            raise UnknownInstance(f"no live instance {instance_id!r} (never created, or released)") from None

    async def _settled(self, instance_id: str) -> tuple[FamilyPool, WorkerProcess]:
        """The instance's pool and worker, once a restore in progress (see the module docstring) is done."""
        episode = self.episodes.get(instance_id)
        if episode is not None and episode.restoring is not None:
            await asyncio.shield(episode.restoring)
        return self._route(instance_id)

    async def _call(self, instance_id: str, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        for attempt in (1, 2):
            episode = self.episodes.get(instance_id)
            _, worker = await self._settled(instance_id)
            try:
                return await worker.request(op, {"instance_id": instance_id, **args}, timeout)
            except InstanceLost as exc:
                # Killed for a co-tenant's fault: this call never ran; it runs once the restore is done.
                if attempt == 1 and episode is not None and episode.restoring is not None:
                    continue
                self._forget(instance_id, str(exc))
                raise
            except StepTimeout as exc:
                self._forget(instance_id, str(exc))
                raise
        raise AssertionError("unreachable")

    async def step(self, instance_id: str, message: Message, timeout: float | None = None) -> StepResult:
        pool, _ = await self._settled(instance_id)
        reply = await self._call(instance_id, "step", {"message": message}, timeout or pool.config.step_timeout)
        episode = self.episodes.get(instance_id)
        if episode is not None:
            episode.terminated = bool(reply["terminated"])
            if episode.actions is not None:
                episode.actions.append(message)
                if len(episode.actions) > MAX_REPLAY_STEPS:
                    episode.actions = None  # too long to replay: this one is lost with its worker
        result = StepResult(reply["messages"], reply["reward"], reply["terminated"], reply["info"])
        if "state" in reply and episode is not None:
            evaluation = await self._judge(pool, episode, reply["state"], {})
            result.reward = evaluation.reward
            result.info = {**result.info, "evaluation": evaluation.details}
        return result

    async def evaluate(
        self, instance_id: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Evaluation:
        pool, _ = await self._settled(instance_id)
        timeout = timeout or pool.config.step_timeout
        episode = self.episodes.get(instance_id)
        if pool.judged and episode is not None:
            state = await self._call(instance_id, "export_state", {}, timeout)
            return await self._judge(pool, episode, state, params or {})
        reply = await self._call(instance_id, "evaluate", {"params": params or {}}, timeout)
        return Evaluation(reply["reward"], reply["details"])

    async def _judge(self, pool: FamilyPool, episode: Episode, state: Any, params: dict[str, Any]) -> Evaluation:
        """The evaluator's reward for a state; the task and the reward kind are ours, not the worker's."""
        sparse = params.get("sparse", episode.params.get("sparse", False))
        if not isinstance(sparse, bool):
            raise RequestError(f"param 'sparse' must be true or false, got {sparse!r}")
        files = state.get("files") if isinstance(state, dict) else None
        reply = await pool.judge(episode.task_id, files, sparse)
        details = {**reply["details"], "task_completed": episode.terminated}
        return Evaluation(reply["reward"], details)

    async def info(self, instance_id: str) -> dict[str, Any]:
        """What create returned as ``info`` (tool schemas and the like), kept by the worker."""
        pool, _ = await self._settled(instance_id)
        info: dict[str, Any] = await self._call(instance_id, "info", {}, pool.config.step_timeout)
        return info

    async def close(self, instance_id: str) -> bool:
        """Release an instance. False if it was not live (already released or lost)."""
        entry = self.instances.pop(instance_id, None)
        episode = self.episodes.pop(instance_id, None)
        if entry is None:
            self.lost.pop(instance_id, None)
            if episode is not None and episode.restoring is not None:
                episode.restoring.cancel()
                return True
            return False
        pool, worker = entry
        try:
            if worker.max_instances > 1:
                await worker.request("close", {"instance_id": instance_id}, pool.config.step_timeout)
        except (StepTimeout, InstanceLost):
            pass  # the instance is gone either way
        finally:
            pool.instance_closed(worker, instance_id)
            self.instances = emptied_table(self.instances)
        return True

    def _forget(self, instance_id: str, reason: str) -> None:
        entry = self.instances.pop(instance_id, None)
        self.episodes.pop(instance_id, None)
        if entry is not None:
            entry[0].instance_closed(entry[1], instance_id)
        self.lost[instance_id] = reason
        while len(self.lost) > LOST_MEMORY:
            self.lost.popitem(last=False)

    def _worker_died(self, worker: WorkerProcess) -> None:
        reason = f"its worker process {worker.death_reason}"
        for instance_id in list(worker.instances):
            if self.instances.get(instance_id, (None, None))[1] is not worker:
                continue
            pool = self.instances.pop(instance_id)[0]
            episode = self.episodes.get(instance_id)
            restorable = worker.max_instances > 1 and episode is not None and episode.actions is not None
            if instance_id == worker.culprit or not restorable or episode is None or episode.restoring:
                self.episodes.pop(instance_id, None)
                self.lost[instance_id] = reason
            else:
                episode.restoring = asyncio.ensure_future(self._restore(pool, instance_id, episode))
        worker.instances.clear()

    async def _restore(self, pool: FamilyPool, instance_id: str, episode: Episode) -> None:
        """Re-create a co-tenant of a killed worker in a live one and replay its completed steps."""
        try:
            await self._replay(pool, instance_id, episode)
            self.restored += 1
        except (TrainboxError, asyncio.CancelledError) as exc:
            log.warning("could not restore instance %s: %s", instance_id, exc)
            self.lost[instance_id] = "its worker was stopped and restoring it failed"
        finally:
            episode.restoring = None

    async def _replay(self, pool: FamilyPool, instance_id: str, episode: Episode) -> tuple[WorkerProcess, Any]:
        """Create ``instance_id`` from an episode's record in a worker with room and replay its steps; on
        failure nothing is left behind (the error propagates)."""
        worker = await pool.acquire(instance_id)
        self.instances[instance_id] = (pool, worker)
        try:
            args = {"instance_id": instance_id, "task_id": episode.task_id, "params": episode.params}
            created = await worker.request("create", args, pool.config.create_timeout)
            for message in episode.actions or ():
                await worker.request("step", {"instance_id": instance_id, "message": message}, pool.config.step_timeout)
        except BaseException:
            if self.instances.get(instance_id, (None, None))[1] is worker:
                self.instances.pop(instance_id)
                pool.instance_closed(worker, instance_id)
            self.episodes.pop(instance_id, None)
            raise
        return worker, created

    # -- fork and snapshot: an episode as data ------------------------------------------------------------

    def record(self, instance_id: str) -> dict[str, Any]:
        """An instance's episode as data (family, task, create params, the actions of its completed steps):
        enough to rebuild its exact state anywhere (BFCL's environments are deterministic; AppWorld re-runs
        the code, see the README for what that carries)."""
        self._route(instance_id)
        episode = self.episodes[instance_id]
        if episode.actions is None:
            raise NotForkable(f"instance {instance_id!r} has more than {MAX_REPLAY_STEPS} steps to replay")
        return {
            "family": episode.family,
            "task_id": episode.task_id,
            "params": episode.params,
            "actions": list(episode.actions),
            "terminated": episode.terminated,
        }

    async def fork(self, source_id: str, new_ids: list[str]) -> list[str]:
        """Copies of an instance under new ids: in the source's own process where the family copies
        instances and the worker has room (BFCL), else rebuilt from its record in a worker with room."""
        pool, worker = await self._settled(source_id)
        record = self.record(source_id)
        for new_id in new_ids:
            if new_id in self.instances:
                raise DuplicateInstance(f"instance id {new_id!r} is already in use")
        room = pool.room(worker)
        here, elsewhere = new_ids[:room], new_ids[room:]
        if here:
            worker.instances.update(here)
            try:
                await worker.request("fork", {"instance_id": source_id, "new_ids": here}, pool.config.step_timeout)
            except BaseException:
                for new_id in here:
                    pool.instance_closed(worker, new_id)
                raise
            for new_id in here:
                self.instances[new_id] = (pool, worker)
                self.episodes[new_id] = self._episode_of(record)
        try:
            await asyncio.gather(*(self.create_from(new_id, record) for new_id in elsewhere))
        except BaseException:
            await asyncio.gather(*(self.close(new_id) for new_id in new_ids), return_exceptions=True)
            raise
        return new_ids

    async def create_from(self, instance_id: str, record: dict[str, Any]) -> CreatedInstance:
        """A new instance rebuilt from an episode record (a fork elsewhere, or a snapshot)."""
        if instance_id in self.instances:
            raise DuplicateInstance(f"instance id {instance_id!r} is already in use")
        pool = self._pool(record["family"])
        episode = self._episode_of(record)
        self.episodes[instance_id] = episode
        worker, reply = await self._replay(pool, instance_id, episode)
        return CreatedInstance(
            instance_id, episode.family, episode.task_id, reply["messages"], reply["info"], worker.pid
        )

    @staticmethod
    def _episode_of(record: dict[str, Any]) -> Episode:
        return Episode(
            record["family"], record["task_id"], dict(record["params"]), list(record["actions"]),
            terminated=bool(record["terminated"]),
        )  # fmt: skip

    def recycle_grown_workers(self) -> int:
        """Replace emptied workers whose heap grew (see ``FamilyPool.recycle_grown_workers``)."""
        return sum(pool.recycle_grown_workers() for pool in self.pools.values())

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instances": len(self.instances), "time": time.time(), "families": {}}
        for name, pool in self.pools.items():
            out["families"][name] = {
                "processes": [
                    {"pid": w.pid, "instances": len(w.instances), "rss_kib": tree_rss_kib(w.pid)} for w in pool.workers
                ],
                "idle": len(pool.idle),
                "starting": pool.starting,
                "warm_hits": pool.hits,
                "warm_misses": pool.misses,
            }
        return out

    async def close_all(self) -> None:
        self.instances.clear()
        self.episodes.clear()
        pools = list(self.pools.values())
        self.pools.clear()
        await asyncio.gather(*(pool.close() for pool in pools))
