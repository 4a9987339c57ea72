"""The reference's own client (``agentscope_runtime``'s ``TrainingSandboxClient``) against a real trainbox,
and the same client run against the reference itself, reply for reply.

The client runs unchanged in its own interpreter (``.venvs/reference``, made by
``scripts/install-reference.sh``; the fixture runs the script, a no-op when the venv is up to date) and
drives the reference's wire protocol: ``get_env_profile``, ``create``, ``step`` with BFCL ground-truth
messages to the end of the episode, ``get_info``, ``evaluate`` (sparse and dense), ``release``, the
mistakes a model makes (a wrong call, a malformed ``<tool_call>``, the client's default empty action),
and the errors it sees for a released instance; and 16 ground-truth episodes at once, a client per thread.
The ground truth is built here (``tests.bfcl_replay``) and
handed to the client script as JSON; the script reports every reply as JSON for the assertions.

The side-by-side test starts the reference (``bench.reference_service``: its ``training_box`` on a
loopback Ray, BFCL ``multi_turn_base`` only) and asserts that every step reply (``state``, ``reward``,
``is_terminated``) and every evaluation the client reads is the same from both services.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bfcl_replay import multi_turn_steps, single_turn_message, wrong_multi_turn_steps
from tests.servicekit import REPO, Service

pytestmark = pytest.mark.slow
REFERENCE_PYTHON = REPO / ".venvs/reference/bin/python"
COMPLETED = "[CONVERSATION_COMPLETED]"
HERMES = 1  # the `<tool_call>` format: the only one the reference reads
MALFORMED = {"role": "assistant", "content": '<tool_call>\n{"name": "cd", "arguments": {"folder": </tool_call>'}

# Runs in .venvs/reference: argv = base URL, path of the episodes JSON. Prints one JSON object.
# An episode message of null is a step with the client's default action (it sends {}).
CLIENT_SCRIPT = r"""
import json, sys
from agentscope_runtime.sandbox.client.training_client import TrainingSandboxClient

url, episodes = sys.argv[1], json.load(open(sys.argv[2]))
out = {"episodes": []}
with TrainingSandboxClient(base_url=url) as client:
    out["train"] = client.get_env_profile("bfcl", split="train")
    try:
        out["test"] = client.get_env_profile("bfcl", split="test")
    except ValueError as exc:  # the reference's split file has no "test" (a KeyError there)
        out["test"] = str(exc)[:200]
    out["release_unknown"] = client.release_instance("no-such-instance")
    for episode in episodes:
        made = client.create_instance("bfcl", episode["task_id"])
        iid = made["info"]["instance_id"]
        record = {"name": episode["name"], "task_id": episode["task_id"], "create": made, "steps": []}
        for message in episode["messages"]:
            step = client.step(iid) if message is None else client.step(iid, action=message)
            record["steps"].append(step)
        record["tools"] = client.get_tools_info(iid)
        record["sparse"] = client.evaluate(iid, params={"sparse": True})
        record["details"] = client.evaluate(iid)
        record["released"] = client.release_instance(iid)
        record["released_again"] = client.release_instance(iid)
        try:
            client.step(iid, action={"role": "assistant", "content": "[ls()]"})
            record["step_after_release"] = None
        except ValueError as exc:  # the client turns HTTP errors into ValueError("HTTP Error <code>: <detail>")
            record["step_after_release"] = str(exc)
        out["episodes"].append(record)
print(json.dumps(out))
"""

# 16 ground-truth episodes at once, a client per thread (as a rollout loop with 16 workers runs them).
CONCURRENT_SCRIPT = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
from agentscope_runtime.sandbox.client.training_client import TrainingSandboxClient

url, episodes = sys.argv[1], json.load(open(sys.argv[2]))

def play(episode):
    with TrainingSandboxClient(base_url=url) as client:
        iid = client.create_instance("bfcl", episode["task_id"])["info"]["instance_id"]
        steps = [client.step(iid, action=message) for message in episode["messages"]]
        sparse = client.evaluate(iid, params={"sparse": True})
        released = client.release_instance(iid)
    last = steps[-1]
    return {"task_id": episode["task_id"], "reward": last["reward"], "terminated": last["is_terminated"],
            "last": last["state"][0]["content"], "sparse": sparse, "released": released}

with ThreadPoolExecutor(max_workers=16) as pool:
    print(json.dumps(list(pool.map(play, episodes))))
"""

MULTI_TURN = ("multi_turn_base_0", "multi_turn_miss_func_0")
SINGLE_TURN = ("simple_python_0",)


@pytest.fixture(scope="module")
def reference_python() -> Path:
    """The reference venv; the install script is idempotent (stamp file), so this is cheap when it exists."""
    subprocess.run(["bash", str(REPO / "scripts/install-reference.sh")], check=True, timeout=1200)
    return REFERENCE_PYTHON


def _flat(turns: list[list[dict[str, Any]]]) -> list[dict[str, Any] | None]:
    return [m for turn in turns for m in turn]


def mistake_episodes(task_id: str = "multi_turn_base_1") -> list[dict[str, Any]]:
    """A wrong call; a malformed block, then the empty action, in place of the first turn's calls."""
    turns = multi_turn_steps(task_id, style=HERMES)
    return [
        {"name": "wrong-call", "task_id": task_id, "messages": _flat(wrong_multi_turn_steps(task_id, style=HERMES))},
        {"name": "malformed", "task_id": task_id, "messages": [MALFORMED, *_flat(turns[1:])]},
        {"name": "empty", "task_id": task_id, "messages": [None, *_flat(turns[1:])]},
    ]


def episodes() -> list[dict[str, Any]]:
    multi = [{"name": t, "task_id": t, "messages": _flat(multi_turn_steps(t))} for t in MULTI_TURN]
    single = [{"name": t, "task_id": t, "messages": [single_turn_message(t)]} for t in SINGLE_TURN]
    single_empty = [{"name": "single-empty", "task_id": SINGLE_TURN[0], "messages": [None]}]
    return multi + single + single_empty + mistake_episodes()


def hermes_only(task_id: str) -> bool:
    """Whether the task's ground truth can be said in `<tool_call>` blocks (no positional arguments)."""
    return all(
        m["content"].startswith("<tool_call>") or m["content"] == "I have completed the request."
        for m in _flat(multi_turn_steps(task_id, style=HERMES))
        if m is not None
    )


def side_by_side_episodes() -> list[dict[str, Any]]:
    tasks = [t for t in (f"multi_turn_base_{i}" for i in range(8)) if hermes_only(t)][:1]
    ground = [{"name": t, "task_id": t, "messages": _flat(multi_turn_steps(t, style=HERMES))} for t in tasks]
    return ground + mistake_episodes(tasks[0])


@pytest.fixture(scope="module")
def client_result(reference_python: Path, service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the reference client over every episode; the tests read its replies."""
    return run_client(reference_python, service.url, tmp_path_factory.mktemp("reference-client"), episodes())


def run_client(python: Path, url: str, tmp_path: Path, spec: list[dict[str, Any]]) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "episodes.json"
    path.write_text(json.dumps(spec))
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    done = subprocess.run(
        [str(python), str(script), url, str(path)], capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    assert done.returncode == 0, f"reference client failed:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in result["episodes"]}


def one_user_message(step: dict[str, Any]) -> str:
    """The reference's step state: exactly one user message with no tool calls; its text."""
    assert set(step) == {"state", "reward", "is_terminated", "info"}, step
    (message,) = step["state"]
    assert (
        message["role"] == "user" and message["tool_calls"] == [] and set(message) == {"role", "content", "tool_calls"}
    )
    content: str = message["content"]
    assert step["is_terminated"] is (content == COMPLETED), step  # the reference: terminated iff completed
    return content


def test_reference_client_runs_ground_truth_episodes(client_result: dict[str, Any]) -> None:
    result = client_result

    assert result["train"] and result["test"] and not set(result["train"]) & set(result["test"])
    assert all(isinstance(t, str) for t in result["train"] + result["test"])
    assert result["release_unknown"] is False
    episodes_by_name = by_name(result)

    for task_id in (*MULTI_TURN, *SINGLE_TURN):
        episode = episodes_by_name[task_id]
        created = episode["create"]
        assert [m["role"] for m in created["state"]][:2] == ["system", "user"], task_id
        assert created["info"]["task_id"] == created["info"]["test_id"] == task_id and created["info"]["instance_id"]
        assert created["info"]["tools_count"] > 0 and created["info"]["questions_count"] >= 1

        steps = episode["steps"]
        assert [one_user_message(s) for s in steps][-1] == COMPLETED, task_id
        assert [s["is_terminated"] for s in steps] == [False] * (len(steps) - 1) + [True], task_id
        assert steps[-1]["reward"] == 1.0, (task_id, steps[-1])
        assert all(s["reward"] == 0.0 for s in steps[:-1]), task_id

        assert episode["sparse"] == 1.0 and isinstance(episode["sparse"], float), task_id
        details = episode["details"]
        assert isinstance(details, dict) and details["accuracy"] == 1.0 and details["valid"] is True, task_id
        assert details["test_id"] == task_id and details["completed"] is True and details["correct_count"] == 1
        assert episode["tools"], task_id
        assert episode["released"] is True and episode["released_again"] is False, task_id

        error = episode["step_after_release"]
        assert error is not None and error.startswith("HTTP Error 404"), (task_id, error)
        assert "Traceback" not in error and "no live instance" in error, error


def test_sixteen_concurrent_ground_truth_episodes(reference_python: Path, service: Service, tmp_path: Path) -> None:
    tasks = [f"multi_turn_base_{i}" for i in range(12)] + [f"multi_turn_miss_param_{i}" for i in range(4)]
    spec = [{"task_id": t, "messages": _flat(multi_turn_steps(t))} for t in tasks]
    (tmp_path / "episodes.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [str(reference_python), "-c", CONCURRENT_SCRIPT, service.url, str(tmp_path / "episodes.json")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"reference client failed:\n{done.stderr[-4000:]}"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["task_id"] for r in results] == tasks
    for result in results:
        assert result["reward"] == 1.0 and result["terminated"] is True and result["last"] == COMPLETED, result
        assert result["sparse"] == 1.0 and result["released"] is True, result


def test_multi_turn_episode_brings_every_user_turn(client_result: dict[str, Any]) -> None:
    """Tool results come back as `<tool_call>` text blocks; a message without calls brings the next question."""
    episode = by_name(client_result)["multi_turn_base_0"]
    turns = multi_turn_steps("multi_turn_base_0")
    boundaries = [sum(len(t) for t in turns[: i + 1]) - 1 for i in range(len(turns))]
    questions = [m["content"] for m in episode["create"]["state"][1:]]
    for index, step in enumerate(episode["steps"]):
        content = one_user_message(step)
        if index in boundaries[:-1]:
            assert not content.startswith("<tool_call>") and content and content not in questions, content
            questions.append(content)
        elif index not in boundaries:
            blocks = [b for b in content.split("</tool_call>\n") if b]
            assert len(blocks) == 1 and blocks[0].startswith("<tool_call>\n{"), content
            payload = json.loads(blocks[0].removeprefix("<tool_call>\n").removesuffix("\n"))
            assert set(payload) == {"name", "content"} and payload["name"].endswith("_1"), payload
    assert episode["details"]["turn_count"] == len(turns) - 1


def test_model_mistakes_end_the_turn(client_result: dict[str, Any]) -> None:
    """As in the reference: a wrong call is an observation and fails the task; a malformed `<tool_call>` and
    the client's default empty action are 200s that end the model's turn there (the next question)."""
    episodes_by_name = by_name(client_result)
    wrong = episodes_by_name["wrong-call"]
    assert one_user_message(wrong["steps"][-1]) == COMPLETED and wrong["steps"][-1]["reward"] == 0.0
    assert wrong["sparse"] == 0.0 and wrong["details"]["accuracy"] == 0.0 and wrong["details"]["valid"] is True
    for name in ("malformed", "empty"):
        episode = episodes_by_name[name]
        first = one_user_message(episode["steps"][0])
        assert first and not first.startswith("<tool_call>") and episode["steps"][0]["is_terminated"] is False
        assert first == one_user_message(wrong["steps"][len(multi_turn_steps("multi_turn_base_1")[0]) - 1])
        assert one_user_message(episode["steps"][-1]) == COMPLETED and episode["sparse"] == 0.0, name
    single = episodes_by_name["single-empty"]
    assert one_user_message(single["steps"][0]) == COMPLETED and single["steps"][0]["reward"] == 0.0
    assert single["sparse"] == 0.0 and single["details"]["completed"] is True


@pytest.fixture(scope="module")
def reference_url(reference_python: Path) -> Iterator[str]:
    from bench.reference_service import start_reference

    reference = start_reference(num_cpus=2)
    try:
        yield reference.url
    finally:
        reference.stop()


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What clients read, per episode: every step reply but ``info`` (ours adds the turn number and new
    tools), both evaluations (the dense dict without our ``details``), the release answers."""
    out: dict[str, Any] = {"release_unknown": result["release_unknown"]}
    for episode in result["episodes"]:
        dense = {k: v for k, v in episode["details"].items() if k != "details"}
        out[episode["name"]] = {
            "create_roles": [m["role"] for m in episode["create"]["state"]],
            "steps": [{k: v for k, v in s.items() if k != "info"} for s in episode["steps"]],
            "sparse": episode["sparse"],
            "dense": dense,
            "released": [episode["released"], episode["released_again"]],
        }
    return out


@pytest.mark.timeout(1800)  # the reference runs an actor per instance and scores on every terminal step
def test_same_replies_as_the_reference(
    reference_python: Path, reference_url: str, service: Service, tmp_path: Path
) -> None:
    spec = side_by_side_episodes()
    theirs = comparable(run_client(reference_python, reference_url, tmp_path / "reference", spec))
    ours = comparable(run_client(reference_python, service.url, tmp_path / "trainbox", spec))
    assert ours == theirs
