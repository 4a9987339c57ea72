"""AgentEvolver's and AgentJet's env-service clients, as recorded fixtures, against a real trainbox.

Both clients exist only on GitHub, so nothing of them is vendored: ``fixtures/agent_clients.json`` records the
request each one sends per op (read from their code at the pinned commits it names) and what each reads
from the reply. The test replays those exact bodies over HTTP — 16 BFCL episodes at once, 8 per client —
and checks what the clients read: the ground truth scores 1.0, ``state`` is one message whose
``content`` is the next thing to show the model, and a wrong call, a malformed ``<tool_call>`` and an
empty action behave as against the reference (an observation / the end of the model's turn, not an error).
"""

from __future__ import annotations

import copy
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bfcl_replay import multi_turn_steps, wrong_multi_turn_steps
from tests.servicekit import Service

pytestmark = pytest.mark.slow
FIXTURES = json.loads((Path(__file__).parent / "fixtures/agent_clients.json").read_text())["clients"]
COMPLETED = "[CONVERSATION_COMPLETED]"
HERMES = 1
MALFORMED = '<tool_call>\n{"name": "cd", "arguments": {"folder": </tool_call>'
TASKS = [f"multi_turn_base_{i}" for i in range(6)]


def fill(value: Any, slots: dict[str, Any]) -> Any:
    """The recorded body with ``{slot}`` strings replaced."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in slots:
        return slots[value[1:-1]]
    if isinstance(value, dict):
        return {k: fill(v, slots) for k, v in value.items()}
    return copy.deepcopy(value)


class RecordedClient:
    """Sends what ``client`` sends, nothing more (one connection per episode, as ``requests`` does)."""

    def __init__(self, client: str, url: str) -> None:
        self.ops, self.http = FIXTURES[client], httpx.Client(base_url=url, timeout=300)

    def call(self, op: str, **slots: Any) -> dict[str, Any]:
        reply = self.http.post(f"/{op}", json=fill(self.ops[op]["body"], slots))
        assert reply.status_code == 200, (op, reply.status_code, reply.text)
        body: dict[str, Any] = reply.json()
        return body


def texts(task_id: str, kind: str) -> list[str]:
    """The assistant texts of an episode: the ground truth, or one of the model mistakes in turn 1."""
    if kind == "wrong":
        turns = wrong_multi_turn_steps(task_id, style=HERMES)
    else:
        turns = multi_turn_steps(task_id, style=HERMES)
        if kind == "malformed":
            turns = [[{"role": "assistant", "content": MALFORMED}], *turns[1:]]
        elif kind == "empty":
            turns = [[{"role": "assistant", "content": ""}], *turns[1:]]
    return [m["content"] for turn in turns for m in turn]


def episode(client: str, url: str, task_id: str, kind: str) -> dict[str, Any]:
    env = RecordedClient(client, url)
    instance_id = uuid.uuid4().hex
    created = env.call("create", task_id=task_id, instance_id=instance_id)["data"]
    assert len(created["state"]) == 2 and created["state"][-1]["role"] == "user"
    seen = []
    for text in texts(task_id, kind):
        step = env.call("step", instance_id=instance_id, text=text)["data"]
        assert len(step["state"]) == 1, step  # AgentEvolver asserts it; AgentJet indexes state[0]
        message = step["state"][0]
        assert message["role"] == "user" and isinstance(message["content"], str)
        seen.append((message["content"], step["is_terminated"], step["reward"]))
        if step["is_terminated"]:
            break
    score = env.call("evaluate", instance_id=instance_id)["data"]
    released = env.call("release", instance_id=instance_id)["success"]
    env.http.close()
    return {"client": client, "task": task_id, "kind": kind, "steps": seen, "score": score, "released": released}


def run_all(url: str, plan: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda p: episode(p[0], url, p[1], p[2]), plan))


def test_sixteen_concurrent_episodes_through_both_clients(service: Service) -> None:
    plan = [(client, task, "ground") for client in ("agentevolver", "agentjet") for task in TASKS]
    plan += [(client, TASKS[0], kind) for client in ("agentevolver", "agentjet") for kind in ("wrong", "malformed")]
    assert len(plan) == 16
    results = run_all(service.url, plan)
    for result in results:
        final, terminated, reward = result["steps"][-1]
        assert final == COMPLETED and terminated is True, result
        assert all(not done for _, done, _ in result["steps"][:-1]), result
        assert result["released"] is True
        expected = 1.0 if result["kind"] == "ground" else 0.0
        assert reward == expected, result
        if result["client"] == "agentevolver":  # sparse: a float, compared with >= 1
            assert result["score"] == expected and isinstance(result["score"], float)
        else:  # sparse=false: BFCL's dict, as the reference answers (AgentJet's judge then fails on its own)
            assert isinstance(result["score"], dict) and result["score"]["accuracy"] == expected


def test_mistakes_end_the_turn_with_the_next_question(service: Service) -> None:
    """The malformed block and the empty action are answered with the question of turn 2, as a message
    without calls is; a wrong call comes back as an execution error inside a `<tool_call>` block."""
    results = {
        r["kind"]: r
        for r in run_all(service.url, [("agentjet", TASKS[0], k) for k in ("ground", "malformed", "empty", "wrong")])
    }
    first_turn_calls = len(multi_turn_steps(TASKS[0])[0]) - 1
    next_question = results["ground"]["steps"][first_turn_calls][0]
    assert not next_question.startswith("<tool_call>")
    for kind in ("malformed", "empty"):
        assert results[kind]["steps"][0][0] == next_question, results[kind]["steps"][0]
        assert results[kind]["steps"][0][1] is False
    wrong_first = results["wrong"]["steps"][0][0]
    assert wrong_first.startswith("<tool_call>\n") and wrong_first.endswith("\n</tool_call>\n")
    assert json.loads(wrong_first.split("\n")[1])["name"].endswith("_1")
