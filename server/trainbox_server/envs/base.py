"""The environment protocol every family implements. An adapter raises the data plane's own errors
(``trainbox_server.errors``: ``InvalidAction``, ``UnknownTask``, ``EpisodeOver``, ...); the worker sends
their ``kind`` as it is.

Runs inside worker processes: standard library only. Messages are OpenAI-style chat dicts
(``{"role": ..., "content": ..., "tool_calls": [...]}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, Any]

SPLITS = ("train", "val", "test")


@dataclass
class Created:
    """What ``create`` returns: the initial messages (system prompt + user query) and task info."""

    messages: list[Message]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    """One step's outcome: observation messages, the step reward, whether the episode ended, extras."""

    messages: list[Message]
    reward: float = 0.0
    terminated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    # The reward is the evaluator process's to give (families whose instances cannot see their answers).
    judge: bool = False


@dataclass
class Evaluation:
    """The reward (sparse: 0/1 pass; dense: documented partial credit) and the checker's details."""

    reward: float
    details: dict[str, Any] = field(default_factory=dict)


class Instance(Protocol):
    """One live episode of a task."""

    def step(self, message: Message) -> StepResult: ...

    def evaluate(self, params: dict[str, Any]) -> Evaluation: ...

    def close(self) -> None: ...


class Family(Protocol):
    """An environment family (BFCL, AppWorld): lists tasks and creates instances."""

    name: str
    # How many instances one worker process may host (AppWorld: 1; BFCL: many).
    max_instances_per_process: int

    def task_ids(self, split: str) -> list[str]: ...

    def create(self, task_id: str, params: dict[str, Any]) -> tuple[Created, Instance]: ...


def load_family(name: str) -> Family:
    """Instantiate the family adapter for ``name``: a family of ``registry.FAMILIES``, or ``<family>@<release>``
    for a family served in releases (the adapter then checks that this interpreter has that release). Only the
    registry's modules are ever imported: the name never reaches importlib."""
    import importlib

    from trainbox_server.envs.registry import FAMILIES
    from trainbox_server.envs.releases import RELEASES, split_name
    from trainbox_server.errors import UnknownEnvironment

    family_name, release = split_name(name)
    if family_name not in FAMILIES or (release is not None and release not in RELEASES.get(family_name, ())):
        raise UnknownEnvironment(f"unknown environment {name!r}; known: {sorted(FAMILIES)} and releases {RELEASES}")
    module = importlib.import_module(FAMILIES[family_name].module)
    family: Family = module.make_family(release) if release is not None else module.make_family()
    return family
