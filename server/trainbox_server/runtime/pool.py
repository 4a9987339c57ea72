"""Worker pools, one per family: warm pre-started processes, placement of instances, replacement.

Two placement modes, chosen by what the family's worker reports (``max_instances``):

* many instances per process (BFCL): instances spread over up to ``processes`` workers, least-loaded first;
* one instance per process (AppWorld): each create takes a warm, pre-imported worker; closing the
  instance retires its process (no state can leak into the next episode).

The pool keeps ``warm`` idle processes ready (plus one per waiting create) and refills in the background.
A process that dies is dropped; the runtime turns its instances into ``InstanceLost``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from trainbox_server.envs.registry import FAMILIES
from trainbox_server.envs.releases import env_suffix, family_of
from trainbox_server.errors import EnvironmentUnavailable, InfraError
from trainbox_server.runtime import forkclient, sandbox
from trainbox_server.runtime.memory import RECYCLE_AFTER_SECONDS, RECYCLE_GROWTH_KIB
from trainbox_server.runtime.process import WorkerProcess, WorkerSpec, default_python
from trainbox_server.runtime.procfs import tree_rss_kib

log = logging.getLogger(__name__)


@dataclass
class FamilyConfig:
    """Tunables of one family's pool. Defaults suit a 2-core machine."""

    name: str
    python: str = ""
    warm: int = 1
    processes: int = 2
    max_instances_per_process: int = 0  # 0: what the family reports
    step_timeout: float = 30.0
    create_timeout: float = 120.0
    memory_mb: int = 4096
    max_concurrent_starts: int = 2
    env: dict[str, str] = field(default_factory=dict)
    sandboxed: bool | None = None  # None: sandboxed if the family executes model code (and TRAINBOX_SANDBOX≠off)

    def spec(self, judge: bool = False) -> WorkerSpec:
        """How to start one worker (or the evaluator); read at every start, so new data is seen."""
        declared = FAMILIES.get(family_of(self.name))
        executes_code = declared is not None and declared.executes_code
        sandboxed = (self.sandboxed if self.sandboxed is not None else executes_code) and sandbox.enabled()
        binds, env = family_view(self.name, self.env, judge) if sandboxed else ((), {})
        return WorkerSpec(
            family=self.name,
            python=self.python or default_python(self.name),
            memory_mb=self.memory_mb,
            start_timeout=self.create_timeout,
            env={**self.env, **env},
            judge=judge,
            sandboxed=sandboxed,
            binds=binds,
        )


def family_view(family: str, env: dict[str, str], judge: bool) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """The read-only data binds of a sandboxed family's worker (or evaluator), and the variable naming them
    inside the sandbox (the family's registry entry names its ``data_view``)."""
    declared = FAMILIES.get(family_of(family))
    if declared is None or declared.data_view is None or declared.data is None:
        return (), {}
    view = importlib.import_module(declared.data_view)
    binds = view.binds(declared.data.root(env), judge)  # none without data: the worker reports it itself
    return tuple(binds), {declared.data.variable: view.SANDBOX_ROOT}


BRING = -1  # bring another process into service
WAIT = -2  # wait for one on its way


def placement(loads: list[int], caps: list[int], taking: int, processes: int) -> int:
    """Where a many-instance family's next instance goes: the index of the live worker to host it (the least
    loaded with room), ``BRING`` or ``WAIT``. ``loads``/``caps``: each live worker's instances and most
    instances; ``taking``: processes being brought into service; ``processes``: the pool's configured count.

    Instances spread over up to ``processes`` processes. Processes on their way count as in service:
    otherwise every create of a burst brings its own, the surplus retires as it empties, and under steady
    concurrency the pool starts and retires processes without end (measured before this rule: 78 starts,
    ≈ 0.7 s of CPU each, in a 10,000-episode soak with 2 processes configured). With no room and enough
    on the way, wait for them; with no room and none on the way (all full), bring one more.
    """
    room = [i for i, (load, cap) in enumerate(zip(loads, caps, strict=True)) if load < cap]
    in_service = len(loads) + taking
    if room and (in_service >= processes or any(loads[i] == 0 for i in room)):
        return min(room, key=lambda i: loads[i])
    if in_service < processes or not taking:
        return BRING
    return WAIT


class FamilyPool:
    """The processes of one family. ``acquire`` gives a worker with room for one more instance."""

    def __init__(self, config: FamilyConfig, on_worker_death: Callable[[WorkerProcess], None]) -> None:
        self.config = config
        self.python = config.python or default_python(config.name)
        self._judge: WorkerProcess | None = None
        self._judge_lock = asyncio.Lock()
        self._on_worker_death = on_worker_death
        self.idle: collections.deque[WorkerProcess] = collections.deque()
        self.active: list[WorkerProcess] = []
        self.starting = 0
        self.waiters = 0
        self.taking = 0  # acquires waiting for a worker of their own (a process coming into service)
        self.start_error = ""
        self._retry_at = 0.0  # after a failed start, no new start before this (monotonic) time
        self._failures = 0
        self.hits = 0
        self.misses = 0
        self._changed = asyncio.Event()
        self._start_slots = asyncio.Semaphore(config.max_concurrent_starts)
        self._tasks: set[asyncio.Task[None]] = set()
        self._starts: set[asyncio.Task[None]] = set()  # of _tasks: the worker starts (cancelled at close)
        self._closed = False
        self._multi: bool | None = None  # learnt from the first worker's ready message
        self._forkserver: forkclient.ForkServer | None = None
        self._forkserver_failed = False

    @property
    def forks(self) -> bool:
        """Its workers may fork from a warm server (the registry says its preload is fork-safe)."""
        declared = FAMILIES.get(family_of(self.config.name))
        return declared is not None and declared.forks

    @property
    def judged(self) -> bool:
        """Rewards come from the family's evaluator process (see ``judge``)."""
        declared = FAMILIES.get(family_of(self.config.name))
        return declared is not None and declared.judge_module is not None

    def check_installed(self) -> None:
        if not os.path.exists(self.python):
            raise EnvironmentUnavailable(
                f"environment {self.config.name!r} is not installed here (no interpreter at "
                f"{self.python}); run `make install` or set TRAINBOX_PYTHON_{env_suffix(self.config.name)}"
            )

    def start(self) -> None:
        self.check_installed()
        self._refill()
        if self.judged:
            self._starts.add(self._spawn_task(self._warm_judge()))

    async def _warm_judge(self) -> None:
        with contextlib.suppress(InfraError):
            await self._judge_worker()

    async def _judge_worker(self) -> WorkerProcess:
        """The family's evaluator process (started on first use, replaced when it dies)."""
        async with self._judge_lock:
            if self._judge is None or self._judge.dead:
                self._judge = await self._start_worker(judge=True)
            return self._judge

    async def judge(self, task_id: str, state: Any, sparse: bool) -> dict[str, Any]:
        """The reward of a state, from the evaluator process (it alone reads the ground truth)."""
        worker = await self._judge_worker()
        args = {"task_id": task_id, "state": state, "sparse": sparse}
        result: dict[str, Any] = await worker.request("judge", args, self.config.create_timeout)
        return result

    @property
    def workers(self) -> list[WorkerProcess]:
        return [*self.idle, *self.active]

    async def acquire(self, instance_id: str) -> WorkerProcess:
        """A live worker with a slot reserved for ``instance_id``."""
        self.check_installed()
        while self._multi:
            live = [w for w in self.active if not w.dead]
            cap = self.config.max_instances_per_process
            choice = placement([len(w.instances) for w in live], [cap or w.max_instances for w in live],
                               self.taking, self.config.processes)  # fmt: skip
            if choice == BRING:
                break
            if choice == WAIT:
                self._changed.clear()
                await self._changed.wait()
                continue
            live[choice].instances.add(instance_id)
            return live[choice]
        self.taking += 1
        try:
            worker = await self._take_idle()
        finally:
            self.taking -= 1
            self._changed.set()  # acquires waiting for a process on its way look again
        worker.instances.add(instance_id)
        if worker.max_instances > 1:
            self._multi = True
        self.active.append(worker)
        return worker

    def room(self, worker: WorkerProcess) -> int:
        """How many more instances ``worker`` may host (0 for one-instance families and dead workers)."""
        if worker.dead or worker.max_instances <= 1:
            return 0
        return max(0, (self.config.max_instances_per_process or worker.max_instances) - len(worker.instances))

    async def _take_idle(self) -> WorkerProcess:
        self.waiters += 1
        try:
            if not self.idle:
                self.misses += 1
            else:
                self.hits += 1
            while True:
                while self.idle:
                    worker = self.idle.popleft()
                    if not worker.dead:
                        return worker
                if self.start_error and not self.starting:
                    raise EnvironmentUnavailable(f"could not start a {self.config.name!r} worker: {self.start_error}")
                self._refill()
                self._changed.clear()
                await self._changed.wait()
        finally:
            self.waiters -= 1
            self._refill()

    def instance_closed(self, worker: WorkerProcess, instance_id: str) -> None:
        worker.instances.discard(instance_id)
        if worker.instances:
            return
        worker.emptied_at = time.monotonic()
        surplus = sum(not w.dead for w in self.active) > self.config.processes
        if worker.max_instances <= 1 or surplus:
            self._retire(worker)

    def recycle_grown_workers(self) -> int:
        """Replace many-instance workers that emptied and stayed grown (the policy: ``runtime.memory``): a fresh
        warm process hands the burst's heap back to the OS."""
        now, recycled = time.monotonic(), 0
        for worker in list(self.active):
            if worker.instances or worker.dead or now - worker.emptied_at < RECYCLE_AFTER_SECONDS:
                continue
            if tree_rss_kib(worker.pid) - worker.ready_rss_kib > RECYCLE_GROWTH_KIB:
                self._retire(worker)
                recycled += 1
        return recycled

    async def any_worker(self) -> WorkerProcess:
        """A worker to ask family-wide questions (the task list); keeps it in the pool."""
        for worker in self.workers:
            if not worker.dead:
                return worker
        worker = await self._take_idle()
        self.idle.appendleft(worker)
        return worker

    def _retire(self, worker: WorkerProcess) -> None:
        with contextlib.suppress(ValueError):
            self.active.remove(worker)
        worker.on_death = None  # a retirement, not a death: its instances are already closed
        self._spawn_task(worker.stop())
        self._refill()

    def worker_died(self, worker: WorkerProcess) -> None:
        with contextlib.suppress(ValueError):
            self.active.remove(worker)
        with contextlib.suppress(ValueError):
            self.idle.remove(worker)
        log.warning("%s worker %s died: %s", self.config.name, worker.pid, worker.death_reason)
        self._refill()

    def _refill(self) -> None:
        if self._closed or (self.start_error and time.monotonic() < self._retry_at):
            return
        want = self.config.warm + self.waiters
        if self._multi:  # processes serving many instances count toward the warm capacity too
            want -= sum(not w.dead for w in self.active)
        while len(self.idle) + self.starting < want:
            self.starting += 1
            self._starts.add(self._spawn_task(self._start_one()))

    async def _start_worker(self, judge: bool = False) -> WorkerProcess:
        """A fresh instance worker (or the evaluator): forked from the family's fork server where the family
        forks (sandboxed families as root; the others always), else its own interpreter. A fork server that
        never comes up is logged once and not tried again; a failed start is tried once more (a server that
        died under it is replaced first)."""
        spec = self.config.spec(judge=judge)
        if (
            self._forkserver is None
            and self.forks
            and not self._forkserver_failed
            and forkclient.enabled(spec.sandboxed)
        ):
            instance_spec = self.config.spec()  # the server's environment is an instance worker's, never the judge's
            self._forkserver = forkclient.ForkServer(spec.family, spec.python, instance_spec.forkserver_env())
        for attempt in (1, 2):
            server = self._forkserver
            if server is None:
                break
            try:
                return await WorkerProcess.start(spec, server)
            except InfraError as exc:
                if not server.ever_ready:
                    log.warning("%s: no fork server (%s); workers start their own interpreter", spec.family, exc)
                    self._forkserver_failed = True
                    await server.close()
                    self._forkserver = None
                    break
                if attempt == 2:
                    raise
                # Most likely the server died under this start (a fork that fails by itself fails twice).
                log.warning("%s: a forked start failed (%s); trying once more", spec.family, exc)
        return await WorkerProcess.start(spec)

    async def _start_one(self) -> None:
        try:
            async with self._start_slots:
                worker = await self._start_worker()
            if self._closed:  # landed after close: no instance on it, nothing to stop gracefully
                worker.kill("pool closed")
                return
            worker.on_death = self._death_hook
            if self._multi is None:  # known before the first acquire takes it: a burst then shares it
                self._multi = worker.max_instances > 1
            self.idle.append(worker)
            self.start_error, self._failures = "", 0
        except (InfraError, TimeoutError, OSError) as exc:
            # Back off exponentially: a family that cannot start must not spin, and waiters get the error.
            self.start_error = str(exc) or type(exc).__name__
            self._failures += 1
            self._retry_at = time.monotonic() + min(30.0, 0.5 * 2**self._failures)
        finally:
            self.starting -= 1
            self._changed.set()

    def _death_hook(self, worker: WorkerProcess) -> None:
        self.worker_died(worker)
        self._on_worker_death(worker)

    def _spawn_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._starts.discard)
        return task

    async def close(self) -> None:
        self._closed = True
        workers = self.workers
        if self._judge is not None:
            workers.append(self._judge)
        self.idle.clear()
        self.active.clear()
        for worker in workers:
            worker.on_death = None
        # Starts in flight are cancelled (a cancelled start kills its process: AppWorld's take many seconds);
        # retirements finish, so no process or pipe outlives the pool; cancel only what hangs.
        for start in self._starts:
            start.cancel()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        if self._forkserver is not None:
            await self._forkserver.close()
        pending = list(self._tasks)
        if pending:
            _, hanging = await asyncio.wait(pending, timeout=15)
            for task in hanging:
                task.cancel()
            await asyncio.gather(*hanging, return_exceptions=True)
