"""The reference's wire protocol (AgentScope Runtime training_box env_service), unchanged on the wire.

``POST /<op>`` with ``{"env_type", "task_id", "instance_id", "messages", "params"}``; ``env_type`` "bfcl" is
BFCL's current release: pin another with ``"bfcl@2025.10.1"`` or ``params.version`` (see ``envs.releases``); replies
``{"success": bool, "data": ...}`` in the reference's shapes (``compat_shapes``): a step's ``state`` is one
``user`` message, a model mistake is an observation that ends the turn (not an error), ``evaluate``
answers a float when ``params.sparse`` is set and otherwise BFCL's dict (AppWorld: the dense float), and
``release`` of an unknown id is ``{"success": false}``. Errors keep the reference's status codes' meaning
(4xx for the caller's mistakes) but carry a one-line message and our typed ``error`` object — never a
traceback. The README's "Migrating from AgentScope Runtime" lists every difference from the reference.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from trainbox_server.envs.releases import family_of, with_version
from trainbox_server.errors import InvalidAction, RequestError
from trainbox_server.service import bounds
from trainbox_server.service.api_v1 import FastJSON, Service
from trainbox_server.service.compat_shapes import bfcl_evaluation, mistake_step, reference_action, reference_step
from trainbox_server.service.fast_routes import FastRoute
from trainbox_server.service.metrics import timed
from trainbox_server.service.models import CompatRequest
from trainbox_server.service.schemas import (
    ON_HOSTS,
    CompatCreate,
    CompatEvaluate,
    CompatInfo,
    CompatRelease,
    CompatStep,
    CompatTaskIds,
    answers,
)

router = APIRouter(tags=["reference-compatible"], default_response_class=FastJSON, route_class=FastRoute)


def _require(value: str | None, name: str) -> str:
    if not value:
        raise RequestError(f"{name} is required")
    return value


def _action(messages: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
    action = reference_action(messages)
    if action is None:
        raise RequestError("messages must be the assistant message, e.g. {'role': 'assistant', 'content': ...}")
    return action


@router.post(
    "/get_env_profile",
    summary="Task ids of params.split (reference protocol)",
    **answers(CompatTaskIds, ON_HOSTS, compat=True),
)
async def get_env_profile(service: Service, body: CompatRequest) -> dict[str, Any]:
    env_type = with_version(_require(body.env_type, "env_type"), body.params)
    return {
        "success": True,
        "data": await service.task_ids(env_type, bounds.check_split(body.params.get("split", "train"))),
    }


@router.post(
    "/create", summary="Create an instance (reference protocol)", **answers(CompatCreate, ON_HOSTS, compat=True)
)
async def create(service: Service, body: CompatRequest) -> dict[str, Any]:
    env_type = _require(body.env_type, "env_type")
    params = {"on_invalid_action": "end_turn", **body.params} if family_of(env_type) == "bfcl" else body.params
    request = {
        "env_type": env_type,
        "task_id": _require(body.task_id, "task_id"),
        "instance_id": body.instance_id,
        "params": params,
    }
    async with timed("create", env_type):
        (made,) = await service.create(request)
    info = made["info"]
    if family_of(env_type) == "bfcl":  # the reference's own keys next to ours
        info = {**info, "test_id": info.get("task_id"), "tools_count": len(info.get("tools") or ())}
        info["questions_count"] = info.get("num_turns", 1)
    return {"success": True, "data": {"state": made["state"], "info": info}}


@router.post("/step", summary="Step an instance (reference protocol)", **answers(CompatStep, ON_HOSTS, compat=True))
async def step(service: Service, body: CompatRequest) -> dict[str, Any]:
    instance_id = _require(body.instance_id, "instance_id")
    async with timed("step") as timing:
        try:
            result = await service.step(instance_id, _action(body.messages), body.params.get("request_id"))
        except InvalidAction:  # AppWorld without code (BFCL instances end the turn themselves)
            return {"success": True, "data": mistake_step()}
        timing.env = result.pop("env_type", "unknown")
    return {"success": True, "data": reference_step(timing.env, result)}


@router.post(
    "/evaluate", summary="Evaluate an instance (reference protocol)", **answers(CompatEvaluate, ON_HOSTS, compat=True)
)
async def evaluate(service: Service, body: CompatRequest) -> dict[str, Any]:
    instance_id = _require(body.instance_id, "instance_id")
    sparse = bool(body.params.get("sparse", False))  # the reference's default is the dense answer
    async with timed("evaluate") as timing:
        result = await service.evaluate(instance_id, {**body.params, "sparse": sparse})
        timing.env = result.pop("env_type", "unknown")
    if sparse or family_of(timing.env) != "bfcl":
        return {"success": True, "data": float(result["reward"])}
    task = await service.info(instance_id)
    return {"success": True, "data": bfcl_evaluation(result["reward"], result["details"], task)}


@router.post(
    "/get_info",
    summary="Tools and task info of an instance (reference protocol)",
    **answers(CompatInfo, ON_HOSTS, compat=True),
)
async def get_info(service: Service, body: CompatRequest) -> dict[str, Any]:
    return {"success": True, "data": await service.info(_require(body.instance_id, "instance_id"))}


@router.post(
    "/release", summary="Release an instance (reference protocol)", **answers(CompatRelease, ON_HOSTS, compat=True)
)
async def release(service: Service, body: CompatRequest) -> dict[str, Any]:
    released = await service.release(_require(body.instance_id, "instance_id"))
    return {"success": released, "data": None}
