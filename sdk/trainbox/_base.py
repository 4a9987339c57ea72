"""What the sync and async clients share: settings from arguments and environment, request bodies, bookkeeping.

Settings, in order of precedence: the constructor's arguments, then ``TRAINBOX_URL``, ``TRAINBOX_TOKEN``,
``TRAINBOX_TIMEOUT`` (seconds), ``TRAINBOX_MAX_RETRIES``, ``TRAINBOX_STARTUP_TIMEOUT`` (seconds); without any
URL the client starts an embedded local service.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ._retry import RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "LIMITS", "SandboxBase", "instance_path", "path_segment"]

DEFAULT_TIMEOUT = 120.0
"""Seconds to wait for any one answer: generous, because a step may run model-written code."""
_CONNECT_TIMEOUT = 10.0
LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128)
"""Room for hundreds of concurrent rollouts on one client without reconnecting per call."""
_STEP_TIMEOUT_MARGIN = 10.0  # the HTTP wait exceeds a server-side step timeout by this much

Action = Mapping[str, Any]
StepBatch = Mapping[str, Action] | Iterable[tuple[str, Action]]


class SandboxBase:
    """Configuration and pure helpers; no I/O."""

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
    ) -> None:
        url = (base_url or os.environ.get("TRAINBOX_URL") or "").strip()
        if url and "://" not in url:
            url = f"http://{url}"  # "127.0.0.1:8080" means what it says
        self._configured_url = url.rstrip("/") or None
        self._token = token or bearer_token or os.environ.get("TRAINBOX_TOKEN") or None
        self._timeout = _timeout(timeout)
        retries = max_retries if max_retries is not None else _env_int("TRAINBOX_MAX_RETRIES", 3)
        self._retry = RetryPolicy(max_retries=max(0, retries))
        self._startup_timeout = (
            startup_timeout if startup_timeout is not None else _env_float("TRAINBOX_STARTUP_TIMEOUT", 180.0)
        )
        self._release_on_close = release_on_close
        self._extra_headers = dict(headers or {})
        self._owned: set[str] = set()  # instances this client created and has not released

    @property
    def embedded(self) -> bool:
        """True when this client runs its own local service (no base_url and no TRAINBOX_URL)."""
        return self._configured_url is None

    @property
    def owned_instances(self) -> frozenset[str]:
        """Ids of the instances this client created and has not released; released on close."""
        return frozenset(self._owned)

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "trainbox-sdk", **self._extra_headers}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        return headers

    @staticmethod
    def _create_body(
        env_type: str | None,
        task_id: str | None,
        *,
        count: int = 1,
        instance_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        idle_ttl: float | None = None,
        max_lifetime: float | None = None,
        arch: str | None = None,
        snapshot_id: str | None = None,
    ) -> dict[str, Any]:
        if snapshot_id is not None:  # restore: the snapshot knows its family, task and params
            body = {"snapshot_id": snapshot_id, "count": count, "env_type": env_type}
            return {**body, "idle_ttl": idle_ttl, "max_lifetime": max_lifetime, "arch": arch}
        return {
            "env_type": env_type,
            "task_id": task_id,
            "params": dict(params or {}),
            "count": count,
            "instance_id": instance_id,
            "idle_ttl": idle_ttl,
            "max_lifetime": max_lifetime,
            "arch": arch,
        }

    @staticmethod
    def _step_body(
        action: Action | None, params: Mapping[str, Any] | None, request_id: str | None, timeout: float | None
    ) -> dict[str, Any]:
        # Every step carries a request id, so the retry after a lost answer is answered from the service's
        # record of the first attempt instead of running the action twice.
        # ``params`` is part of the reference's signature; no environment reads step parameters yet.
        return {"action": dict(action or {}), "request_id": request_id or uuid.uuid4().hex, "timeout": timeout}

    def _call_timeout(self, server_timeout: float | None) -> httpx.Timeout | None:
        """The HTTP wait for a call that asked the service for ``server_timeout`` seconds."""
        if server_timeout is None:
            return None
        wait = max(self._timeout.read or 0.0, server_timeout + _STEP_TIMEOUT_MARGIN)
        return httpx.Timeout(wait, connect=self._timeout.connect)

    @staticmethod
    def _step_items(actions: StepBatch) -> list[tuple[str, Action]]:
        return list(actions.items()) if isinstance(actions, Mapping) else list(actions)

    @staticmethod
    def _evaluate_body(params: Mapping[str, Any] | None) -> dict[str, Any]:
        # The reference's ``messages`` argument is not sent: the service scores the instance's own trajectory.
        return {"params": dict(params or {})}


def path_segment(value: str) -> str:
    """One URL path segment: an odd id ('a/b', '..', '?') stays one segment and gets a 404, not another route."""
    quoted = urllib.parse.quote(str(value), safe=":@")
    return quoted if quoted not in ("", ".", "..") else quoted.replace(".", "%2E") or "%20"


def instance_path(instance_id: str, operation: str = "") -> str:
    return f"/v1/instances/{path_segment(instance_id)}" + (f"/{operation}" if operation else "")


def _timeout(value: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return value
    seconds = value if value is not None else _env_float("TRAINBOX_TIMEOUT", DEFAULT_TIMEOUT)
    return httpx.Timeout(seconds, connect=min(seconds, _CONNECT_TIMEOUT))


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
