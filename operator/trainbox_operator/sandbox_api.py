"""Thin async HTTP client for a sandbox's service (the trainbox REST API), one pooled client per endpoint."""

from __future__ import annotations

from typing import Any

import httpx

from trainbox_operator.errors import ServiceCallFailed

_clients: dict[str, httpx.AsyncClient] = {}


def _client(endpoint: str) -> httpx.AsyncClient:
    found = _clients.get(endpoint)
    if found is None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        found = _clients[endpoint] = httpx.AsyncClient(base_url=endpoint, timeout=60, limits=limits)
    return found


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def _call(endpoint: str, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    try:
        return await _client(endpoint).request(method, path, headers=_headers(token), **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceCallFailed(f"{method} {endpoint}{path} failed: {type(exc).__name__}: {exc}") from None


def _error(response: httpx.Response) -> ServiceCallFailed:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    message = error.get("message") or response.text[:200]
    return ServiceCallFailed(f"{message} (HTTP {response.status_code})", response.status_code, error.get("kind", ""))


async def ready(endpoint: str) -> bool:
    try:
        response = await _client(endpoint).get("/readyz", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


async def hosts(endpoint: str, token: str | None) -> list[dict[str, Any]] | None:
    """The service's live hosts (name, arch, node_ip, live, ...); None when it does not answer."""
    response = await _call(endpoint, "GET", "/v1/hosts", token, timeout=10)
    if response.status_code != 200:
        return None
    return [h for h in response.json().get("hosts", []) if h.get("alive")]


async def create(endpoint: str, token: str | None, request: dict[str, Any]) -> dict[str, Any]:
    response = await _call(endpoint, "POST", "/v1/instances", token, json=request)
    if response.status_code != 200:
        raise _error(response)
    instance: dict[str, Any] = response.json()["instances"][0]
    return instance


async def get(endpoint: str, token: str | None, instance_id: str) -> dict[str, Any] | None:
    response = await _call(endpoint, "GET", f"/v1/instances/{instance_id}", token)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise _error(response)
    found: dict[str, Any] = response.json()
    return found


async def release(endpoint: str, token: str | None, instance_id: str) -> bool:
    response = await _call(endpoint, "DELETE", f"/v1/instances/{instance_id}", token)
    if response.status_code != 200:
        raise _error(response)
    return bool(response.json().get("released"))


async def close_all() -> None:
    for found in list(_clients.values()):
        await found.aclose()
    _clients.clear()
