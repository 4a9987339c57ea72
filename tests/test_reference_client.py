"""The reference's own client (``agentscope_runtime``'s ``TrainingSandboxClient``) against a real trainbox.

The client runs unchanged in its own interpreter (``.venvs/reference``, made by
``scripts/install-reference.sh``; the fixture runs the script, a no-op when the venv is up to date) and
drives the reference's wire protocol: ``get_env_profile``, ``create``, ``step`` with BFCL ground-truth
messages to the end of the episode, ``get_info``, ``evaluate`` (sparse and detailed), ``release``, and
the errors it sees for a released instance. The ground truth is built here (``tests.bfcl_replay``) and
handed to the client script as JSON; the script reports every reply as JSON for the assertions.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.bfcl_replay import multi_turn_steps, single_turn_message
from tests.servicekit import REPO, Service

pytestmark = pytest.mark.slow
REFERENCE_PYTHON = REPO / ".venvs/reference/bin/python"

# Runs in .venvs/reference: argv = base URL, path of the episodes JSON. Prints one JSON object.
CLIENT_SCRIPT = r"""
import json, sys
from agentscope_runtime.sandbox.client.training_client import TrainingSandboxClient

url, episodes = sys.argv[1], json.load(open(sys.argv[2]))
out = {"episodes": []}
with TrainingSandboxClient(base_url=url) as client:
    out["train"] = client.get_env_profile("bfcl", split="train")
    out["test"] = client.get_env_profile("bfcl", split="test")
    for episode in episodes:
        made = client.create_instance("bfcl", episode["task_id"])
        iid = made["info"]["instance_id"]
        record = {"task_id": episode["task_id"], "create": made, "steps": []}
        for message in episode["messages"]:
            record["steps"].append(client.step(iid, action=message))
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

MULTI_TURN = ("multi_turn_base_0", "multi_turn_miss_func_0")
SINGLE_TURN = ("simple_python_0",)


@pytest.fixture(scope="module")
def reference_python() -> Path:
    """The reference venv; the install script is idempotent (stamp file), so this is cheap when it exists."""
    subprocess.run(["bash", str(REPO / "scripts/install-reference.sh")], check=True, timeout=1200)
    return REFERENCE_PYTHON


def episodes() -> list[dict[str, Any]]:
    multi = [{"task_id": t, "messages": [m for turn in multi_turn_steps(t) for m in turn]} for t in MULTI_TURN]
    single = [{"task_id": t, "messages": [single_turn_message(t)]} for t in SINGLE_TURN]
    return multi + single


@pytest.fixture(scope="module")
def client_result(reference_python: Path, service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the reference client over every episode; the tests read its replies."""
    return run_client(reference_python, service.url, tmp_path_factory.mktemp("reference-client"))


def run_client(python: Path, url: str, tmp_path: Path) -> dict[str, Any]:
    spec = tmp_path / "episodes.json"
    spec.write_text(json.dumps(episodes()))
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    done = subprocess.run(
        [str(python), str(script), url, str(spec)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, f"reference client failed:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_reference_client_runs_ground_truth_episodes(client_result: dict[str, Any]) -> None:
    result = client_result

    assert result["train"] and result["test"] and not set(result["train"]) & set(result["test"])
    assert all(isinstance(t, str) for t in result["train"] + result["test"])
    by_task = {e["task_id"]: e for e in result["episodes"]}
    assert set(by_task) == {*MULTI_TURN, *SINGLE_TURN}

    for task_id, episode in by_task.items():
        created = episode["create"]
        assert [m["role"] for m in created["state"]][:2] == ["system", "user"], task_id
        assert created["info"]["task_id"] == task_id and created["info"]["instance_id"]

        steps = episode["steps"]
        assert all(set(s) >= {"state", "reward", "is_terminated", "info"} for s in steps), task_id
        assert [s["is_terminated"] for s in steps] == [False] * (len(steps) - 1) + [True], task_id
        assert steps[-1]["reward"] == 1.0, (task_id, steps[-1])
        assert all(s["reward"] == 0.0 for s in steps[:-1]), task_id

        assert episode["sparse"] == 1.0, task_id
        assert isinstance(episode["details"], dict) and episode["details"]["reward"] == 1.0, task_id
        assert episode["tools"], task_id
        assert episode["released"] is True and episode["released_again"] is False, task_id

        error = episode["step_after_release"]
        assert error is not None and error.startswith("HTTP Error 404"), (task_id, error)
        assert "Traceback" not in error and "no live instance" in error, error


def test_multi_turn_episode_brings_every_user_turn(client_result: dict[str, Any]) -> None:
    """An assistant message without calls ends the turn: the next state is the next user question."""
    episode = next(e for e in client_result["episodes"] if e["task_id"] == "multi_turn_base_0")
    turns = multi_turn_steps("multi_turn_base_0")
    boundaries = [sum(len(t) for t in turns[: i + 1]) - 1 for i in range(len(turns))]
    for index in boundaries[:-1]:
        state = episode["steps"][index]["state"]
        assert [m["role"] for m in state] == ["user"], state
    for index, step in enumerate(episode["steps"]):
        if index not in boundaries:
            assert step["state"] and all(m["role"] == "tool" for m in step["state"]), step
