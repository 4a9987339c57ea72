"""Each instance's transcript, kept on its host for people debugging rewards: the task's opening messages,
every step's action, observation, reward and info, the errors, the evaluations and the checker's findings.

Bounded: at most ``max_steps`` steps per instance (the newest; ``dropped`` counts the others),
``max_chars`` per string, ``MAX_ITEMS`` items per list or object, and ``max_bytes`` per transcript (its
steps' JSON size: the oldest steps go first, counted in ``dropped``; a single step bigger than the budget is
kept as a stub saying so). A host's transcripts thus hold at most ``max_bytes`` per live instance, whatever
a model sends. A transcript is dropped when its instance is released, unless the host keeps the
last ``keep_finished`` finished ones. ``max_steps`` 0 records nothing. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

MAX_EVALUATIONS = 8  # evaluations kept per transcript (the newest)
MAX_ITEMS = 64  # items kept per list or object in a transcript (the first ones)
STATUSES = ("live", "finished")


def clip(value: Any, max_chars: int, depth: int = 0) -> Any:
    """``value`` with every string cut to ``max_chars`` and every list or object to ``MAX_ITEMS`` items
    (each saying how much was cut), nesting cut at 32."""
    if isinstance(value, str):
        return value if len(value) <= max_chars else f"{value[:max_chars]}… [{len(value) - max_chars} more chars]"
    if depth >= 32:
        return "… [nested too deep]"
    if isinstance(value, dict):
        kept = {str(k): clip(v, max_chars, depth + 1) for k, v in itertools.islice(value.items(), MAX_ITEMS)}
        if len(value) > MAX_ITEMS:
            kept["…"] = f"[{len(value) - MAX_ITEMS} more keys]"
        return kept
    if isinstance(value, list | tuple):
        items = [clip(v, max_chars, depth + 1) for v in value[:MAX_ITEMS]]
        return [*items, f"… [{len(value) - MAX_ITEMS} more items]"] if len(value) > MAX_ITEMS else items
    return value


def size_of(entry: Any) -> int:
    """The bytes an entry takes in a transcript's JSON (what the budget counts)."""
    return len(json.dumps(entry, ensure_ascii=False, default=str).encode())


@dataclass
class Transcript:
    instance_id: str
    env_type: str
    task_id: str
    host: str
    created_at: float
    opening: list[Any]
    origin: str | None = None  # "fork of <id>" / "restored from <snapshot>"
    steps: collections.deque[dict[str, Any]] = field(default_factory=collections.deque)
    step_bytes: collections.deque[int] = field(default_factory=collections.deque)  # size_of each kept step
    kept_bytes: int = 0  # their sum
    step_count: int = 0
    dropped: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    infra_error: dict[str, Any] | None = None
    reward: float | None = None  # the terminal step's, else the last evaluation's
    terminated: bool = False
    last_at: float = 0.0
    finished_at: float | None = None
    release_reason: str | None = None

    @property
    def status(self) -> str:
        return "live" if self.finished_at is None else "finished"

    @property
    def failed(self) -> bool:
        """Scored below full marks (an episode never scored is not failed: it has no verdict yet)."""
        return self.reward is not None and self.reward < 1.0

    @property
    def infra(self) -> bool:
        return self.infra_error is not None or self.release_reason == "lost"

    def summary(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "env_type": self.env_type,
            "task_id": self.task_id,
            "host": self.host,
            "status": self.status,
            "created_at": self.created_at,
            "last_at": self.last_at,
            "finished_at": self.finished_at,
            "release_reason": self.release_reason,
            "steps": self.step_count,
            "terminated": self.terminated,
            "reward": self.reward,
            "failed": self.failed,
            "infra": self.infra,
            "errors": self.errors,
            "origin": self.origin,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "opening": self.opening,
            "transcript": list(self.steps),
            "dropped_steps": self.dropped,
            "evaluations": self.evaluations,
            "infra_error": self.infra_error,
        }


class TrajectoryStore:
    """The transcripts of one host: live ones by instance id, then the last ``keep_finished`` finished."""

    def __init__(
        self,
        host: str,
        max_steps: int = 200,
        max_chars: int = 4000,
        keep_finished: int = 0,
        max_bytes: int = 256 * 1024,
    ) -> None:
        self.host, self.max_steps, self.max_chars, self.keep_finished = host, max_steps, max_chars, keep_finished
        self.max_bytes = max_bytes
        self.live: dict[str, Transcript] = {}
        self.finished: collections.OrderedDict[str, Transcript] = collections.OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_steps > 0

    def start(
        self, instance_id: str, env_type: str, task_id: str, opening: list[Any], now: float, origin: str | None = None
    ) -> None:
        if self.enabled:
            opening = clip(opening, self.max_chars)
            transcript = Transcript(instance_id, env_type, task_id, self.host, now, opening, origin, last_at=now)
            self.live[instance_id] = transcript

    def fork(self, source_id: str, new_id: str, now: float) -> None:
        """A fork starts with its source's transcript so far."""
        source = self.live.get(source_id)
        if source is not None:
            copied = copy.deepcopy(source)
            copied.instance_id, copied.created_at, copied.last_at = new_id, now, now
            copied.origin = f"fork of {source_id} at step {source.step_count}"
            self.live[new_id] = copied

    def step(self, instance_id: str, action: Any, result: dict[str, Any], now: float) -> None:
        transcript = self.live.get(instance_id)
        if transcript is None:
            return
        transcript.step_count += 1
        transcript.terminated = bool(result.get("is_terminated"))
        entry = {
            "step": transcript.step_count,
            "at": now,
            "action": clip(action, self.max_chars),
            "observation": clip(result.get("state"), self.max_chars),
            "reward": result.get("reward"),
            "terminated": transcript.terminated,
            "info": clip(result.get("info"), self.max_chars),
        }
        if transcript.terminated:
            transcript.reward = result.get("reward")
        self._append(transcript, entry, now)

    def error(self, instance_id: str, action: Any, error: dict[str, Any], now: float, op: str = "step") -> None:
        """A failed call: recorded as a step without an observation; an infra error marks the episode."""
        transcript = self.live.get(instance_id)
        if transcript is None:
            return
        transcript.errors += 1
        if error.get("infra"):
            transcript.infra_error = {**clip(error, self.max_chars), "op": op, "at": now}
        entry = {
            "step": None,
            "at": now,
            "op": op,
            "action": clip(action, self.max_chars),
            "error": clip(error, self.max_chars),
        }
        self._append(transcript, entry, now)

    def evaluation(self, instance_id: str, params: dict[str, Any], reward: float, details: Any, now: float) -> None:
        transcript = self.live.get(instance_id)
        if transcript is None:
            return
        transcript.reward = reward
        transcript.evaluations.append(
            {"at": now, "after_step": transcript.step_count, "params": clip(params, self.max_chars), "reward": reward,
             "details": clip(details, self.max_chars)}
        )  # fmt: skip
        del transcript.evaluations[:-MAX_EVALUATIONS]
        transcript.last_at = now

    def _append(self, transcript: Transcript, entry: dict[str, Any], now: float) -> None:
        size = size_of(entry)
        if size > self.max_bytes:  # alone over the budget: what it was, not what it said
            entry = {k: entry[k] for k in ("step", "at", "op", "reward", "terminated") if k in entry}
            entry["omitted"] = f"{size} bytes, over the transcript's budget of {self.max_bytes}"
            size = size_of(entry)
        transcript.steps.append(entry)
        transcript.step_bytes.append(size)
        transcript.kept_bytes += size
        while len(transcript.steps) > self.max_steps or (
            len(transcript.steps) > 1 and transcript.kept_bytes > self.max_bytes
        ):
            transcript.steps.popleft()
            transcript.kept_bytes -= transcript.step_bytes.popleft()
            transcript.dropped += 1
        transcript.last_at = now

    def finish(self, instance_id: str, reason: str, now: float) -> None:
        """The instance is gone: drop its transcript, or keep it among the last ``keep_finished``."""
        transcript = self.live.pop(instance_id, None)
        if transcript is None or self.keep_finished <= 0:
            return
        transcript.finished_at, transcript.release_reason, transcript.last_at = now, reason, now
        self.finished[instance_id] = transcript
        self.finished.move_to_end(instance_id)
        while len(self.finished) > self.keep_finished:
            self.finished.popitem(last=False)

    def get(self, instance_id: str) -> Transcript | None:
        return self.live.get(instance_id) or self.finished.get(instance_id)

    def summaries(self, status: str | None = None, failed: bool = False, infra: bool = False) -> list[dict[str, Any]]:
        """Summaries, newest activity first; ``failed``/``infra`` keep only such episodes (either, if both)."""
        pools = [
            self.live.values() if status in (None, "live") else (),
            self.finished.values() if status in (None, "finished") else (),
        ]
        chosen = [
            t for pool in pools for t in pool if not (failed or infra) or (failed and t.failed) or (infra and t.infra)
        ]
        return [t.summary() for t in sorted(chosen, key=lambda t: t.last_at, reverse=True)]
