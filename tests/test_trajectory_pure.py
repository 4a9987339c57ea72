"""The transcript store's bookkeeping (``hosts.trajectory``): bounds, keeping finished episodes, filters."""

from __future__ import annotations

import pytest
from trainbox_server.hosts.trajectory import MAX_ITEMS, TrajectoryStore, clip, size_of

OPENING = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]


def step(store: TrajectoryStore, iid: str, n: int, reward: float = 0.0, end: bool = False) -> None:
    result = {"state": [{"role": "tool", "content": f"out {n}"}], "reward": reward, "is_terminated": end, "info": {}}
    store.step(iid, {"role": "assistant", "content": f"call {n}"}, result, float(n))


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("abc", 3, "abc"),
        ("abcdef", 3, "abc… [3 more chars]"),
        ({"a": ["abcdef", 1, None]}, 2, {"a": ["ab… [4 more chars]", 1, None]}),
        ((1, "xy"), 5, [1, "xy"]),
        (list(range(MAX_ITEMS + 3)), 5, [*range(MAX_ITEMS), "… [3 more items]"]),
        ({str(n): n for n in range(MAX_ITEMS + 1)}, 5, {**{str(n): n for n in range(MAX_ITEMS)}, "…": "[1 more keys]"}),
    ],
)
def test_clip(value: object, limit: int, expected: object) -> None:
    assert clip(value, limit) == expected


def test_steps_are_bounded_and_counted() -> None:
    store = TrajectoryStore("h", max_steps=3)
    store.start("i", "bfcl", "t", OPENING, 0.0)
    for n in range(1, 6):
        step(store, "i", n)
    transcript = store.get("i")
    assert transcript is not None
    assert [s["step"] for s in transcript.steps] == [3, 4, 5] and transcript.dropped == 2
    assert transcript.to_dict()["steps"] == 5


def test_a_transcript_keeps_to_its_byte_budget_whatever_the_model_sends() -> None:
    """Wide observations (many strings, each under the per-string cut) cost the oldest steps, never the host's
    memory; a single step over the budget stays as a stub that says what it was."""
    budget = 64 * 1024
    store = TrajectoryStore("h", max_steps=1000, max_chars=4000, max_bytes=budget)
    store.start("i", "bfcl", "t", OPENING, 0.0)
    wide = {"state": [{"role": "tool", "content": "x" * 4000}] * 10, "reward": 0.0, "is_terminated": False}
    for n in range(1, 101):
        store.step("i", {"role": "assistant", "content": "y" * 4000}, {**wide, "info": {"n": n}}, float(n))
    transcript = store.get("i")
    assert transcript is not None
    kept = list(transcript.steps)
    assert sum(size_of(s) for s in kept) <= budget and transcript.dropped == 100 - len(kept) > 0
    assert kept[-1]["step"] == 100 and kept[-1]["info"] == {"n": 100}  # the newest survive
    huge = {"state": [{"role": "tool", "content": "z" * 4000}] * MAX_ITEMS, "reward": 0.0, "is_terminated": True}
    store.step("i", "act", {**huge, "info": {}}, 200.0)
    last = transcript.steps[-1]
    assert last["step"] == 101 and last["terminated"] is True and "over the transcript's budget" in last["omitted"]
    assert "observation" not in last and sum(size_of(s) for s in transcript.steps) <= budget


def test_zero_steps_records_nothing() -> None:
    store = TrajectoryStore("h", max_steps=0)
    store.start("i", "bfcl", "t", OPENING, 0.0)
    step(store, "i", 1)
    assert store.get("i") is None and store.summaries() == []


@pytest.mark.parametrize(("keep", "kept"), [(0, []), (2, ["b", "c"]), (5, ["a", "b", "c"])])
def test_release_drops_the_transcript_unless_kept(keep: int, kept: list[str]) -> None:
    store = TrajectoryStore("h", keep_finished=keep)
    for n, iid in enumerate("abc"):
        store.start(iid, "bfcl", "t", OPENING, float(n))
        store.finish(iid, "explicit", float(n + 10))
    assert sorted(s["instance_id"] for s in store.summaries(status="finished")) == kept
    assert all(s["release_reason"] == "explicit" for s in store.summaries())


def test_verdicts_and_filters() -> None:
    store = TrajectoryStore("h", keep_finished=10)
    for iid in ("passed", "failed", "infra", "unscored"):
        store.start(iid, "bfcl", "t", OPENING, 0.0)
    step(store, "passed", 1, reward=1.0, end=True)
    step(store, "failed", 1)
    store.evaluation("failed", {"sparse": True}, 0.0, {"valid": False, "error_type": "x"}, 2.0)
    store.error("infra", {"content": "c"}, {"kind": "instance_lost", "message": "gone", "infra": True}, 3.0)
    store.finish("infra", "lost", 4.0)
    assert {s["instance_id"] for s in store.summaries(failed=True)} == {"failed"}
    assert {s["instance_id"] for s in store.summaries(infra=True)} == {"infra"}
    assert {s["instance_id"] for s in store.summaries(failed=True, infra=True)} == {"failed", "infra"}
    assert {s["instance_id"] for s in store.summaries(status="live")} == {"passed", "failed", "unscored"}
    assert store.summaries()[0]["instance_id"] == "infra"  # newest activity first
    infra = store.get("infra")
    assert infra is not None and infra.to_dict()["infra_error"]["op"] == "step"
    failed = store.get("failed")
    assert failed is not None and failed.to_dict()["evaluations"][0]["details"]["error_type"] == "x"


def test_a_fork_starts_with_its_source_transcript() -> None:
    store = TrajectoryStore("h")
    store.start("src", "bfcl", "t", OPENING, 0.0)
    step(store, "src", 1)
    store.fork("src", "copy", 5.0)
    step(store, "copy", 2)
    source, copy = store.get("src"), store.get("copy")
    assert source is not None and copy is not None
    assert len(source.steps) == 1 and len(copy.steps) == 2 and copy.origin == "fork of src at step 1"
