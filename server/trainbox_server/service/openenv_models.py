"""The OpenEnv endpoint's wire shapes: its error codes, and the models ``GET schema`` and the OpenAPI
schema describe (documentation only; the endpoint checks its messages by hand, see ``service.openenv``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# OpenEnv's error codes (openenv.core.env_server.types.WSErrorCode), as its clients match on them.
CODE_INVALID_JSON = "INVALID_JSON"
CODE_UNKNOWN_TYPE = "UNKNOWN_TYPE"
CODE_VALIDATION = "VALIDATION_ERROR"
CODE_EXECUTION = "EXECUTION_ERROR"
CODE_CAPACITY = "CAPACITY_REACHED"
CODE_FACTORY = "FACTORY_ERROR"
CODE_SESSION = "SESSION_ERROR"

Message = dict[str, Any]


class Action(BaseModel):
    """The assistant message (OpenAI chat format); keys other than these and a chat message's own are ignored."""

    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] = "assistant"
    content: str | list[Any] | None = Field(default=None, description="the model's text (BFCL: calls in it)")
    tool_calls: list[dict[str, Any]] | None = Field(default=None, description="OpenAI tool calls")
    metadata: dict[str, Any] = Field(default_factory=dict, description="ignored (OpenEnv's Action field)")


ACTION_FIELDS = frozenset(
    {"role", "content", "tool_calls", "metadata", "name", "reasoning_content", "refusal", "function_call"}
)


class Observation(BaseModel):
    model_config = ConfigDict(extra="allow")

    instance_id: str | None = Field(description="the trainbox instance (see /v1/instances/{id}/trajectory)")
    episode_id: str | None = Field(description="reset's episode_id, else the instance id")
    task_id: str | None
    env_type: str = Field(description="the release that runs it, e.g. bfcl@2026.3.23")
    messages: list[Message] = Field(description="reset: system + user messages; step: what the step shows the model")
    tools: list[dict[str, Any]] | None = Field(default=None, description="reset: OpenAI tools of the task")
    info: dict[str, Any] = Field(default_factory=dict, description="the family's step info (the final evaluation)")
    error: dict[str, Any] | None = Field(default=None, description="a model mistake shown as the observation")


class State(BaseModel):
    model_config = ConfigDict(extra="allow")

    episode_id: str | None = None
    step_count: int = 0
    instance_id: str | None = None
    task_id: str | None = None
    env_type: str | None = None
    done: bool = False
    reward: float | None = None


class StepResult(BaseModel):
    """What reset and step answer (a WebSocket ``observation`` message's ``data``)."""

    observation: Observation
    reward: float | None = None
    done: bool = False


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    task_id: str | None = Field(default=None, description="the task to play (GET /v1/environments/{env}/tasks)")
    seed: int | None = Field(default=None, ge=0, description="without task_id: task seed mod n of the split")
    split: str = "train"
    episode_id: str | None = Field(default=None, max_length=255, description="a label the state echoes")
    params: dict[str, Any] = Field(default_factory=dict, description="the family's create params")
    arch: Literal["amd64", "arm64"] | None = None


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: dict[str, Any] = Field(description="the assistant message")
    instance_id: str = Field(description="what reset answered in observation.instance_id")
    timeout_s: float | None = Field(default=None, gt=0, le=3600, description="seconds before the step is stopped")
    request_id: str | None = Field(default=None, min_length=1, max_length=200, description="repeat to retry safely")


class Health(BaseModel):
    status: Literal["healthy", "unhealthy"]


class Metadata(BaseModel):
    name: str
    description: str
    readme_content: str | None = None
    version: str | None = None
    author: str | None = None
    documentation_url: str | None = None


class Schemas(BaseModel):
    action: dict[str, Any]
    observation: dict[str, Any]
    state: dict[str, Any]


def schemas() -> dict[str, Any]:
    return {
        "action": Action.model_json_schema(),
        "observation": Observation.model_json_schema(),
        "state": State.model_json_schema(),
    }
