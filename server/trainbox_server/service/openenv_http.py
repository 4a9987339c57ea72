"""OpenEnv's HTTP routes under ``/openenv/<family>`` (see ``service.openenv`` for the protocol and how our
reset/step differ: the episode lives on, named by its ``instance_id``, until its idle TTL)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from trainbox_server import __version__
from trainbox_server.envs.registry import FAMILIES
from trainbox_server.envs.releases import family_of
from trainbox_server.service.api_v1 import FastJSON, Service
from trainbox_server.service.openenv import Episode
from trainbox_server.service.openenv_models import (
    Health,
    Metadata,
    ResetRequest,
    Schemas,
    State,
    StepRequest,
    StepResult,
    schemas,
)
from trainbox_server.service.schemas import ON_HOSTS, answers

router = APIRouter(prefix="/openenv/{family}", tags=["openenv"], default_response_class=FastJSON)
CHECKED = (401, 404, 500)


def _description(name: str) -> str:
    """OpenEnv's line on a served name: its family's description, else the name."""
    family = FAMILIES.get(family_of(name))
    return (family.description if family else "") or name


@router.post(
    "/reset", summary="OpenEnv: start an episode (a new instance)", **answers(StepResult, ON_HOSTS, compat=True)
)
async def reset(service: Service, family: str, body: Annotated[ResetRequest | None, Body()] = None) -> dict[str, Any]:
    episode = Episode(service, family)
    episode.check_family()
    return await episode.reset(body.model_dump(exclude_unset=True) if body is not None else {})


@router.post(
    "/step", summary="OpenEnv: step the episode named by instance_id", **answers(StepResult, ON_HOSTS, compat=True)
)
async def step(service: Service, family: str, body: StepRequest) -> dict[str, Any]:
    episode = await Episode.attach(service, family, body.instance_id)
    return await episode.step(body.action, body.request_id, body.timeout_s)


@router.get(
    "/state",
    summary="OpenEnv: an episode's state (a fresh state without instance_id)",
    **answers(State, ON_HOSTS, compat=True),
)
async def state(service: Service, family: str, instance_id: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    if instance_id is None:
        episode = Episode(service, family)
        episode.check_family()
        return episode.state()
    return (await Episode.attach(service, family, instance_id)).state()


@router.get("/health", summary="OpenEnv: health", **answers(Health, CHECKED, compat=True))
async def health(service: Service, family: str) -> dict[str, Any]:
    Episode(service, family).check_family()
    return {"status": "healthy" if service.ready and service.serving() else "unhealthy"}


@router.get("/metadata", summary="OpenEnv: what this environment is", **answers(Metadata, CHECKED, compat=True))
async def metadata(service: Service, family: str) -> dict[str, Any]:
    episode = Episode(service, family)
    episode.check_family()
    return {
        "name": f"trainbox-{family}",
        "description": _description(family) + " (served by trainbox)",
        "readme_content": None,
        "version": __version__,
        "author": None,
        "documentation_url": None,
    }


@router.get(
    "/schema",
    summary="OpenEnv: JSON schemas of action, observation and state",
    **answers(Schemas, CHECKED, compat=True),
)
async def schema(service: Service, family: str) -> dict[str, Any]:
    Episode(service, family).check_family()
    return schemas()
