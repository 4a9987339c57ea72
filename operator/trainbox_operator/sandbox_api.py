"""The operator's calls to a sandbox's service: the SDK's async client (``trainbox.AsyncTrainingSandbox``),
one per endpoint and token, with its retries off — the operator decides itself when to call again (its
instance daemons and the sandbox loop wake on their own). Errors are the SDK's (``trainbox.TrainboxError``).

Readiness and the host list are operational routes the SDK leaves out: plain GETs with short timeouts, and
any failure is "not ready" / "unknown".
"""

from __future__ import annotations

from typing import Any

import httpx
from trainbox import AsyncTrainingSandbox, UnknownInstance

CALL_TIMEOUT = 60.0  # a create waits for a worker when the warm pool is empty
_boxes: dict[tuple[str, str | None], AsyncTrainingSandbox] = {}


def box(endpoint: str, token: str | None) -> AsyncTrainingSandbox:
    found = _boxes.get((endpoint, token))
    if found is None:
        found = _boxes[(endpoint, token)] = AsyncTrainingSandbox(
            base_url=endpoint, token=token, timeout=CALL_TIMEOUT, max_retries=0, release_on_close=False
        )
    return found


async def _get(endpoint: str, path: str, token: str | None, timeout: float) -> httpx.Response | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(base_url=endpoint, timeout=timeout) as client:
            return await client.get(path, headers=headers)
    except httpx.HTTPError:
        return None


async def ready(endpoint: str) -> bool:
    response = await _get(endpoint, "/readyz", None, 5)
    return response is not None and response.status_code == 200


async def hosts(endpoint: str, token: str | None) -> list[dict[str, Any]] | None:
    """The service's live hosts (name, arch, node_ip, live, ...); None when it does not answer."""
    response = await _get(endpoint, "/v1/hosts", token, 10)
    if response is None or response.status_code != 200:
        return None
    return [h for h in response.json().get("hosts", []) if h.get("alive")]


async def create(endpoint: str, token: str | None, request: dict[str, Any]) -> dict[str, Any]:
    """The created instance: its opening messages (``state``) and its identity (id, expiry, arch)."""
    made = await box(endpoint, token).create_instance(**request)
    return {"state": made["state"], **made["info"]}


async def get(endpoint: str, token: str | None, instance_id: str) -> dict[str, Any] | None:
    """The instance's lease as the service knows it; None when the service does not know it (any more)."""
    try:
        return dict(await box(endpoint, token).get_instance(instance_id))
    except UnknownInstance:
        return None


async def release(endpoint: str, token: str | None, instance_id: str) -> bool:
    return await box(endpoint, token).release_instance(instance_id)


async def close_all() -> None:
    for found in list(_boxes.values()):
        await found.close()
    _boxes.clear()
