"""Environment names with a release (``envs.releases``): table tests of the pure naming rules, and a guard that
the releases the server serves are the ones ``make install`` and the server image install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trainbox_server.envs import releases
from trainbox_server.errors import InvalidRequest
from trainbox_server.runtime.process import default_python

from tests import bfcl_replay

REPO = Path(__file__).resolve().parents[1]
CURRENT, PREVIOUS = releases.RELEASES["bfcl"][:2]


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("bfcl", f"bfcl@{CURRENT}"), (f"bfcl@{PREVIOUS}", f"bfcl@{PREVIOUS}"), ("appworld", "appworld")],
)
def test_canonical_names(name: str, canonical: str) -> None:
    assert releases.canonical(name) == canonical


@pytest.mark.parametrize(
    ("name", "params", "folded"),
    [
        ("bfcl", {}, "bfcl"),
        ("bfcl", None, "bfcl"),
        ("bfcl", {"version": PREVIOUS}, f"bfcl@{PREVIOUS}"),
        (f"bfcl@{PREVIOUS}", {"version": PREVIOUS}, f"bfcl@{PREVIOUS}"),
        ("bfcl", {"version": "1.0"}, "bfcl@1.0"),  # not served: the caller's membership check names what is
        (None, {"version": PREVIOUS}, None),
    ],
)
def test_a_version_param_folds_into_the_name(name: Any, params: Any, folded: Any) -> None:
    assert releases.with_version(name, params) == folded


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        (f"bfcl@{PREVIOUS}", {"version": CURRENT}, "different releases"),
        ("appworld", {"version": "1"}, "one release only"),
        ("bfcl", {"version": 2025}, "its releases are"),
    ],
)
def test_a_version_param_that_cannot_apply_is_refused(name: str, params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment):
        releases.with_version(name, params)


@pytest.mark.parametrize(
    ("configured", "served"),
    [
        (["bfcl", "appworld"], ["appworld", "bfcl", f"bfcl@{PREVIOUS}", f"bfcl@{CURRENT}"]),
        ([f"bfcl@{PREVIOUS}"], [f"bfcl@{PREVIOUS}"]),
        ([f"bfcl@{CURRENT}"], ["bfcl", f"bfcl@{CURRENT}"]),
        (["bfcl@1.0"], []),
    ],
)
def test_served_names(configured: list[str], served: list[str]) -> None:
    assert releases.served_names(configured) == served


def test_describe_lists_the_releases_on_the_plain_name() -> None:
    assert releases.describe("bfcl") == {
        "name": "bfcl", "family": "bfcl", "release": CURRENT, "releases": list(releases.RELEASES["bfcl"])
    }  # fmt: skip
    assert releases.describe(f"bfcl@{PREVIOUS}") == {"name": f"bfcl@{PREVIOUS}", "family": "bfcl", "release": PREVIOUS}
    assert releases.describe("appworld") == {"name": "appworld", "family": "appworld", "release": None}


def test_each_release_has_its_own_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINBOX_VENVS", raising=False)
    assert default_python("bfcl") == str(REPO / f".venvs/bfcl-{CURRENT}/bin/python")
    assert default_python(f"bfcl@{PREVIOUS}") == str(REPO / f".venvs/bfcl-{PREVIOUS}/bin/python")
    monkeypatch.setenv("TRAINBOX_VENVS", "/opt/venvs")
    assert default_python(f"bfcl@{PREVIOUS}") == f"/opt/venvs/bfcl-{PREVIOUS}/bin/python"
    monkeypatch.setenv(f"TRAINBOX_PYTHON_BFCL_{PREVIOUS.replace('.', '_')}", "/x/python")
    assert default_python(f"bfcl@{PREVIOUS}") == "/x/python"


def test_the_releases_served_are_the_releases_installed() -> None:
    """make install and the server image install requirements/bfcl-releases/*.txt: one file per release served,
    each pinning that release; the tests replay the same releases."""
    files = {p.stem: p.read_text() for p in (REPO / "requirements/bfcl-releases").glob("*.txt")}
    assert set(files) == set(releases.RELEASES["bfcl"]) == set(bfcl_replay.RELEASES)
    assert releases.RELEASES["bfcl"] == bfcl_replay.RELEASES  # same order: the first is the current one
    for release, text in files.items():
        assert f"bfcl-eval=={release}\n" in text
    dockerfile = (REPO / "images/server/Dockerfile").read_text()
    assert "requirements/bfcl-releases/*.txt" in dockerfile and "TRAINBOX_VENVS=/opt/venvs" in dockerfile
