"""The published images (`make images`): each starts, serves or reports what it should, as a non-root user,
for each architecture it was built for (arm64 under qemu-user), and carries no secret, cache or test data."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from trainbox_server.envs.releases import RELEASES

from tests import imagekit
from tests.bfcl_replay import multi_turn_steps
from tests.imagekit import Container
from tests.lanes import whole_machine
from tests.webshop_oracle import first_test_goal, oracle_actions

pytestmark = pytest.mark.images

RUNTIME_UID = "65532"
TASK_ID = "multi_turn_base_0"
# A Ray started under qemu-user is slow to bring up its agents and workers (tens of seconds instead of ~1):
# Ray's own settings give them time instead of failing the raylet.
EMULATED_RAY = {"RAY_raylet_start_wait_time_s": "600", "RAY_agent_register_timeout_ms": "600000",
                "RAY_worker_register_timeout_seconds": "600"}  # fmt: skip
EMULATED_RAY_ENV = tuple(arg for key, value in EMULATED_RAY.items() for arg in ("-e", f"{key}={value}"))
# Run inside a server container: one episode against the service on the container's own loopback.
#   python -c EPISODE <env_type> <task_id> <arch>   with the episode's assistant messages as JSON on stdin
EPISODE = """
import json, sys, urllib.request
base = 'http://127.0.0.1:8080'
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=300) as reply:
        return json.loads(reply.read())
steps = json.load(sys.stdin)
env_type, task_id, arch = sys.argv[1:4]
made = call('POST', '/v1/instances', {'env_type': env_type, 'task_id': task_id, 'arch': arch})['instances'][0]
iid = made['instance_id']
last = [call('POST', f'/v1/instances/{iid}/step', {'action': m}) for m in steps][-1]
evaluated = call('POST', f'/v1/instances/{iid}/evaluate', {'params': {'sparse': True}})
print(json.dumps({'step_reward': last['reward'], 'terminated': last['is_terminated'], 'reward': evaluated['reward'],
                  'released': call('DELETE', f'/v1/instances/{iid}')['released']}))
"""
READY = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=5)"


# Build-time secrets and sources, pip/uv caches, AppWorld's install-time home, the repository's tests.
FORBIDDEN = ("run/secrets/", "root/.cache", "home/trainbox/.cache", "root/.appworld", "tmp/appworld-home", "src/",
             "opt/trainbox/")  # fmt: skip


def _pem_body(path: Path) -> bytes:
    """A distinctive slice of a PEM certificate's base64 body."""
    return b"".join(path.read_bytes().split(b"-----")[2].split())[40:104]


@pytest.fixture(scope="module")
def images() -> dict:
    try:
        published = imagekit.published()
        imagekit.engine_up()
    except imagekit.ImagesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    return published


def _archs(images: dict, name: str) -> list[str]:
    return images[name]["archs"].split(",")


@pytest.mark.timeout(1800)  # arm64 runs under qemu-user: Ray takes minutes to start there
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_server_image_serves_a_bfcl_episode(images: dict, arch: str) -> None:
    if arch not in _archs(images, "server"):
        pytest.fail(f"the server image was not built for {arch}: run `make images`", pytrace=False)
    ref = imagekit.pull("server", arch)
    command = ("python", "-m", "trainbox_server", "serve", "--host", "127.0.0.1", "--port", "8080")
    # Ray's object store wants more than Docker's default 64 MiB /dev/shm.
    options = ("--shm-size=512m", *(EMULATED_RAY_ENV if arch != "amd64" else ()))
    # Ray under qemu-user needs the machine: the rest lane of `make test` yields while it runs (only then: the
    # module's other emulated containers run plain interpreters, which a busy machine only slows down)
    emulated = whole_machine() if arch != "amd64" else contextlib.nullcontext()
    with emulated, Container(ref, *command, platform=f"linux/{arch}", options=options) as server:
        deadline = time.monotonic() + (1200 if arch != "amd64" else 180)
        while not server.ready(READY) and time.monotonic() < deadline:
            assert server.running(), f"the server exited:\n{server.logs()}"
            time.sleep(1)
        assert server.ready(READY), f"no /readyz in time:\n{server.logs()}"
        steps = [message for turn in multi_turn_steps(TASK_ID) for message in turn]
        result = json.loads(server.exec("python", "-c", EPISODE, "bfcl", TASK_ID, arch, stdin=json.dumps(steps),
                                        timeout=600))  # fmt: skip
        assert result == {"step_reward": 1.0, "terminated": True, "reward": 1.0, "released": True}, server.logs()
        assert server.exec("id", "-u").strip() == RUNTIME_UID


@pytest.mark.timeout(1200)  # two interpreters started under qemu-user
def test_arm64_server_image_runs_under_emulation(images: dict) -> None:
    """The arm64 variant is really arm64 and its service and BFCL interpreters import what they run."""
    ref = imagekit.pull("server", "arm64")
    probe = "import platform, ray, trainbox_server; print(platform.machine(), ray.__version__)"
    out = imagekit.docker("run", "--rm", "--pull", "never", "--network", "none", "--platform", "linux/arm64", ref,
                          "python", "-c", probe, timeout=900)  # fmt: skip
    assert out.split() == ["aarch64", "2.60.0"]
    bfcl = "import bfcl_eval, trainbox_server.envs.bfcl.data as d, os; print(os.getuid(), d.installed_release())"
    for release in RELEASES["bfcl"]:  # every release served has its venv in the image
        out = imagekit.docker("run", "--rm", "--pull", "never", "--network", "none", "--platform", "linux/arm64", ref,
                              f"/opt/venvs/bfcl-{release}/bin/python", "-c", bfcl, timeout=900)  # fmt: skip
        assert out.split() == [RUNTIME_UID, release]


def test_operator_image_prints_its_version(images: dict) -> None:
    for arch in _archs(images, "operator"):
        ref = imagekit.pull("operator", arch)
        out = imagekit.docker("run", "--rm", "--pull", "never", "--network", "none", "--platform", f"linux/{arch}",
                              ref, "--version")  # fmt: skip
        assert out.strip() == "trainbox-operator 0.1.0"


def test_appworld_image_has_the_engine_readable_by_the_runtime_user(images: dict) -> None:
    ref = imagekit.pull("appworld", "amd64")
    probe = "import appworld.apps.admin, os; print(os.getuid())"
    out = imagekit.docker("run", "--rm", "--pull", "never", "--network", "none", "--platform", "linux/amd64", ref,
                          "/opt/venvs/appworld/bin/python", "-c", probe)  # fmt: skip
    assert out.strip() == RUNTIME_UID


def test_webshop_image_serves_an_oracle_episode_from_its_data_volume(images: dict, webshop_data: Path) -> None:
    """The WebShop engine's image (JDK, Lucene index search, spaCy) with the generated catalogue mounted read-only
    where the TrainingSandbox's `webshopData` puts it: the oracle's episode scores 1.0 in the container."""
    if "webshop" not in images:
        pytest.fail("the webshop image was not built: run `make images-for-tests`", pytrace=False)
    ref = imagekit.pull("webshop", "amd64")
    subprocess.run(["chmod", "-R", "a+rX", str(webshop_data)], check=True)  # the image's user reads it
    task_id, goal = first_test_goal(webshop_data)
    command = ("python", "-m", "trainbox_server", "serve", "--host", "127.0.0.1", "--port", "8080")
    options = ("--shm-size=512m", "-v", f"{webshop_data}:/data/webshop:ro", "-e", "TRAINBOX_ENVIRONMENTS=webshop")
    with Container(ref, *command, platform="linux/amd64", options=options) as server:
        deadline = time.monotonic() + 300
        while not server.ready(READY) and time.monotonic() < deadline:
            assert server.running(), f"the server exited:\n{server.logs()}"
            time.sleep(1)
        assert server.ready(READY), f"no /readyz in time:\n{server.logs()}"
        messages = [{"role": "assistant", "content": action} for action in oracle_actions(goal)]
        result = json.loads(server.exec("python", "-c", EPISODE, "webshop", task_id, "amd64",
                                        stdin=json.dumps(messages), timeout=600))  # fmt: skip
        assert result == {"step_reward": 1.0, "terminated": True, "reward": 1.0, "released": True}, server.logs()


@pytest.mark.parametrize("name", ["server", "appworld", "operator", "webshop"])
def test_images_run_as_non_root_and_carry_no_secrets_caches_or_tests(images: dict, name: str):
    ref = imagekit.pull(name, "amd64")
    config = json.loads(imagekit.docker("image", "inspect", ref))[0]["Config"]
    assert config["User"] == RUNTIME_UID
    local_cas = [_pem_body(p) for p in Path("/usr/local/share/ca-certificates").glob("*.crt")]
    found = []
    for layer, tar, member in imagekit.layer_members(ref):
        path = member.name.removeprefix("./")
        if member.isdir():  # e.g. the empty mount points BuildKit leaves for the build-time bind mounts
            continue
        if path.startswith(FORBIDDEN) or ("site-packages/" not in path and "/tests/" in f"/{path}"):
            found.append(f"{layer}: {path}")
        if member.isfile() and member.size < 1_000_000 and path.endswith((".crt", ".pem")) and local_cas:
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if any(ca in data for ca in local_cas):
                found.append(f"{layer}: {path} holds this machine's local CA")
    assert found == []
    size = int(json.loads(imagekit.docker("image", "inspect", ref))[0]["Size"])
    print(f"{name} (amd64): {size / 1e6:.0f} MB")
