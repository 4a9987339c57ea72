"""Our resource-style REST API, versioned under /v1. Create, step, evaluate and release are on ``hot``, whose
routes call their endpoint without FastAPI's per-request machinery (``fast_routes.FastRoute``): a create's
reply (system prompt, tool schemas) took FastAPI's generic encoder a third of the front's CPU."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from trainbox_server.service.core import SandboxService
from trainbox_server.service.fast_routes import FastRoute
from trainbox_server.service.metrics import timed
from trainbox_server.service.models import CreateRequest, EvaluateRequest, ForkRequest, StepRequest
from trainbox_server.service.schemas import (
    LOCAL,
    ON_HOSTS,
    EnvironmentsResponse,
    EvaluateResponse,
    ForkResponse,
    HostsResponse,
    InstancesResponse,
    Lease,
    ReleaseResponse,
    SnapshotReleaseResponse,
    SnapshotResponse,
    StepResponse,
    TasksResponse,
    answers,
)


async def get_service(request: Request) -> SandboxService:
    # async on purpose: a sync dependency would cost a thread-pool hop on every request
    service: SandboxService = request.app.state.service
    return service


class FastJSON(JSONResponse):
    """JSON via orjson, skipping FastAPI's generic encoder: the step/create hot path returns plain dicts.
    (A JSONResponse, so that the schema documents the route's models, not a string.)"""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


Service = Annotated[SandboxService, Depends(get_service)]
router = APIRouter(prefix="/v1", tags=["v1"], default_response_class=FastJSON)
hot = APIRouter(prefix="/v1", tags=["v1"], default_response_class=FastJSON, route_class=FastRoute)


@router.get("/environments", summary="Environment families served here", **answers(EnvironmentsResponse, LOCAL))
async def environments(service: Service) -> dict[str, Any]:
    return {"environments": service.environments()}


@router.get(
    "/hosts",
    summary="The instance hosts: architecture, live instances, worker processes",
    **answers(HostsResponse, LOCAL),
)
async def hosts(service: Service) -> dict[str, Any]:
    await service.refresh_loads()
    return {
        "hosts": [{**h.extra, "alive": h.alive} if h.alive else {"name": h.name, "alive": False} for h in service.loads]
    }


@router.get("/environments/{env_type}/tasks", summary="Task ids of a split", **answers(TasksResponse, ON_HOSTS))
async def tasks(service: Service, env_type: str, split: Annotated[str, Query()] = "train") -> dict[str, Any]:
    return {"env_type": env_type, "split": split, "task_ids": await service.task_ids(env_type, split)}


@hot.post(
    "/instances",
    summary="Create an instance, or a group of `count` instances of one task",
    **answers(InstancesResponse, ON_HOSTS),
)
async def create(service: Service, body: CreateRequest) -> dict[str, Any]:
    async with timed("create", body.env_type or "snapshot"):
        made = await service.create(body.model_dump())
    return {"instances": [{k: v for k, v in m.items() if k != "host"} for m in made]}


@hot.get("/instances/{instance_id}", summary="An instance's lease and progress", **answers(Lease, ON_HOSTS))
async def get(service: Service, instance_id: str) -> dict[str, Any]:
    return await service.get(instance_id)


@hot.post(
    "/instances/{instance_id}/step",
    summary="Run the assistant message in the environment",
    **answers(StepResponse, ON_HOSTS),
)
async def step(service: Service, instance_id: str, body: StepRequest) -> dict[str, Any]:
    async with timed("step") as timing:
        result = await service.step(instance_id, body.action, body.request_id, body.timeout)
        timing.env = result.pop("env_type", "unknown")
    return result


@hot.post(
    "/instances/{instance_id}/evaluate",
    summary="The reward (and the checker's details)",
    **answers(EvaluateResponse, ON_HOSTS),
)
async def evaluate(service: Service, instance_id: str, body: EvaluateRequest | None = None) -> dict[str, Any]:
    async with timed("evaluate") as timing:
        result = await service.evaluate(instance_id, body.params if body is not None else {})
        timing.env = result.pop("env_type", "unknown")
    return result


@hot.delete("/instances/{instance_id}", summary="Release an instance", **answers(ReleaseResponse, ON_HOSTS))
async def release(service: Service, instance_id: str) -> dict[str, Any]:
    return {"released": await service.release(instance_id), "reason": "explicit"}


@hot.post(
    "/instances/{instance_id}/fork",
    summary="Copies of an instance's exact state (its environment and episode position); a new group",
    **answers(ForkResponse, ON_HOSTS),
)
async def fork(service: Service, instance_id: str, body: ForkRequest) -> dict[str, Any]:
    async with timed("fork"):
        return await service.fork(instance_id, body.model_dump())


@hot.post(
    "/instances/{instance_id}/snapshot",
    summary="Save an instance's state in the service; restore it with POST /v1/instances {snapshot_id}",
    **answers(SnapshotResponse, ON_HOSTS),
)
async def snapshot(service: Service, instance_id: str) -> dict[str, Any]:
    return await service.snapshot(instance_id)


@router.get(
    "/snapshots/{snapshot_id}", summary="A snapshot's task, size and expiry", **answers(SnapshotResponse, ON_HOSTS)
)
async def get_snapshot(service: Service, snapshot_id: str) -> dict[str, Any]:
    return await service.get_snapshot(snapshot_id)


@router.delete("/snapshots/{snapshot_id}", summary="Release a snapshot", **answers(SnapshotReleaseResponse, ON_HOSTS))
async def release_snapshot(service: Service, snapshot_id: str) -> dict[str, Any]:
    return {"released": await service.release_snapshot(snapshot_id)}
