"""Transcripts for people debugging rewards: ``GET /v1/instances/{id}/trajectory``, ``GET /v1/trajectories``
(see ``hosts.trajectory``), and the page that shows them, ``GET /ui`` (one self-contained HTML file: no
external assets; it reads the two routes above and ``/v1/hosts``)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from trainbox_server.service.api_v1 import FastJSON, Service
from trainbox_server.service.schemas import ON_HOSTS, answers, errors

router = APIRouter(tags=["trajectories"], default_response_class=FastJSON)


class TrajectorySummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    instance_id: str
    env_type: str
    task_id: str
    host: str
    status: Literal["live", "finished"]
    steps: int
    reward: float | None = Field(description="the terminal step's reward, else the last evaluation's")
    failed: bool = Field(description="scored below 1.0")
    infra: bool = Field(description="an infra error happened (timeout, lost worker or host)")
    release_reason: str | None = Field(description="finished episodes: explicit, idle_ttl, max_lifetime, lost")


class Trajectory(TrajectorySummary):
    opening: list[Any] = Field(description="the messages create answered (system prompt, first question)")
    transcript: list[dict[str, Any]] = Field(
        description="per step: action, observation, reward, terminated, info; a failed call: op, action, error"
    )
    dropped_steps: int = Field(description="older steps not kept (TRAINBOX_TRAJECTORY_STEPS)")
    evaluations: list[dict[str, Any]] = Field(description="the last evaluations: params, reward, the checker's details")
    infra_error: dict[str, Any] | None


class TrajectoriesResponse(BaseModel):
    trajectories: list[TrajectorySummary]


@router.get(
    "/v1/instances/{instance_id}/trajectory",
    summary="An instance's transcript: actions, observations, rewards, the checker's findings",
    **answers(Trajectory, ON_HOSTS),
)
async def trajectory(service: Service, instance_id: str) -> dict[str, Any]:
    return await service.trajectory(instance_id)


@router.get(
    "/v1/trajectories",
    summary="Summaries of the transcripts the hosts keep (live, and the last finished ones)",
    **answers(TrajectoriesResponse, ON_HOSTS),
)
async def trajectories(
    service: Service,
    status: Annotated[Literal["live", "finished"] | None, Query()] = None,
    failed: Annotated[bool, Query(description="only episodes scored below 1.0 (or infra ones, with infra)")] = False,
    infra: Annotated[
        bool, Query(description="only episodes with an infra error (or failed ones, with failed)")
    ] = False,
) -> dict[str, Any]:
    return {"trajectories": await service.trajectories(status, failed, infra)}


@cache
def _page() -> str:
    return resources.files("trainbox_server.service").joinpath("ui.html").read_text(encoding="utf-8")


@router.get(
    "/ui",
    summary="The trajectory viewer (HTML)",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the page"},
        **errors((500,)),
    },
)
async def ui() -> HTMLResponse:
    return HTMLResponse(_page())
