"""OpenEnv's session protocol (huggingface/OpenEnv, the ``openenv-core`` client), one endpoint per family.

``/openenv/<family>`` is the ``base_url`` an OpenEnv client takes (``bfcl``, ``bfcl@2025.10.1``, ``appworld``):

* ``WS /openenv/<family>/ws`` — a session. Client messages ``{"type": "reset", "data": {...}}``,
  ``{"type": "step", "data": <action>}``, ``{"type": "state"}``, ``{"type": "close"}``; answers
  ``{"type": "observation", "data": {"observation", "reward", "done"}}``, ``{"type": "state", "data": ...}`` or
  ``{"type": "error", "data": {"message", "code", ...}}`` with OpenEnv's codes (``CAPACITY_REACHED`` for
  admission control, ``VALIDATION_ERROR``, ``EXECUTION_ERROR``, ...) plus our ``kind`` and ``infra``.
  ``reset`` creates a trainbox instance (releasing the session's previous one); ``close`` and a dropped
  connection release it. A connection holds nothing until its first reset, so connections are not capped:
  admission control applies to instances, as on every other route.
* ``POST reset`` / ``POST step`` / ``GET state`` / ``GET health`` / ``GET metadata`` / ``GET schema`` — OpenEnv's
  HTTP routes. OpenEnv's own HTTP reset and step each run on a throw-away environment; ours keep the
  episode (it ends by its idle TTL): ``reset`` answers its ``instance_id`` and ``step``/``state`` take it.

Reset data (unknown keys are ignored, as OpenEnv's server ignores what ``reset`` does not take): ``task_id``;
or ``seed`` (task ``seed mod n`` of the split); or neither (a random task); ``split`` (default ``train``),
``episode_id`` (a label echoed in the state), ``params`` (the family's create params), ``arch``. An action
is the assistant message (``content`` and/or ``tool_calls``; ``metadata`` is ignored). As on the reference's
routes, a model mistake is an observation and never an error: BFCL's malformed call or empty action ends
the model's turn; AppWorld's action without code answers an ``error`` in the observation and reward 0.
"""

from __future__ import annotations

import contextlib
import logging
import random
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from trainbox_server.envs.releases import family_of, with_version
from trainbox_server.errors import (
    CapacityExceeded,
    InvalidAction,
    InvalidRequest,
    RequestError,
    TrainboxError,
    UnknownEnvironment,
)
from trainbox_server.service import bounds
from trainbox_server.service.core import SandboxService
from trainbox_server.service.fast_routes import load_json
from trainbox_server.service.metrics import timed
from trainbox_server.service.openenv_models import (
    ACTION_FIELDS,
    CODE_CAPACITY,
    CODE_EXECUTION,
    CODE_FACTORY,
    CODE_INVALID_JSON,
    CODE_UNKNOWN_TYPE,
    CODE_VALIDATION,
)

log = logging.getLogger(__name__)
RESET_FIELDS = ("task_id", "seed", "split", "episode_id", "params", "arch")


def pick_task(task_ids: list[str], seed: object, rng: random.Random) -> str:
    """The task a reset without ``task_id`` plays: ``seed`` mod the split's size, or a random one."""
    if not task_ids:
        raise RequestError("the split has no tasks")
    if seed is None:
        return rng.choice(task_ids)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidRequest(f"seed must be an integer >= 0, got {seed!r}")
    return task_ids[seed % len(task_ids)]


def assistant_message(action: object) -> dict[str, Any]:
    """The action as the assistant message trainbox steps with, or ``InvalidRequest`` naming the fields."""
    if not isinstance(action, dict):
        raise InvalidRequest("the action must be an object: the assistant message {'content': ..., 'tool_calls': ...}")
    role = action.get("role", "assistant")
    content, tool_calls = action.get("content"), action.get("tool_calls")
    if role != "assistant":
        raise InvalidRequest(f"action.role must be 'assistant' (or absent), got {role!r}")
    if content is not None and not isinstance(content, str | list):
        raise InvalidRequest("action.content must be a string, a list of content parts, or null")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise InvalidRequest("action.tool_calls must be a list of OpenAI tool calls, or null")
    message = {k: v for k, v in action.items() if k in ACTION_FIELDS and k != "metadata"}
    if content is None and not tool_calls:  # the empty action {}: a message without calls
        message["content"] = ""
    return {**message, "role": "assistant"}


def error_data(exc: Exception) -> dict[str, Any]:
    """An error message's ``data``: OpenEnv's ``message`` and ``code``, our ``kind`` and ``infra``."""
    if not isinstance(exc, TrainboxError):
        log.exception("unexpected error in an OpenEnv session", exc_info=exc)
        return {"message": f"internal error ({type(exc).__name__}); see the service log", "code": CODE_EXECUTION}
    if isinstance(exc, CapacityExceeded):
        code = CODE_CAPACITY
    elif isinstance(exc, InvalidRequest):
        code = CODE_VALIDATION
    else:
        code = CODE_EXECUTION
    data: dict[str, Any] = {"message": exc.message, "code": code, **exc.to_dict()}
    if isinstance(exc, CapacityExceeded):
        data["retry_after"] = exc.retry_after
    return data


class Episode:
    """One OpenEnv episode: a trainbox instance of ``family`` and what its state reports."""

    def __init__(self, service: SandboxService, family: str) -> None:
        self.service, self.family = service, family
        self.instance_id: str | None = None
        self.episode_id: str | None = None
        self.task_id: str | None = None
        self.env_type = family
        self.step_count = 0
        self.done = False
        self.reward: float | None = None

    @classmethod
    async def attach(cls, service: SandboxService, family: str, instance_id: str) -> Episode:
        """The episode of a live instance of ``family`` (OpenEnv's HTTP routes name it by instance id)."""
        lease = await service.get(instance_id)
        if family_of(lease["env_type"]) != family_of(family):
            raise RequestError(f"instance {instance_id!r} is of {lease['env_type']!r}, not of {family!r}")
        episode = cls(service, family)
        episode.instance_id = episode.episode_id = instance_id
        episode.task_id, episode.env_type = lease["task_id"], lease["env_type"]
        episode.step_count, episode.done, episode.reward = lease["steps"], lease["terminated"], lease["last_reward"]
        return episode

    def check_family(self) -> None:
        if with_version(self.family, None) not in self.service.families:
            raise UnknownEnvironment(f"unknown environment {self.family!r}; available: {self.service.families}")

    async def reset(self, data: dict[str, Any]) -> dict[str, Any]:
        await self.release()
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidRequest("params must be an object of the family's create parameters")
        episode_id = data.get("episode_id")
        if episode_id is not None and not isinstance(episode_id, str):
            raise InvalidRequest("episode_id must be a string")
        env_type = with_version(self.family, params)
        task_id = data.get("task_id")
        if task_id is None:
            task_ids = await self.service.task_ids(env_type, bounds.check_split(data.get("split", "train")))
            task_id = pick_task(task_ids, data.get("seed"), random.Random())
        elif not isinstance(task_id, str) or not task_id:
            raise InvalidRequest("task_id must be a non-empty string")
        if family_of(env_type) == "bfcl":
            params = {"on_invalid_action": "end_turn", **params}
        request = {"env_type": env_type, "task_id": task_id, "params": params, "arch": data.get("arch")}
        async with timed("create", env_type):
            (made,) = await self.service.create(request)
        self.instance_id, self.task_id, self.env_type = made["instance_id"], task_id, made["env_type"]
        self.episode_id = episode_id or made["instance_id"]
        self.step_count, self.done, self.reward = 0, False, None
        info = made["info"]
        observation = {**self._ids(), "messages": made["state"], "tools": info.get("tools"), "info": info}
        return {"observation": observation, "reward": None, "done": False}

    def _ids(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "episode_id": self.episode_id,
            "task_id": self.task_id,
            "env_type": self.env_type,
        }

    async def step(self, action: object, request_id: object = None, timeout: object = None) -> dict[str, Any]:
        if self.instance_id is None:
            raise RequestError("no episode yet: send a reset first")
        message = assistant_message(action)
        async with timed("step") as timing:
            try:
                result = await self.service.step(self.instance_id, message, request_id, timeout)
            except InvalidAction as mistake:  # AppWorld without code: the model's mistake, shown to it
                self.step_count += 1
                error = {"kind": mistake.kind, "message": mistake.message}
                return {"observation": {**self._ids(), "messages": [], "error": error}, "reward": 0.0, "done": False}
            timing.env = result.pop("env_type", "unknown")
        self.step_count += 1
        self.done, self.reward = bool(result["is_terminated"]), float(result["reward"])
        observation = {**self._ids(), "messages": result["state"], "info": result["info"]}
        return {"observation": observation, "reward": self.reward, "done": self.done}

    def state(self) -> dict[str, Any]:
        return {**self._ids(), "step_count": self.step_count, "done": self.done, "reward": self.reward}

    async def release(self) -> None:
        instance_id, self.instance_id = self.instance_id, None
        if instance_id is not None:
            try:
                await self.service.release(instance_id)
            except TrainboxError as exc:  # lost with its host, or the hosts are being re-created
                log.info("could not release %s at the end of its OpenEnv session: %s", instance_id, exc)


router = APIRouter(prefix="/openenv")


@router.websocket("/{family}/ws")
async def session(websocket: WebSocket, family: str) -> None:
    """One OpenEnv session: messages in order, one answer each, until ``close`` or the connection drops."""
    service: SandboxService = websocket.app.state.service
    limit = service.config.max_body_bytes
    episode = Episode(service, family)
    await websocket.accept()
    try:
        episode.check_family()
    except TrainboxError as exc:  # OpenEnv's code when it cannot make the session's environment
        await _refuse_all(websocket, {"type": "error", "data": {**error_data(exc), "code": CODE_FACTORY}})
        return
    try:
        while True:
            raw = await websocket.receive_text()
            if len(raw) > limit:
                await _send_error(websocket, InvalidRequest(f"the message is {len(raw)} bytes; the limit is {limit}"))
                continue
            answer = await _answer(episode, raw)
            if answer is None:
                break
            await websocket.send_json(answer)
    except WebSocketDisconnect:
        pass
    except TrainboxError as exc:
        await _send_error(websocket, exc)
    finally:
        await episode.release()
        with contextlib.suppress(RuntimeError):  # already closed by the client
            await websocket.close()


async def _answer(episode: Episode, raw: str) -> dict[str, Any] | None:
    """The answer to one client message (``None`` for close)."""
    try:
        message = load_json(raw.encode())
    except TrainboxError as exc:
        return {"type": "error", "data": {**error_data(exc), "code": CODE_INVALID_JSON}}
    kind = message.get("type") if isinstance(message, dict) else None
    try:
        if kind == "reset":
            data = message.get("data") or {}
            if not isinstance(data, dict):
                raise InvalidRequest("reset data must be an object, e.g. {'task_id': ...}")
            return {"type": "observation", "data": await episode.reset(data)}
        if kind == "step":
            return {"type": "observation", "data": await episode.step(message.get("data"))}
        if kind == "state":
            return {"type": "state", "data": episode.state()}
        if kind == "close":
            return None
    except Exception as exc:
        return {"type": "error", "data": error_data(exc)}
    accepted = "reset, step, state, close (MCP messages are not served)"
    return {
        "type": "error",
        "data": {"message": f"unknown message type {kind!r}; accepted: {accepted}", "code": CODE_UNKNOWN_TYPE},
    }


async def _refuse_all(websocket: WebSocket, answer: dict[str, Any]) -> None:
    """Answer every message with ``answer`` until the client closes (closing first would make the client's
    next send fail with a bare connection error instead of the reason)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, TrainboxError):
        while True:
            raw = await websocket.receive_text()
            message = load_json(raw.encode()) if len(raw) < 4096 else None
            if isinstance(message, dict) and message.get("type") == "close":
                break
            await websocket.send_json(answer)
    with contextlib.suppress(RuntimeError):
        await websocket.close()


async def _send_error(websocket: WebSocket, exc: TrainboxError) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.send_json({"type": "error", "data": error_data(exc)})


__all__ = ["Episode", "assistant_message", "error_data", "pick_task", "router"]
