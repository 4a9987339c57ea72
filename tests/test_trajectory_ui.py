"""Transcripts through a real service (``TRAINBOX_TRAJECTORY_KEEP`` set), and the ``/ui`` page rendered by a
real headless Chromium (Debian's ``chromium``, ``make system-packages``) on loopback only.

Episodes played over ``/v1``: the BFCL ground truth (scores 1.0), a wrong call (0.0), one left live and
evaluated mid-episode, and one whose worker is killed (an infra error). The API checks the transcripts and
the filters; Chromium loads ``/ui`` (with ``--dump-dom`` after the page's own requests have answered) and
the test reads the rendered DOM: the hosts table, the episode rows each filter shows, and an episode's
turns (the action and the observation side by side) with the checker's details. A screenshot of the page
is written to ``tests/artifacts/`` (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bfcl_replay import multi_turn_steps, wrong_multi_turn_steps
from tests.servicekit import REPO, RayCluster, Service, start_service, stop_group

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "tests/artifacts"
TASK = "multi_turn_base_0"


@pytest.fixture(scope="module")
def keeping_service(ray_cluster: RayCluster) -> Iterator[Service]:
    svc = start_service(ray_cluster.address, TRAINBOX_HOSTS_PER_NODE="1", TRAINBOX_TRAJECTORY_KEEP="20")
    yield svc
    svc.stop()


def play(http: httpx.Client, task_id: str, turns: list[list[dict[str, Any]]], release: bool = True) -> str:
    made = http.post("/v1/instances", json={"env_type": "bfcl", "task_id": task_id})
    assert made.status_code == 200, made.text
    instance_id: str = made.json()["instances"][0]["instance_id"]
    for message in [m for turn in turns for m in turn]:
        assert http.post(f"/v1/instances/{instance_id}/step", json={"action": message}).status_code == 200
    if release:
        assert http.delete(f"/v1/instances/{instance_id}").json()["released"] is True
    return instance_id


def bfcl_workers(http: httpx.Client, since: float = 0.0) -> list[int]:
    """The BFCL workers holding instances, in host reports taken after `since` (the front's view of the hosts
    refreshes every second: an older report may show the worker of an episode released since)."""
    pids = []
    for host in http.get("/v1/hosts").json()["hosts"]:
        if host.get("runtime", {}).get("time", 0.0) < since:
            continue
        for name, family in host.get("runtime", {}).get("families", {}).items():
            if name.startswith("bfcl"):
                pids += [p["pid"] for p in family["processes"] if p["instances"]]
    return pids


@pytest.fixture(scope="module")
def episodes(keeping_service: Service) -> dict[str, str]:
    with keeping_service.client() as http:
        ids = {
            "ground": play(http, TASK, multi_turn_steps(TASK)),
            "wrong": play(http, TASK, wrong_multi_turn_steps(TASK)),
        }
        ids["infra"] = play(http, TASK, multi_turn_steps(TASK)[:1], release=False)
        # wait until the front's view of the hosts is newer than the live instance and shows its worker
        since = time.time()
        deadline = time.monotonic() + 30
        while not bfcl_workers(http, since) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert bfcl_workers(http, since), "no BFCL worker holds the live instance"
        for pid in bfcl_workers(http, since):  # the service's own worker, which holds only this instance now
            os.kill(pid, signal.SIGKILL)
        lost = http.post(f"/v1/instances/{ids['infra']}/step", json={"action": {"content": "[ls()]"}})
        assert lost.status_code == 410, lost.text
        ids["live"] = play(http, "multi_turn_base_1", multi_turn_steps("multi_turn_base_1")[:1], release=False)
        assert http.post(f"/v1/instances/{ids['live']}/evaluate", json={"params": {"sparse": True}}).status_code == 200
    return ids


def test_transcripts_record_actions_observations_and_rewards(
    keeping_service: Service, episodes: dict[str, str]
) -> None:
    with keeping_service.client() as http:
        ground = http.get(f"/v1/instances/{episodes['ground']}/trajectory").json()
        assert ground["status"] == "finished" and ground["release_reason"] == "explicit"
        assert ground["reward"] == 1.0 and ground["failed"] is False and ground["infra"] is False
        assert [m["role"] for m in ground["opening"]] == ["system", "user"]
        first = ground["transcript"][0]
        assert first["action"]["content"] == multi_turn_steps(TASK)[0][0]["content"]
        assert first["observation"][0]["role"] == "tool" and first["reward"] == 0.0
        assert ground["transcript"][-1]["terminated"] is True
        assert ground["transcript"][-1]["info"]["evaluation"]["valid"] is True
        assert len(ground["transcript"]) == ground["steps"] == sum(map(len, multi_turn_steps(TASK)))

        live = http.get(f"/v1/instances/{episodes['live']}/trajectory").json()
        assert live["status"] == "live" and live["evaluations"][0]["details"]["finished"] is False
        assert live["failed"] is True  # evaluated mid-episode: 0.0

        infra = http.get(f"/v1/instances/{episodes['infra']}/trajectory").json()
        assert infra["infra"] is True and infra["release_reason"] == "lost"
        assert infra["infra_error"]["kind"] == "instance_lost" and infra["transcript"][-1]["error"]["infra"] is True

        missing = http.get("/v1/instances/never-made/trajectory")
        assert missing.status_code == 404 and missing.json()["error"]["kind"] == "unknown_instance"


def test_filters(keeping_service: Service, episodes: dict[str, str]) -> None:
    with keeping_service.client() as http:

        def listed(**params: str) -> set[str]:
            found = http.get("/v1/trajectories", params=params).json()["trajectories"]
            return {t["instance_id"] for t in found} & set(episodes.values())

        assert listed() == set(episodes.values())
        assert listed(failed="true") == {episodes["wrong"], episodes["live"]}
        assert listed(infra="true") == {episodes["infra"]}
        assert listed(status="live") == {episodes["live"]}
        assert http.get("/v1/trajectories", params={"status": "gone"}).status_code == 422


class Text(HTMLParser):
    """The DOM's text, and the ``data-instance`` of every episode row."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.rows: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "tr" and attributes.get("data-instance"):
            self.rows.append(str(attributes["data-instance"]))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.parts))


def chromium(url: str, *extra: str) -> str:
    """Run headless Chromium on ``url`` with no way to reach anything but loopback; its stdout."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is missing: run `make system-packages` (Debian's chromium package)")
    profile = tempfile.mkdtemp(prefix="tbchrome-")
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
        "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        stop_group(proc, grace=2)  # type: ignore[arg-type]
        shutil.rmtree(profile, ignore_errors=True)
    return out.decode(errors="replace")


def rendered(url: str) -> Text:
    page = Text()
    page.feed(chromium(url, "--dump-dom"))
    return page


def test_the_page_shows_hosts_episodes_and_turns(keeping_service: Service, episodes: dict[str, str]) -> None:
    page = rendered(f"{keeping_service.url}/ui?instance={episodes['ground']}")
    assert "turns" in page.ids and "evaluations" in page.ids, page.text[:2000]
    assert set(episodes.values()) <= set(page.rows)
    hosts = httpx.get(f"{keeping_service.url}/v1/hosts", timeout=30).json()["hosts"]
    assert any(h["name"] in page.text for h in hosts if h["alive"])  # the live-instances table
    assert "bfcl@" in page.text and "passed" in page.text and "infra error" in page.text
    first_action = multi_turn_steps(TASK)[0][0]["content"]
    assert first_action in page.text  # the episode's turns: the action ...
    assert "tool · " in page.text  # ... next to its observation
    assert f"{TASK} · bfcl@" in page.text  # the episode's title


def test_the_page_filters_failed_and_infra_episodes(keeping_service: Service, episodes: dict[str, str]) -> None:
    failed = rendered(f"{keeping_service.url}/ui?failed=1")
    assert {episodes["wrong"], episodes["live"]} <= set(failed.rows)
    assert episodes["ground"] not in failed.rows and episodes["infra"] not in failed.rows
    infra = rendered(f"{keeping_service.url}/ui?infra=1&instance={episodes['infra']}")
    assert episodes["infra"] in infra.rows and episodes["ground"] not in infra.rows
    assert "infra error during step: instance_lost" in infra.text


def test_screenshot(keeping_service: Service, episodes: dict[str, str]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "trajectory-ui.png"
    shot.unlink(missing_ok=True)
    chromium(
        f"{keeping_service.url}/ui?instance={episodes['wrong']}", f"--screenshot={shot}", "--window-size=1400,1000"
    )
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_page_has_no_external_assets(keeping_service: Service) -> None:
    html = httpx.get(f"{keeping_service.url}/ui", timeout=30).text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(", html)
    assert Path(REPO / "server/trainbox_server/service/ui.html").read_text() == html
