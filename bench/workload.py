"""The benchmark's workload and phases, the same for trainbox and the reference.

Workload: BFCL ``multi_turn_base`` ground-truth episodes — create, one step per ground-truth call (a turn
of more than 10 calls goes in one step, as BFCL cuts a turn off after 20 steps), a message without calls
to end each turn, evaluate, release. Calls are ``<tool_call>{json}</tool_call>`` blocks, the one format
the reference parses (trainbox accepts it too). Tasks whose ground truth has positional arguments are
left out (JSON arguments cannot carry them), for both systems alike.

Two dialects drive the services: trainbox's REST API (``/v1``) and the reference's protocol.
"""

from __future__ import annotations

import ast
import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.loadkit import Connection, HttpError, mem_available_mib, percentiles
from tests.bfcl_replay import END_OF_TURN, MAX_STEPS_PER_TURN, ground_truth

# The reference serves only bfcl-eval 2025.10.1 (newer releases score 0 there): both sides play that release.
RELEASE = "2025.10.1"

CATEGORY = "multi_turn_base"
RETRIES = 50  # 429/503 answers (admission control) waited out per call, at most


@dataclass
class Episode:
    task_id: str
    messages: list[dict[str, Any]]


def _hermes(calls: list[str]) -> dict[str, Any]:
    blocks = []
    for text in calls:
        node = ast.parse(text, mode="eval").body
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args
        arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        blocks.append(f"<tool_call>{json.dumps({'name': node.func.id, 'arguments': arguments})}</tool_call>")
    return {"role": "assistant", "content": "".join(blocks)}


def _positional(call: str) -> bool:
    node = ast.parse(call, mode="eval").body
    return isinstance(node, ast.Call) and bool(node.args)


def build_episodes(limit: int = 200) -> tuple[list[Episode], list[str]]:
    """Ground-truth episodes of the first ``limit`` usable tasks, and the task ids left out."""
    table = ground_truth(CATEGORY, RELEASE)
    episodes, skipped = [], []
    for task_id in sorted(table, key=lambda t: int(t.rsplit("_", 1)[1])):
        turns = table[task_id]
        if any(_positional(call) for turn in turns for call in turn):
            skipped.append(task_id)
            continue
        messages = []
        for turn in turns:
            if len(turn) > MAX_STEPS_PER_TURN:
                messages.append(_hermes(turn))
            else:
                messages.extend(_hermes([call]) for call in turn)
            messages.append(END_OF_TURN)
        episodes.append(Episode(task_id, messages))
        if len(episodes) == limit:
            break
    return episodes, skipped


# -- dialects -----------------------------------------------------------------------------------------


class Dialect(Protocol):
    name: str

    async def create(self, conn: Connection, task_id: str, count: int = 1) -> list[str]: ...
    async def step(self, conn: Connection, iid: str, message: dict[str, Any], n: int) -> tuple[bool, float]: ...
    async def evaluate(self, conn: Connection, iid: str) -> float: ...
    async def release(self, conn: Connection, iid: str) -> bool: ...


class TrainboxV1:
    name = "trainbox"

    async def create(self, conn: Connection, task_id: str, count: int = 1) -> list[str]:
        body = {"env_type": f"bfcl@{RELEASE}", "task_id": task_id, "count": count}
        reply = await conn.request("POST", "/v1/instances", body)
        return [i["instance_id"] for i in reply["instances"]]

    async def step(self, conn: Connection, iid: str, message: dict[str, Any], n: int) -> tuple[bool, float]:
        reply = await conn.request("POST", f"/v1/instances/{iid}/step", {"action": message, "request_id": f"s{n}"})
        return bool(reply["is_terminated"]), float(reply["reward"])

    async def evaluate(self, conn: Connection, iid: str) -> float:
        return float((await conn.request("POST", f"/v1/instances/{iid}/evaluate", {"params": {}}))["reward"])

    async def release(self, conn: Connection, iid: str) -> bool:
        return bool((await conn.request("DELETE", f"/v1/instances/{iid}"))["released"])


class ReferenceProtocol:
    """The reference's wire protocol (trainbox serves it too)."""

    name = "reference-protocol"

    @staticmethod
    def _body(**fields: Any) -> dict[str, Any]:
        fields = {"params": {"version": RELEASE}, **fields}  # the reference ignores it; we serve that release
        return {"env_type": "bfcl", "task_id": None, "instance_id": None, "messages": {}, **fields}

    async def create(self, conn: Connection, task_id: str, count: int = 1) -> list[str]:
        assert count == 1, "the reference protocol creates one instance per call"
        reply = await conn.request("POST", "/create", self._body(task_id=task_id))
        return [reply["data"]["info"]["instance_id"]]

    async def step(self, conn: Connection, iid: str, message: dict[str, Any], n: int) -> tuple[bool, float]:
        data = (await conn.request("POST", "/step", self._body(instance_id=iid, messages=message)))["data"]
        return bool(data["is_terminated"]), float(data["reward"])

    async def evaluate(self, conn: Connection, iid: str) -> float:
        body = self._body(instance_id=iid, params={"sparse": True})
        return float((await conn.request("POST", "/evaluate", body))["data"])

    async def release(self, conn: Connection, iid: str) -> bool:
        return bool((await conn.request("POST", "/release", self._body(instance_id=iid)))["success"])


# -- recording ----------------------------------------------------------------------------------------


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    step_by_position: dict[tuple[str, int], list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    rewards: list[float] = field(default_factory=list)
    episodes: int = 0
    steps: int = 0
    calls: int = 0

    async def timed(self, op: str, call: Any) -> Any:
        """Await ``call()`` (a coroutine factory), waiting out admission answers; record its latency."""
        for _ in range(RETRIES):
            started = time.perf_counter()
            try:
                result = await call()
            except HttpError as exc:
                if exc.status not in (429, 503):
                    self.errors[f"{op}:{exc.status}"] += 1
                    raise
                self.errors[f"{op}:{exc.status}-waited"] += 1
                await asyncio.sleep(min(exc.retry_after or 1.0, 5.0))
                continue
            self.latencies[op].append(time.perf_counter() - started)
            self.calls += 1
            return result
        raise RuntimeError(f"{op}: still refused after {RETRIES} admission waits")

    def summary(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "steps": self.steps,
            "calls": self.calls,
            "mean_reward": round(sum(self.rewards) / len(self.rewards), 4) if self.rewards else None,
            "latency_ms": {op: percentiles(v) for op, v in sorted(self.latencies.items())},
            "errors": dict(self.errors),
        }


class MemoryGate:
    """Lets a create start only while host memory stays above ``floor_mib`` counting creates in flight."""

    def __init__(self, floor_mib: float, per_instance_mib: float) -> None:
        self.floor_mib, self.per_instance_mib = floor_mib, per_instance_mib
        self.pending = 0
        self.refusals = 0

    def room(self, count: int = 1) -> bool:
        return mem_available_mib() - (self.pending + count) * self.per_instance_mib >= self.floor_mib

    async def wait(self, deadline: float, count: int = 1) -> bool:
        while not self.room(count):
            self.refusals += 1
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.5)
        return True


async def run_episode(dialect: Dialect, conn: Connection, episode: Episode, rec: Recorder) -> None:
    (iid,) = await rec.timed("create", lambda: dialect.create(conn, episode.task_id))
    try:
        terminated, reward = False, 0.0
        for n, message in enumerate(episode.messages):
            started = time.perf_counter()
            terminated, reward = await rec.timed("step", lambda m=message, k=n: dialect.step(conn, iid, m, k))
            rec.step_by_position[(episode.task_id, n)].append(time.perf_counter() - started)
            rec.steps += 1
            if terminated:
                break
        if not terminated:
            rec.errors["episode-not-terminated"] += 1
        final = await rec.timed("evaluate", lambda: dialect.evaluate(conn, iid))
        if final != reward:
            rec.errors["evaluate-differs-from-last-step"] += 1
        rec.rewards.append(final)
    finally:
        await rec.timed("release", lambda: dialect.release(conn, iid))
    rec.episodes += 1
