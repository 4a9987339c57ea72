"""OpenEnv's own client (``openenv-core``'s ``GenericEnvClient``, unchanged) against a real trainbox's
``/openenv/<family>`` endpoint.

The client runs in its own interpreter (``.venvs/openenv``, made by ``scripts/install-openenv.sh``; the
fixture runs the script, a no-op when the venv is up to date). The BFCL ground truth is built here
(``tests.bfcl_replay``) and handed to the client script as JSON; the script plays the episodes — 16 at
once over 16 WebSocket sessions, one of them through the client's ``.sync()`` wrapper — and reports every
observation, reward, ``done`` and state as JSON. Checked: the ground truth scores 1.0; a wrong call scores
0.0 and its error is an observation; a malformed ``<tool_call>`` and the empty action end the model's turn
with the next question (no error); the session's instance is released when the client closes; protocol
errors carry OpenEnv's codes, capacity errors ``CAPACITY_REACHED`` (on a service that holds 2 instances and
has a token: the client, which cannot add a header, sends it as the password of the URL's user info, and
without it the session is refused); and the same client on AppWorld and WebShop (the suite's small datasets).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from trainbox_server.envs.webshop import catalogue

from tests.bfcl_replay import multi_turn_steps, single_turn_message, wrong_multi_turn_steps
from tests.servicekit import REPO, RayCluster, Service, start_service
from tests.webshop_oracle import oracle_actions

pytestmark = pytest.mark.slow
OPENENV_PYTHON = REPO / ".venvs/openenv/bin/python"
MALFORMED = {"content": '<tool_call>\n{"name": "cd", "arguments": {"folder": </tool_call>'}
TOKEN = "openenv-s3cret"
GROUND = [f"multi_turn_base_{i}" for i in range(10)] + ["multi_turn_miss_func_0", "simple_python_0"]

# Runs in .venvs/openenv: argv = base URL, path of the plan JSON. Prints one JSON object.
CLIENT_SCRIPT = r"""
import asyncio, json, sys
from openenv.core import GenericEnvClient

url, plan = sys.argv[1], json.load(open(sys.argv[2]))

def result_dict(result):
    return {"observation": result.observation, "reward": result.reward, "done": result.done}

async def play(episode):
    record = {"name": episode["name"], "steps": []}
    async with GenericEnvClient(base_url=f"{url}/openenv/{episode['family']}", message_timeout_s=300) as env:
        record["reset"] = result_dict(await env.reset(**episode["reset"]))
        for action in episode["actions"]:
            record["steps"].append(result_dict(await env.step(action)))
        record["state"] = await env.state()
        try:
            await env.step({"content": "one more"})
        except RuntimeError as exc:  # the client raises RuntimeError("Server error: ... (code: ...)")
            record["step_after_done"] = str(exc)
    return record

def play_sync(episode):  # the client's synchronous wrapper, as trainers without asyncio use it
    record = {"name": episode["name"], "steps": []}
    with GenericEnvClient(base_url=f"{url}/openenv/{episode['family']}", message_timeout_s=300).sync() as env:
        record["reset"] = result_dict(env.reset(**episode["reset"]))
        for action in episode["actions"]:
            record["steps"].append(result_dict(env.step(action)))
        record["state"] = env.state()
    return record

async def errors():
    out = {}
    async with GenericEnvClient(base_url=f"{url}/openenv/bfcl") as env:
        for name, call in [
            ("step_before_reset", lambda: env.step({"content": "hi"})),
            ("unknown_task", lambda: env.reset(task_id="no_such_task_0")),
            ("bad_seed", lambda: env.reset(seed="x")),
            ("reset", lambda: env.reset(task_id="multi_turn_base_0")),
            ("bad_action", lambda: env.step({"content": 42})),
        ]:
            try:
                out[name] = result_dict(await call())
            except RuntimeError as exc:
                out[name] = str(exc)
        out["seeded"] = result_dict(await env.reset(seed=3))
    try:
        async with GenericEnvClient(base_url=f"{url}/openenv/no-such-family") as env:
            await env.reset()
    except RuntimeError as exc:
        out["unknown_family"] = str(exc)
    return out

async def main():
    sync_episodes = [e for e in plan["episodes"] if e.get("sync")]
    async_episodes = [e for e in plan["episodes"] if not e.get("sync")]
    sync_runs = [asyncio.to_thread(play_sync, e) for e in sync_episodes]
    records = await asyncio.gather(*(play(e) for e in async_episodes), *sync_runs)
    return {"episodes": records, "errors": await errors() if plan.get("errors") else None}

print(json.dumps(asyncio.run(main())))
"""

# Capacity: on a service holding at most 2 instances, with a token. Argv = base URL with the token as the
# password of its user info, and the base URL without it.
CAPACITY_SCRIPT = r"""
import asyncio, json, sys
from openenv.core import GenericEnvClient

url, without_token = sys.argv[1] + "/openenv/bfcl", sys.argv[2] + "/openenv/bfcl"

async def main():
    out = {}
    try:
        async with GenericEnvClient(base_url=without_token) as env:
            await env.reset(task_id="multi_turn_base_0")
        out["no_token"] = "admitted"
    except ConnectionError as exc:
        out["no_token"] = str(exc)
    first, second, third = (GenericEnvClient(base_url=url) for _ in range(3))
    for env in (first, second, third):
        await env.connect()
    await first.reset(task_id="multi_turn_base_0")
    await second.reset(task_id="multi_turn_base_1")
    try:
        await third.reset(task_id="multi_turn_base_2")
        out["third"] = "admitted"
    except RuntimeError as exc:
        out["third"] = str(exc)
    await first.close()  # releases its instance: the third session's retry is admitted
    for _ in range(50):
        try:
            out["retry"] = (await third.reset(task_id="multi_turn_base_2")).observation["task_id"]
            break
        except RuntimeError as exc:
            out["retry"] = str(exc)
            await asyncio.sleep(0.2)
    await second.close()
    await third.close()
    return out

print(json.dumps(asyncio.run(main())))
"""


@pytest.fixture(scope="module")
def openenv_python() -> Path:
    subprocess.run(["bash", str(REPO / "scripts/install-openenv.sh")], check=True, timeout=1200)
    return OPENENV_PYTHON


def run_client(python: Path, script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def actions(turns: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The ground-truth messages as OpenEnv actions (the assistant message, without its role)."""
    return [{k: v for k, v in m.items() if k != "role"} for turn in turns for m in turn]


def plan() -> dict[str, Any]:
    episodes = []
    for task_id in GROUND:
        steps = [single_turn_message(task_id)] if task_id.startswith("simple") else None
        episodes.append({"name": task_id, "actions": actions([steps] if steps else multi_turn_steps(task_id))})
    first_turn_rest = actions(multi_turn_steps("multi_turn_base_0")[1:])
    episodes += [
        {"name": "wrong", "actions": actions(wrong_multi_turn_steps("multi_turn_base_0"))},
        {"name": "malformed", "actions": [MALFORMED, *first_turn_rest]},
        {"name": "empty", "actions": [{}, *first_turn_rest]},
        {"name": "sync", "sync": True, "actions": actions(multi_turn_steps("multi_turn_base_1"))},
    ]
    for episode in episodes:
        task_id = "multi_turn_base_0" if episode["name"] in ("wrong", "malformed", "empty") else episode["name"]
        task_id = "multi_turn_base_1" if episode["name"] == "sync" else task_id
        episode.update(family="bfcl", reset={"task_id": task_id, "episode_id": f"ep-{episode['name']}"})
    assert len(episodes) == 16
    return {"episodes": episodes, "errors": True}


@pytest.fixture(scope="module")
def played(openenv_python: Path, service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("openenv") / "plan.json"
    path.write_text(json.dumps(plan()))
    return run_client(openenv_python, CLIENT_SCRIPT, service.url, str(path))


def by_name(played: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in played["episodes"]}


def test_ground_truth_scores_one_through_sixteen_concurrent_sessions(played: dict[str, Any]) -> None:
    episodes = by_name(played)
    for name in [*GROUND, "sync"]:
        episode = episodes[name]
        *middle, final = episode["steps"]
        assert final["done"] is True and final["reward"] == 1.0, (name, final)
        assert all(not s["done"] and s["reward"] == 0.0 for s in middle), name
        assert final["observation"]["info"]["evaluation"]["valid"] is True
        assert episode["state"]["step_count"] == len(episode["steps"]) and episode["state"]["done"] is True
        assert episode["state"]["episode_id"] == f"ep-{name}"
        assert "EXECUTION_ERROR" in episode.get("step_after_done", "EXECUTION_ERROR")


def test_reset_answers_the_task_and_its_tools(played: dict[str, Any]) -> None:
    reset = by_name(played)["multi_turn_base_0"]["reset"]
    observation = reset["observation"]
    assert reset["done"] is False and reset["reward"] is None
    assert observation["task_id"] == "multi_turn_base_0" and observation["env_type"].startswith("bfcl@")
    assert [m["role"] for m in observation["messages"]] == ["system", "user"]
    assert observation["tools"] and all(t["type"] == "function" for t in observation["tools"])


def test_a_wrong_call_is_an_observation_and_scores_zero(played: dict[str, Any]) -> None:
    wrong = by_name(played)["wrong"]
    first = wrong["steps"][0]["observation"]["messages"]
    assert first[0]["role"] == "tool" and "mkdir" in first[0]["name"]
    assert wrong["steps"][-1]["done"] is True and wrong["steps"][-1]["reward"] == 0.0


def test_malformed_and_empty_actions_end_the_turn_with_the_next_question(played: dict[str, Any]) -> None:
    episodes = by_name(played)
    ground = episodes["multi_turn_base_0"]
    first_turn_calls = len(multi_turn_steps("multi_turn_base_0")[0]) - 1
    next_question = ground["steps"][first_turn_calls]["observation"]["messages"]
    assert [m["role"] for m in next_question] == ["user"]
    for name in ("malformed", "empty"):
        first = episodes[name]["steps"][0]
        assert first["observation"]["messages"] == next_question and first["done"] is False, name
        assert episodes[name]["steps"][-1]["reward"] == 0.0 and episodes[name]["steps"][-1]["done"] is True


def test_protocol_errors_carry_openenv_codes(played: dict[str, Any]) -> None:
    errors = played["errors"]
    assert "(code: EXECUTION_ERROR)" in errors["step_before_reset"] and "reset first" in errors["step_before_reset"]
    assert "(code: EXECUTION_ERROR)" in errors["unknown_task"] and "no_such_task_0" in errors["unknown_task"]
    assert "(code: VALIDATION_ERROR)" in errors["bad_seed"]
    assert "(code: VALIDATION_ERROR)" in errors["bad_action"] and "content" in errors["bad_action"]
    assert "(code: FACTORY_ERROR)" in errors["unknown_family"] and "no-such-family" in errors["unknown_family"]
    assert errors["seeded"]["observation"]["task_id"].startswith(("multi_turn", "simple", "live", "parallel"))


def test_closing_the_session_releases_its_instance(played: dict[str, Any], service: Service) -> None:
    instance_id = by_name(played)["multi_turn_base_0"]["state"]["instance_id"]
    with service.client() as http:
        assert http.get(f"/v1/instances/{instance_id}").status_code == 404


def test_http_routes(service: Service) -> None:
    """OpenEnv's HTTP routes: health, metadata, schema; reset and step on an episode named by instance_id."""
    with service.client() as http:
        assert http.get("/openenv/bfcl/health").json() == {"status": "healthy"}
        assert http.get("/openenv/bfcl/metadata").json()["name"] == "trainbox-bfcl"
        schema = http.get("/openenv/bfcl/schema").json()
        assert set(schema) == {"action", "observation", "state"} and "tool_calls" in schema["action"]["properties"]
        assert http.get("/openenv/nope/health").status_code == 404
        reset = http.post("/openenv/bfcl/reset", json={"task_id": "simple_python_0"}).json()
        instance_id = reset["observation"]["instance_id"]
        action = {k: v for k, v in single_turn_message("simple_python_0").items() if k != "role"}
        step = http.post("/openenv/bfcl/step", json={"action": action, "instance_id": instance_id}).json()
        assert step["done"] is True and step["reward"] == 1.0
        state = http.get("/openenv/bfcl/state", params={"instance_id": instance_id}).json()
        assert state["step_count"] == 1 and state["done"] is True
        assert http.get("/openenv/bfcl/state").json()["step_count"] == 0
        missing = http.post("/openenv/bfcl/step", json={"action": action})
        assert missing.status_code == 422 and "instance_id" in missing.text
        assert http.delete(f"/v1/instances/{instance_id}").json()["released"] is True


@pytest.fixture(scope="module")
def small_service(ray_cluster: RayCluster) -> Iterator[Service]:
    svc = start_service(ray_cluster.address, TRAINBOX_HOSTS_PER_NODE="1", TRAINBOX_MAX_LIVE="2", TRAINBOX_TOKEN=TOKEN)
    yield svc
    svc.stop()


def test_capacity_errors_use_openenv_code(openenv_python: Path, small_service: Service) -> None:
    with_token = small_service.url.replace("http://", f"http://trainbox:{TOKEN}@")
    out = run_client(openenv_python, CAPACITY_SCRIPT, with_token, small_service.url)
    assert "Failed to connect" in out["no_token"] and "403" in out["no_token"], out
    assert "(code: CAPACITY_REACHED)" in out["third"], out
    assert out["retry"] == "multi_turn_base_2", out
    auth = {"authorization": f"Bearer {TOKEN}"}
    hosts = httpx.get(f"{small_service.url}/v1/hosts", headers=auth, timeout=30).json()["hosts"]
    assert sum(h.get("live", 0) for h in hosts) == 0


@pytest.fixture(scope="module")
def families_service(ray_cluster: RayCluster, appworld_data: Path, webshop_data: Path) -> Iterator[Service]:
    """AppWorld and WebShop served on the suite's small datasets (each family's own format)."""
    families = {
        "appworld": {"env": {"APPWORLD_ROOT": str(appworld_data)}, "warm": 1},
        "webshop": {"env": {"WEBSHOP_ROOT": str(webshop_data)}, "warm": 1},
    }
    svc = start_service(
        ray_cluster.address,
        TRAINBOX_ENVIRONMENTS="appworld,webshop",
        TRAINBOX_FAMILIES=json.dumps(families),
        TRAINBOX_HOSTS_PER_NODE="1",
    )
    yield svc
    svc.stop()


def test_appworld_and_webshop_through_the_openenv_client(
    openenv_python: Path, families_service: Service, appworld_data: Path, webshop_data: Path, tmp_path: Path
) -> None:
    """The same client, unchanged, on the other families: AppWorld's ground-truth answer and WebShop's oracle
    (search the instruction, open the target, choose the goal's options, buy) both score 1.0."""
    with families_service.client() as http:
        profile = http.post("/get_env_profile", json={"env_type": "appworld", "split": "train"})
    task_id = profile.json()["data"][0]
    answer = (appworld_data / "data" / "tasks" / task_id / "ground_truth" / "answer.json").read_text().strip()
    shop = catalogue.load(str(webshop_data), "1k")
    goal_index = shop.split("test")[0]
    episodes = [
        {"name": "appworld", "family": "appworld", "reset": {"task_id": task_id},
         "actions": [{"content": f"```python\napis.supervisor.complete_task(answer={answer})\n```"}]},
        {"name": "webshop", "family": "webshop", "reset": {"task_id": goal_index, "split": "test"},
         "actions": [{"content": action} for action in oracle_actions(shop.goals[int(goal_index)])]},
    ]  # fmt: skip
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"episodes": episodes, "errors": False}))
    played = by_name(run_client(openenv_python, CLIENT_SCRIPT, families_service.url, str(path)))
    for name in ("appworld", "webshop"):
        episode = played[name]
        assert episode["reset"]["observation"]["env_type"] == name and episode["reset"]["done"] is False
        *middle, final = episode["steps"]
        assert final["done"] is True and final["reward"] == 1.0, (name, final)
        assert all(not s["done"] for s in middle), name
        assert episode["state"]["done"] is True and episode["state"]["step_count"] == len(episode["steps"])
