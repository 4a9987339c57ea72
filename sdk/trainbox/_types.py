"""Return shapes (the reference client's dicts, typed) and the translation from our REST answers to them.

The methods return plain dicts, exactly shaped like the reference client's, so code written for it keeps
indexing ``result["info"]["instance_id"]``. Answers are validated with pydantic on the way in: a service
that answers something else raises ``ProtocolError`` instead of a ``KeyError`` deep in a trainer.
Unknown extra keys are kept, so a newer service can add fields.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypeVar

import httpx
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

# pydantic needs typing_extensions' TypedDict before Python 3.12 (it depends on typing_extensions itself).
from typing_extensions import TypedDict

from ._exceptions import ProtocolError

__all__ = ["CreateResult", "EvaluateResult", "InstanceInfo", "InstanceStatus", "Message", "SnapshotInfo", "StepResult"]

Message = dict[str, Any]
"""An OpenAI-style chat message: ``{"role": ..., "content": ..., ...}``."""

_OPEN = ConfigDict(extra="allow")


@with_config(_OPEN)
class InstanceInfo(TypedDict, total=False):
    instance_id: str
    task_id: str
    env_type: str
    expires_at: float
    arch: str  # the CPU architecture of the host it runs on


@with_config(_OPEN)
class CreateResult(TypedDict):
    """What ``create_instance`` returns: the opening messages and the instance's identity."""

    state: list[Message]
    info: InstanceInfo


@with_config(_OPEN)
class StepResult(TypedDict):
    """What ``step`` returns: the new messages, the step's reward, whether the episode ended."""

    state: list[Message]
    reward: float
    is_terminated: bool
    info: dict[str, Any]


@with_config(_OPEN)
class EvaluateResult(TypedDict):
    """What ``evaluate(..., details=True)`` returns."""

    reward: float
    details: dict[str, Any]


@with_config(_OPEN)
class InstanceStatus(TypedDict, total=False):
    """What ``get_instance`` returns."""

    instance_id: str
    env_type: str
    task_id: str
    created_at: float
    expires_at: float
    steps: int
    terminated: bool
    group_id: str | None
    last_reward: float | None


@with_config(_OPEN)
class SnapshotInfo(TypedDict):
    """What ``snapshot`` and ``get_snapshot`` return: restore it with ``create_instance(snapshot_id=...)``."""

    snapshot_id: str
    env_type: str
    task_id: str
    steps: int
    terminated: bool
    created_at: float
    expires_at: float
    bytes: int


@with_config(_OPEN)
class _ForkAnswer(TypedDict):
    instances: list[InstanceStatus]
    group_id: str


@with_config(_OPEN)
class _SnapshotReleaseAnswer(TypedDict):
    released: bool


def forks(response: httpx.Response) -> list[InstanceStatus]:
    return parse(_ForkAnswer, response)["instances"]


def snapshot_released(response: httpx.Response) -> bool:
    return parse(_SnapshotReleaseAnswer, response)["released"]


@with_config(_OPEN)
class _CreatedInstance(TypedDict):
    instance_id: str
    env_type: str
    task_id: str
    state: list[Message]
    info: NotRequired[dict[str, Any]]
    expires_at: NotRequired[float | None]
    arch: NotRequired[str]


@with_config(_OPEN)
class _CreateAnswer(TypedDict):
    instances: list[_CreatedInstance]


@with_config(_OPEN)
class _Environment(TypedDict):
    name: str
    splits: list[str]


@with_config(_OPEN)
class _EnvironmentsAnswer(TypedDict):
    environments: list[_Environment]


@with_config(_OPEN)
class _TasksAnswer(TypedDict):
    task_ids: list[str]


@with_config(_OPEN)
class _ReleaseAnswer(TypedDict):
    released: bool


_T = TypeVar("_T")
_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def parse(shape: type[_T], response: httpx.Response) -> _T:
    """Validate a success answer against ``shape``; anything else is a ``ProtocolError``."""
    adapter = _ADAPTERS.get(shape)
    if adapter is None:
        adapter = _ADAPTERS[shape] = TypeAdapter(shape)
    try:
        result: _T = adapter.validate_json(response.content)
    except ValidationError as exc:
        raise ProtocolError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code} with a body "
            f"this SDK does not understand ({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}); "
            "is base_url a trainbox service of a compatible version?",
            status_code=response.status_code,
            response=response,
        ) from None
    return result


def create_results(response: httpx.Response) -> list[CreateResult]:
    """Reshape ``POST /v1/instances`` into the reference's ``{"state", "info": {"instance_id", ...}}``."""
    answer = parse(_CreateAnswer, response)
    results: list[CreateResult] = []
    for created in answer["instances"]:
        info: dict[str, Any] = dict(created.get("info") or {})
        info.update(
            instance_id=created["instance_id"],
            task_id=created["task_id"],
            env_type=created["env_type"],
            expires_at=created.get("expires_at"),
        )
        if created.get("arch"):
            info["arch"] = created["arch"]
        results.append({"state": created["state"], "info": info})  # type: ignore[typeddict-item]
    return results


def environment_names(response: httpx.Response) -> dict[str, list[str]]:
    return {env["name"]: env["splits"] for env in parse(_EnvironmentsAnswer, response)["environments"]}


def task_ids(response: httpx.Response) -> list[str]:
    return parse(_TasksAnswer, response)["task_ids"]


def released(response: httpx.Response) -> bool:
    return parse(_ReleaseAnswer, response)["released"]
