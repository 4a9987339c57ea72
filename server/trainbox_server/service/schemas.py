"""What the routes answer, for the OpenAPI schema: a model for every 2xx and the error envelope for every
error status a route can return (schemathesis checks both against the running service).

Documentation only: the routes return plain dicts (encoded by orjson), so these models never sit on the hot
path. Family-specific parts (``info``, ``details``, messages) stay open objects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, Any]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Open):
    kind: str = Field(description="the error's wire name, e.g. unknown_task, invalid_action, instance_lost")
    message: str = Field(description="what was wrong and what is accepted; never a traceback")
    infra: bool = Field(description="true: not the caller's or the model's fault (drop the rollout, retry)")


class ErrorResponse(_Open):
    error: ErrorBody


class CompatErrorResponse(_Open):
    """The reference protocol's error envelope, plus our typed error."""

    success: Literal[False]
    data: None
    detail: str
    error: ErrorBody


class Environment(_Open):
    name: str = Field(description="what env_type takes: 'bfcl' (its current release), 'bfcl@2025.10.1', 'appworld'")
    family: str
    release: str | None = Field(description="the release this name serves (null: a family served in one release)")
    releases: list[str] | None = Field(
        default=None, description="on a family's plain name: every release served, newest (the default) first"
    )
    splits: list[str]


class EnvironmentsResponse(_Open):
    environments: list[Environment]


class HostInfo(_Open):
    name: str
    alive: bool


class HostsResponse(_Open):
    hosts: list[HostInfo]


class TasksResponse(_Open):
    env_type: str
    split: str
    task_ids: list[str]


class Lease(_Open):
    instance_id: str
    env_type: str
    task_id: str
    created_at: float
    last_used_at: float
    expires_at: float
    steps: int
    terminated: bool
    group_id: str | None = Field(default=None, description="shared by a create(count=n) or fork(count=n) group")
    last_reward: float | None = Field(default=None, description="the reward of the last evaluate, if any")


class CreatedInstance(Lease):
    state: list[Message] = Field(description="the system and user messages")
    info: dict[str, Any]


class InstancesResponse(_Open):
    instances: list[CreatedInstance]


class StepResponse(_Open):
    state: list[Message] = Field(description="the observation: tool / user messages")
    reward: float
    is_terminated: bool
    info: dict[str, Any]
    group_id: str | None = None


class EvaluateResponse(_Open):
    reward: float
    details: dict[str, Any]
    group_id: str | None = None


class ForkResponse(_Open):
    instances: list[Lease]
    group_id: str


class SnapshotResponse(_Open):
    snapshot_id: str
    env_type: str
    task_id: str
    steps: int
    terminated: bool
    created_at: float
    expires_at: float
    bytes: int


class SnapshotReleaseResponse(_Open):
    released: bool


class ReleaseResponse(_Open):
    released: bool
    reason: str


class CompatTaskIds(_Open):
    success: bool
    data: list[str]


class CompatCreated(_Open):
    state: list[Message]
    info: dict[str, Any]


class CompatCreate(_Open):
    success: bool
    data: CompatCreated


class CompatStep(_Open):
    success: bool
    data: StepResponse


class CompatEvaluate(_Open):
    success: bool
    data: float | dict[str, Any] = Field(description="the reward (params.sparse, AppWorld) or BFCL's details")


class CompatInfo(_Open):
    success: bool
    data: dict[str, Any]


class CompatRelease(_Open):
    success: bool
    data: None


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
DESCRIPTIONS = {
    400: "The request is not one this route can serve",
    401: "Missing or wrong bearer token (when the service has one)",
    404: "No such environment, split, task or instance",
    409: "Duplicate instance id, or a step after the episode ended",
    410: "The instance was lost with its worker or host (infra)",
    413: "The body is over the size limit (TRAINBOX_MAX_BODY_BYTES)",
    422: "A body or parameter outside what is accepted (the message says what is)",
    429: "Admission control: the service holds its maximum of live instances",
    500: "An unexpected failure (logged; no traceback sent)",
    503: "Busy, no host serving right now, or the family unavailable",
    504: "The call ran past its timeout, or its host did not answer in time",
}
# The statuses each kind of route can answer with an error.
LOCAL = (401, 500)
WITH_BODY = (400, 401, 413, 422, 500)
ON_HOSTS = (400, 401, 404, 409, 410, 413, 422, 429, 500, 503, 504)


def errors(statuses: tuple[int, ...], compat: bool = False) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries documenting the error envelope for each status."""
    model = CompatErrorResponse if compat else ErrorResponse
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": model, "description": DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = RETRY_AFTER
        documented[status] = entry
    return documented


def answers(model: type[BaseModel], statuses: tuple[int, ...], compat: bool = False) -> dict[str, Any]:
    """Route keyword arguments: the 200 model (documentation only) and the error statuses."""
    return {"response_model": None, "responses": {200: {"model": model}, **errors(statuses, compat)}}
