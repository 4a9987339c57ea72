"""agentscope-runtime-java's ``TrainingSandboxClient`` (``io.agentscope:agentscope-runtime-sandbox-core``
1.0.2 from Maven Central, unchanged) against a real trainbox.

``scripts/install-java-client.sh`` (run by the fixture; a no-op when up to date) resolves the client and its
dependencies into ~/.m2 and writes their classpath; the test compiles ``tests/java/src/TrainboxJavaCheck.java``
with Debian's JDK and runs it offline. The program plays 16 BFCL episodes at once through the client (13
ground truths in ``<tool_call>`` blocks, a wrong call, a malformed block, the empty action) on the
reference's routes — every POST carries the HTTP/2 upgrade offer Java's ``HttpClient`` makes — and
prints every reply it read as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.bfcl_replay import multi_turn_steps, wrong_multi_turn_steps
from tests.servicekit import REPO, Service

pytestmark = pytest.mark.slow
CLASSPATH = REPO / ".venvs/java-client/classpath.txt"
SOURCE = REPO / "tests/java/src/TrainboxJavaCheck.java"
HERMES = 1
COMPLETED = "[CONVERSATION_COMPLETED]"
MALFORMED = {"role": "assistant", "content": '<tool_call>\n{"name": "cd", "arguments": {"folder": </tool_call>'}
GROUND = [f"multi_turn_base_{i}" for i in range(13)]


def flat(turns: list[list[dict[str, Any]]]) -> list[dict[str, Any] | None]:
    return [m for turn in turns for m in turn]


def episodes() -> list[dict[str, Any]]:
    plan: list[dict[str, Any]] = [
        {"name": t, "task_id": t, "messages": flat(multi_turn_steps(t, style=HERMES))} for t in GROUND
    ]
    rest = flat(multi_turn_steps(GROUND[0], style=HERMES)[1:])
    plan += [
        {"name": "wrong", "task_id": GROUND[0], "messages": flat(wrong_multi_turn_steps(GROUND[0], style=HERMES))},
        {"name": "malformed", "task_id": GROUND[0], "messages": [MALFORMED, *rest]},
        {"name": "empty", "task_id": GROUND[0], "messages": [None, *rest]},  # the client sends {}
    ]
    return plan


@pytest.fixture(scope="module")
def played(service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    subprocess.run(["bash", str(REPO / "scripts/install-java-client.sh")], check=True, timeout=1200)
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "the JDK is missing: run `make system-packages`"
    work = tmp_path_factory.mktemp("java")
    classpath = CLASSPATH.read_text().strip()
    subprocess.run([javac, "-cp", classpath, "-d", str(work), str(SOURCE)], check=True, timeout=300)
    plan = work / "episodes.json"
    plan.write_text(json.dumps(episodes()))
    # The client drops the last path segment of its base URL (it is given a sandbox container's URL).
    cmd = [java, "-cp", f"{work}:{classpath}", "TrainboxJavaCheck", f"{service.url}/sandbox", str(plan)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def by_name(played: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in played["episodes"]}


def test_sixteen_concurrent_episodes(played: dict[str, Any]) -> None:
    assert len(played["episodes"]) == 16 and played["train"] > 0
    for name, episode in by_name(played).items():
        assert [m["role"] for m in episode["create_state"]] == ["system", "user"], name
        for step in episode["steps"]:
            assert len(step["state"]) == 1 and step["state"][0]["role"] == "user", (name, step)
        final = episode["steps"][-1]
        assert final["state"][0]["content"] == COMPLETED and final["is_terminated"] is True, name
        assert not any(s["is_terminated"] for s in episode["steps"][:-1]), name
        expected = 1.0 if name in GROUND else 0.0
        assert final["reward"] == expected and episode["sparse"] == expected, (name, final["reward"])
        assert episode["released"] == "success"
    assert played["release_unknown"] == "failure"


def test_mistakes_behave_as_against_the_reference(played: dict[str, Any]) -> None:
    episodes = by_name(played)
    first_turn_calls = len(multi_turn_steps(GROUND[0], style=HERMES)[0]) - 1
    next_question = episodes[GROUND[0]]["steps"][first_turn_calls]["state"][0]["content"]
    assert not next_question.startswith("<tool_call>")
    for name in ("malformed", "empty"):
        first = episodes[name]["steps"][0]
        assert first["state"][0]["content"] == next_question and first["is_terminated"] is False, name
    wrong = episodes["wrong"]["steps"][0]["state"][0]["content"]
    assert wrong.startswith("<tool_call>\n") and "mkdir_1" in wrong
