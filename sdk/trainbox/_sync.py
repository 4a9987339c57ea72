"""``TrainingSandbox``: the blocking client, method for method the reference's ``TrainingSandbox``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Literal, overload

import httpx

from . import _types
from ._base import LIMITS, Action, SandboxBase, StepBatch, instance_path, path_segment
from ._embedded import EmbeddedService
from ._exceptions import TrainboxError, UnknownInstance, error_from_response, error_from_transport
from ._retry import Safety
from ._types import CreateResult, EvaluateResult, InstanceStatus, SnapshotInfo, StepResult

__all__ = ["TrainingSandbox"]

log = logging.getLogger("trainbox")


class TrainingSandbox(SandboxBase):
    """Client of a trainbox service.

    ``TrainingSandbox()`` with no ``base_url=`` and no ``TRAINBOX_URL`` starts an embedded local service on
    first use and stops it on ``close()``; ``with TrainingSandbox() as box:`` also releases every instance
    the block created. Thread-safe: one client can serve many rollout threads.
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
        transport: httpx.BaseTransport | None = None,
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
        self._client: httpx.Client | None = None
        self._service: EmbeddedService | None = None
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """The service's URL (an embedded service's is known once it started)."""
        return self._configured_url or (self._service.url if self._service else None)

    def start(self) -> TrainingSandbox:
        """Connect (and start the embedded service if there is no endpoint). Calls do this on first use."""
        self._http()
        return self

    def close(self) -> None:
        """Release the instances this client created, close the connection, stop an embedded service."""
        with self._lock:
            client, service = self._client, self._service
        try:
            if client is not None and self._release_on_close and self._owned:
                self._release_owned()
        finally:
            with self._lock:
                self._client, self._service = None, None
            if client is not None:
                client.close()
            if service is not None:
                service.stop()

    def __enter__(self) -> TrainingSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                url = self._configured_url
                if url is None:
                    service = EmbeddedService(self._startup_timeout)
                    url = service.start()  # stops what it started if it fails
                    self._service = service
                self._client = httpx.Client(
                    base_url=url,
                    headers=self._headers(),
                    timeout=self._timeout,
                    limits=LIMITS,
                    transport=self._transport,
                )
            return self._client

    def _release_owned(self) -> None:
        for result in self._map(self.release_instance, sorted(self._owned), True, 32):
            if isinstance(result, TrainboxError):  # the rest still get released; TTL catches what is left
                log.warning("could not release an instance on close: %s", result)

    # -- transport -----------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        safety: Safety,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        client = self._http()
        attempt = 0
        while True:
            try:
                response = client.request(
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
            time.sleep(delay)
            attempt += 1

    # -- the reference's methods ---------------------------------------------------------------------------

    def check_health(self) -> bool:
        """True when the service answers ``/readyz`` with 200."""
        try:
            return self._http().get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def list_environments(self) -> dict[str, list[str]]:
        """The environment families this service runs, each with its splits."""
        return _types.environment_names(self._request("GET", "/v1/environments", safety=Safety.IDEMPOTENT))

    def get_env_profile(
        self, env_type: str = "appworld", split: str = "train", params: Mapping[str, Any] | None = None
    ) -> list[str]:
        """The task ids of one split of a dataset. ``params`` is accepted for the reference's signature."""
        path = f"/v1/environments/{path_segment(env_type)}/tasks"
        return _types.task_ids(self._request("GET", path, params={"split": split}, safety=Safety.IDEMPOTENT))

    get_task_ids = get_env_profile

    def create_instance(
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
        """Start an episode of ``task_id``: ``{"state": [system, user messages], "info": {"instance_id", ...}}``."""
        body = self._create_body(
            env_type, task_id, instance_id=instance_id, params=params,
            idle_ttl=idle_ttl, max_lifetime=max_lifetime, arch=arch, snapshot_id=snapshot_id,
        )  # fmt: skip
        return self._create(body)[0]

    def create_group(
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
        """``n`` independent instances of one task in one call (a GRPO group); all or none are created."""
        body = self._create_body(
            env_type, task_id, count=n, params=params, idle_ttl=idle_ttl, max_lifetime=max_lifetime, arch=arch
        )
        return self._create(body)

    def _create(self, body: dict[str, Any]) -> list[CreateResult]:
        results = _types.create_results(self._request("POST", "/v1/instances", json=body, safety=Safety.UNSENT_ONLY))
        self._owned.update(result["info"]["instance_id"] for result in results)
        return results

    def step(
        self,
        instance_id: str,
        action: Action | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> StepResult:
        """Feed one assistant message; returns ``{"state", "reward", "is_terminated", "info"}``.

        Safe to retry: the SDK sends a request id (``request_id=`` to choose it) and the service answers a
        repeated one with the first result. ``timeout`` bounds the step on the service side.
        """
        body = self._step_body(action, params, request_id, timeout)
        response = self._request(
            "POST", instance_path(instance_id, "step"), json=body, safety=Safety.IDEMPOTENT,
            timeout=self._call_timeout(timeout),
        )  # fmt: skip
        return _types.parse(StepResult, response)

    @overload
    def evaluate(
        self,
        instance_id: str,
        messages: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        details: Literal[False] = False,
    ) -> float: ...

    @overload
    def evaluate(
        self, instance_id: str, messages: Any = None, params: Mapping[str, Any] | None = None, *, details: Literal[True]
    ) -> EvaluateResult: ...

    def evaluate(
        self, instance_id: str, messages: Any = None, params: Mapping[str, Any] | None = None, *, details: bool = False
    ) -> float | EvaluateResult:
        """The episode's reward; with ``details=True`` the whole ``{"reward", "details"}`` answer.

        ``params`` go to the environment (e.g. ``{"sparse": True}``). ``messages`` is accepted for the
        reference's signature; the service scores the instance's own trajectory.
        """
        body = self._evaluate_body(params)
        path = instance_path(instance_id, "evaluate")
        response = self._request("POST", path, json=body, safety=Safety.IDEMPOTENT)
        result = _types.parse(EvaluateResult, response)
        return result if details else result["reward"]

    def release_instance(self, instance_id: str) -> bool:
        """Release an instance: True if this call released it, False if it was already gone."""
        try:
            response = self._request("DELETE", instance_path(instance_id), safety=Safety.IDEMPOTENT)
        except UnknownInstance as exc:
            self._owned.discard(instance_id)
            # A retry that finds it gone means our lost first attempt released it.
            return exc.attempts > 1
        self._owned.discard(instance_id)
        return _types.released(response)

    def get_instance(self, instance_id: str) -> InstanceStatus:
        """An instance's status: task, creation and expiry times, steps taken, whether it terminated."""
        response = self._request("GET", instance_path(instance_id), safety=Safety.IDEMPOTENT)
        return _types.parse(InstanceStatus, response)

    # -- fork and snapshot -----------------------------------------------------------------------------

    def fork(
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
        response = self._request("POST", instance_path(instance_id, "fork"), json=body, safety=Safety.UNSENT_ONLY)
        made = _types.forks(response)
        self._owned.update(item["instance_id"] for item in made)
        return made

    def snapshot(self, instance_id: str) -> SnapshotInfo:
        """Save an instance's state in the service (for its TTL); restore with ``create_instance(snapshot_id=)``."""
        response = self._request("POST", instance_path(instance_id, "snapshot"), safety=Safety.UNSENT_ONLY)
        return _types.parse(SnapshotInfo, response)

    def get_snapshot(self, snapshot_id: str) -> SnapshotInfo:
        response = self._request("GET", f"/v1/snapshots/{path_segment(snapshot_id)}", safety=Safety.IDEMPOTENT)
        return _types.parse(SnapshotInfo, response)

    def release_snapshot(self, snapshot_id: str) -> bool:
        """Release a snapshot: True if this call released it, False if it was already gone."""
        path = f"/v1/snapshots/{path_segment(snapshot_id)}"
        return _types.snapshot_released(self._request("DELETE", path, safety=Safety.IDEMPOTENT))

    # -- batches -------------------------------------------------------------------------------------------

    def step_many(
        self, actions: StepBatch, *, return_exceptions: bool = False, max_concurrency: int = 32
    ) -> list[StepResult | TrainboxError]:
        """Step many instances concurrently (``{instance_id: action}`` or pairs); results in input order.

        With ``return_exceptions=True`` a failed step yields its exception in place; otherwise the first
        failure (in input order) is raised after all steps finished.
        """
        items = self._step_items(actions)
        return self._map(lambda item: self.step(item[0], item[1]), items, return_exceptions, max_concurrency)

    def release_many(self, instance_ids: Iterable[str], *, max_concurrency: int = 32) -> list[bool]:
        """Release many instances concurrently; results in input order."""
        results = self._map(self.release_instance, list(instance_ids), False, max_concurrency)
        return [bool(result) for result in results]

    def _map(self, call: Any, items: list[Any], return_exceptions: bool, max_concurrency: int) -> list[Any]:
        if not items:
            return []
        self._http()  # start the service once, not from every worker thread at the same time

        def guarded(item: Any) -> Any:
            try:
                return call(item)
            except TrainboxError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=max(1, min(max_concurrency, len(items)))) as pool:
            results = list(pool.map(guarded, items))
        if not return_exceptions:
            for result in results:
                if isinstance(result, TrainboxError):
                    raise result
        return results
