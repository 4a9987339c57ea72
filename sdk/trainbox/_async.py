"""``AsyncTrainingSandbox``: the same methods as ``TrainingSandbox``, awaitable, on ``httpx.AsyncClient``.

Truly asynchronous (the reference's "async" client awaited a blocking call): thousands of rollouts can
share one event loop and one connection pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx

from . import _types
from ._base import LIMITS, Action, SandboxBase, StepBatch, instance_path, path_segment
from ._embedded import EmbeddedService
from ._exceptions import TrainboxError, UnknownInstance, error_from_response, error_from_transport
from ._retry import Safety
from ._types import CreateResult, EvaluateResult, InstanceStatus, SnapshotInfo, StepResult

__all__ = ["AsyncTrainingSandbox"]

log = logging.getLogger("trainbox")
_T = TypeVar("_T")
_R = TypeVar("_R")


class AsyncTrainingSandbox(SandboxBase):
    """Async client of a trainbox service; see ``TrainingSandbox`` for the behaviour of each method.

    ``async with AsyncTrainingSandbox() as box:`` starts an embedded service when no endpoint is
    configured, and on exit releases the instances the block created and stops that service.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        bearer_token: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        startup_timeout: float | None = None,
        release_on_close: bool = True,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            token=token,
            bearer_token=bearer_token,
            timeout=timeout,
            max_retries=max_retries,
            startup_timeout=startup_timeout,
            release_on_close=release_on_close,
            headers=headers,
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._service: EmbeddedService | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        return self._configured_url or (self._service.url if self._service else None)

    async def start(self) -> AsyncTrainingSandbox:
        await self._http()
        return self

    async def close(self) -> None:
        """Release the instances this client created, close the connection, stop an embedded service."""
        client, service = self._client, self._service
        try:
            if client is not None and self._release_on_close and self._owned:
                await self._release_owned()
        finally:
            self._client, self._service = None, None
            if client is not None:
                await client.aclose()
            if service is not None:
                await asyncio.to_thread(service.stop)

    async def __aenter__(self) -> AsyncTrainingSandbox:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _http(self) -> httpx.AsyncClient:
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._client is None:
                url = self._configured_url
                if url is None:
                    service = EmbeddedService(self._startup_timeout)
                    url = await service.start_async()  # stops what it started if it fails
                    self._service = service
                self._client = httpx.AsyncClient(
                    base_url=url,
                    headers=self._headers(),
                    timeout=self._timeout,
                    limits=LIMITS,
                    transport=self._transport,
                )
            return self._client

    async def _release_owned(self) -> None:
        results = await self._map(self.release_instance, sorted(self._owned), True, 64)
        for result in results:
            if isinstance(result, TrainboxError):
                log.warning("could not release an instance on close: %s", result)

    # -- transport -----------------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        safety: Safety,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        client = await self._http()
        attempt = 0
        while True:
            try:
                response = await client.request(
                    method, path, json=json, params=params, timeout=timeout or httpx.USE_CLIENT_DEFAULT
                )
            except httpx.TransportError as exc:
                error: TrainboxError = error_from_transport(exc, f"{client.base_url}{path}")
            else:
                if response.status_code < 400:
                    return response
                error = error_from_response(response)
            delay = self._retry.delay(error, safety, attempt)
            if delay is None:
                error.attempts = attempt + 1
                raise error
            log.debug("%s %s failed (%s); retry %d in %.2f s", method, path, error, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1

    # -- the reference's methods ---------------------------------------------------------------------------

    async def check_health(self) -> bool:
        try:
            return (await (await self._http()).get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def list_environments(self) -> dict[str, list[str]]:
        return _types.environment_names(await self._request("GET", "/v1/environments", safety=Safety.IDEMPOTENT))

    async def get_env_profile(
        self, env_type: str = "appworld", split: str = "train", params: Mapping[str, Any] | None = None
    ) -> list[str]:
        path = f"/v1/environments/{path_segment(env_type)}/tasks"
        return _types.task_ids(await self._request("GET", path, params={"split": split}, safety=Safety.IDEMPOTENT))

    get_task_ids = get_env_profile

    async def create_instance(
        self,
        env_type: str | None = None,
        task_id: str | None = None,
        instance_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        idle_ttl: float | None = None,
        max_lifetime: float | None = None,
        arch: str | None = None,
        snapshot_id: str | None = None,
    ) -> CreateResult:
        body = self._create_body(
            env_type, task_id, instance_id=instance_id, params=params,
            idle_ttl=idle_ttl, max_lifetime=max_lifetime, arch=arch, snapshot_id=snapshot_id,
        )  # fmt: skip
        return (await self._create(body))[0]

    async def create_group(
        self,
        env_type: str,
        task_id: str,
        n: int,
        params: Mapping[str, Any] | None = None,
        *,
        idle_ttl: float | None = None,
        max_lifetime: float | None = None,
        arch: str | None = None,
    ) -> list[CreateResult]:
        body = self._create_body(
            env_type, task_id, count=n, params=params, idle_ttl=idle_ttl, max_lifetime=max_lifetime, arch=arch
        )
        return await self._create(body)

    async def _create(self, body: dict[str, Any]) -> list[CreateResult]:
        response = await self._request("POST", "/v1/instances", json=body, safety=Safety.UNSENT_ONLY)
        results = _types.create_results(response)
        self._owned.update(result["info"]["instance_id"] for result in results)
        return results

    async def step(
        self,
        instance_id: str,
        action: Action | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> StepResult:
        body = self._step_body(action, params, request_id, timeout)
        response = await self._request(
            "POST", instance_path(instance_id, "step"), json=body, safety=Safety.IDEMPOTENT,
            timeout=self._call_timeout(timeout),
        )  # fmt: skip
        return _types.parse(StepResult, response)

    @overload
    async def evaluate(
        self,
        instance_id: str,
        messages: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        details: Literal[False] = False,
    ) -> float: ...

    @overload
    async def evaluate(
        self, instance_id: str, messages: Any = None, params: Mapping[str, Any] | None = None, *, details: Literal[True]
    ) -> EvaluateResult: ...

    async def evaluate(
        self, instance_id: str, messages: Any = None, params: Mapping[str, Any] | None = None, *, details: bool = False
    ) -> float | EvaluateResult:
        body = self._evaluate_body(params)
        path = instance_path(instance_id, "evaluate")
        result = _types.parse(EvaluateResult, await self._request("POST", path, json=body, safety=Safety.IDEMPOTENT))
        return result if details else result["reward"]

    async def release_instance(self, instance_id: str) -> bool:
        try:
            response = await self._request("DELETE", instance_path(instance_id), safety=Safety.IDEMPOTENT)
        except UnknownInstance as exc:
            self._owned.discard(instance_id)
            return exc.attempts > 1
        self._owned.discard(instance_id)
        return _types.released(response)

    async def get_instance(self, instance_id: str) -> InstanceStatus:
        response = await self._request("GET", instance_path(instance_id), safety=Safety.IDEMPOTENT)
        return _types.parse(InstanceStatus, response)

    # -- fork and snapshot -----------------------------------------------------------------------------

    async def fork(
        self,
        instance_id: str,
        n: int = 1,
        *,
        idle_ttl: float | None = None,
        max_lifetime: float | None = None,
        arch: str | None = None,
    ) -> list[InstanceStatus]:
        """``n`` independent copies of an instance's exact state (environment and episode position), each
        with its own id and the group's ``group_id``; the source goes on unchanged. ``arch`` puts the copies on
        hosts of that architecture (rebuilt there from the episode's record when it is not the source's)."""
        body = {"count": n, "idle_ttl": idle_ttl, "max_lifetime": max_lifetime, "arch": arch}
        response = await self._request("POST", instance_path(instance_id, "fork"), json=body, safety=Safety.UNSENT_ONLY)
        made = _types.forks(response)
        self._owned.update(item["instance_id"] for item in made)
        return made

    async def snapshot(self, instance_id: str) -> SnapshotInfo:
        """Save an instance's state in the service (for its TTL); restore with ``create_instance(snapshot_id=)``."""
        response = await self._request("POST", instance_path(instance_id, "snapshot"), safety=Safety.UNSENT_ONLY)
        return _types.parse(SnapshotInfo, response)

    async def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        response = await self._request("GET", f"/v1/snapshots/{path_segment(snapshot_id)}", safety=Safety.IDEMPOTENT)
        return _types.parse(SnapshotInfo, response)

    async def release_snapshot(self, snapshot_id: str) -> bool:
        """Release a snapshot: True if this call released it, False if it was already gone."""
        path = f"/v1/snapshots/{path_segment(snapshot_id)}"
        return _types.snapshot_released(await self._request("DELETE", path, safety=Safety.IDEMPOTENT))

    # -- batches -------------------------------------------------------------------------------------------

    async def step_many(
        self, actions: StepBatch, *, return_exceptions: bool = False, max_concurrency: int = 64
    ) -> list[StepResult | TrainboxError]:
        """Step many instances concurrently; see ``TrainingSandbox.step_many``."""

        async def one(item: tuple[str, Action]) -> StepResult:
            return await self.step(item[0], item[1])

        return await self._map(one, self._step_items(actions), return_exceptions, max_concurrency)

    async def release_many(self, instance_ids: Iterable[str], *, max_concurrency: int = 64) -> list[bool]:
        results = await self._map(self.release_instance, list(instance_ids), False, max_concurrency)
        return [bool(result) for result in results]

    async def _map(
        self, call: Callable[[_T], Awaitable[_R]], items: list[_T], return_exceptions: bool, max_concurrency: int
    ) -> list[_R | TrainboxError]:
        if not items:
            return []
        await self._http()
        gate = asyncio.Semaphore(max(1, max_concurrency))

        async def guarded(item: _T) -> _R | TrainboxError:
            async with gate:
                try:
                    return await call(item)
                except TrainboxError as exc:
                    return exc

        results = await asyncio.gather(*(guarded(item) for item in items))
        if not return_exceptions:
            for result in results:
                if isinstance(result, TrainboxError):
                    raise result
        return list(results)
