"""Request bodies of the REST API (pydantic: FastAPI validates them and documents them in OpenAPI; the
hot routes validate with the same models, see ``fast_routes``). The limits of a body live here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainbox_server.service.bounds import MAX_REQUEST_ID_CHARS, MAX_STEP_TIMEOUT


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env_type: str | None = Field(
        default=None,
        description="environment family, e.g. 'bfcl' or 'appworld' (required without snapshot_id)",
        examples=["bfcl"],
    )
    task_id: str | None = Field(
        default=None,
        min_length=1,
        examples=["multi_turn_base_0"],
        description="a task id from GET /v1/environments/{env}/tasks (required without snapshot_id)",
    )
    snapshot_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        description="restore a snapshot (POST /v1/instances/{id}/snapshot) instead of starting the task afresh",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="family-specific create parameters")
    count: int = Field(
        default=1,
        ge=1,
        strict=True,
        description="> 1 creates a group of independent instances (GRPO); at most TRAINBOX_MAX_GROUP",
    )
    instance_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="a caller-chosen id (must not start with 'host-', the generated ids' prefix); default: generated",
    )
    idle_ttl: float | None = Field(
        default=None, gt=0, strict=True, allow_inf_nan=False, description="seconds without calls before release"
    )
    max_lifetime: float | None = Field(
        default=None, gt=0, strict=True, allow_inf_nan=False, description="seconds after creation before release"
    )
    arch: Literal["amd64", "arm64"] | None = Field(default=None, description="CPU architecture to run on")

    @model_validator(mode="after")
    def _task_or_snapshot(self) -> CreateRequest:
        if self.snapshot_id is None and (self.env_type is None or self.task_id is None):
            raise ValueError("give env_type and task_id, or a snapshot_id")
        return self


class ForkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=1, strict=True, description="how many copies; at most TRAINBOX_MAX_GROUP")
    idle_ttl: float | None = Field(
        default=None, gt=0, strict=True, allow_inf_nan=False, description="seconds without calls before release"
    )
    max_lifetime: float | None = Field(
        default=None, gt=0, strict=True, allow_inf_nan=False, description="seconds after creation before release"
    )
    arch: Literal["amd64", "arm64"] | None = Field(
        default=None,
        description="run the copies on hosts of this architecture; when it is not the source's, the episode "
        "is rebuilt there from its record (family, task, the actions so far)",
    )


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: dict[str, Any] = Field(description="the assistant message (OpenAI chat format)")
    request_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_REQUEST_ID_CHARS, description="repeat it to retry safely (a string)"
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_STEP_TIMEOUT,
        strict=True,
        allow_inf_nan=False,
        description="seconds before the step is stopped; at least TRAINBOX_MIN_STEP_TIMEOUT (1 s)",
    )


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="e.g. {'sparse': true}")


class CompatRequest(BaseModel):
    """The reference's body for every ``POST /<op>``."""

    env_type: str | None = "appworld"
    task_id: str | None = None
    instance_id: str | None = None
    messages: dict[str, Any] | list[Any] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
