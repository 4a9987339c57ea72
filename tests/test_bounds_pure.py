"""The front's pure decisions about input: JSON bounds, ids, request ids, timeouts, counts; the admission
ledger; reading a frame's request id."""

from __future__ import annotations

import pytest
from trainbox_server.errors import InvalidRequest
from trainbox_server.hosts.channel import frame_id
from trainbox_server.hosts.lifecycle import caller_id_problem, could_exist, is_generated_id, new_instance_id
from trainbox_server.service import bounds
from trainbox_server.service.admission import LiveLedger

LIMITS = bounds.InputLimits(max_depth=8, max_string_chars=10, max_int_digits=5, min_step_timeout=1.0)


def nested(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ({"a": [1, 2.5, "short", None, True]}, None),
        (nested(8), None),
        (nested(9), "nests deeper than 8 levels"),
        ({"a": {"b": nested(6)}}, None),
        ({"a": {"b": nested(7)}}, "x.a.b[0][0][0][0][0][0]: nests deeper"),
        ("x" * 11, "a string of 11 characters (accepted: at most 10)"),
        ({"k" * 11: 1}, "a key of 11 characters"),
        ({"n": 99999}, None),
        ({"n": -99999}, None),
        ({"n": 100000}, "x.n: an integer of more than 5 digits"),
        ({"n": [1, -(10**40)]}, "x.n[1]: an integer"),
        ({"f": float("inf")}, "x.f: inf is not a finite number"),
        ({"f": float("nan")}, "not a finite number"),
        (True, None),  # a bool is not an integer here
    ],
)
def test_json_problem(value: object, says: str | None) -> None:
    problem = bounds.json_problem(value, LIMITS, "x")
    assert (problem is None) if says is None else (problem is not None and says in problem), problem


def test_limits_are_clamped_to_what_the_channel_carries() -> None:
    limits = bounds.InputLimits(max_depth=10_000, max_int_digits=100)
    assert limits.max_depth == bounds.MAX_CHANNEL_DEPTH and limits.max_int_digits == 18
    assert bounds.json_problem(2**63 - 1, limits) is not None  # 19 digits: refused, though it fits in 64 bits
    assert bounds.json_problem(10**18 - 1, limits) is None


@pytest.mark.parametrize(
    ("check", "value", "ok"),
    [
        (bounds.check_request_id, None, True),
        (bounds.check_request_id, "r-1", True),
        (bounds.check_request_id, ["a"], False),
        (bounds.check_request_id, {"a": 1}, False),
        (bounds.check_request_id, 5, False),
        (bounds.check_request_id, "", False),
        (bounds.check_request_id, "x" * 201, False),
        (lambda v: bounds.check_timeout(v, LIMITS), None, True),
        (lambda v: bounds.check_timeout(v, LIMITS), 1, True),
        (lambda v: bounds.check_timeout(v, LIMITS), 3600, True),
        (lambda v: bounds.check_timeout(v, LIMITS), 1e-06, False),
        (lambda v: bounds.check_timeout(v, LIMITS), 0.5, False),
        (lambda v: bounds.check_timeout(v, LIMITS), float("inf"), False),
        (lambda v: bounds.check_timeout(v, LIMITS), True, False),
        (lambda v: bounds.check_timeout(v, LIMITS), "5", False),
        (lambda v: bounds.check_count(v, 8), 8, True),
        (lambda v: bounds.check_count(v, 8), None, True),
        (lambda v: bounds.check_count(v, 8), True, False),
        (lambda v: bounds.check_count(v, 8), 9, False),
        (lambda v: bounds.check_count(v, 8), 2.0, False),
        (bounds.check_split, "train", True),
        (bounds.check_split, ["train"], False),
        (bounds.check_split, {"a": 1}, False),
    ],
)
def test_scalar_checks(check, value: object, ok: bool) -> None:  # type: ignore[no-untyped-def]
    if ok:
        check(value)
    else:
        with pytest.raises(InvalidRequest) as refused:
            check(value)
        assert refused.value.status == 422 and "must" in refused.value.message


@pytest.mark.parametrize(
    ("instance_id", "says"),
    [
        ("mine-1", None),
        ("a.b:c_d-e", None),
        ("", "1 to 200"),
        ("x" * 201, "1 to 200"),
        ("bad\x00id", "may only contain"),
        ("../etc", "may only contain"),
        ("two\nlines", "may only contain"),
        ("host-amd64-abc-0-f00d--" + "0" * 32, "reserved for generated ids"),
        ("host-anything", "reserved"),
        (["list"], "must be a string"),
    ],
)
def test_caller_ids(instance_id: object, says: str | None) -> None:
    problem = caller_id_problem(instance_id)
    assert (problem is None) if says is None else (problem is not None and says in problem)


def test_generated_ids() -> None:
    generated = new_instance_id("host-amd64-0123456789-0-a1b2c3")
    assert is_generated_id(generated) and could_exist(generated)
    assert not is_generated_id("mine--" + "0" * 32)  # not the host prefix
    assert not is_generated_id("host-x--short")
    assert could_exist("mine-1") and not could_exist("../x") and not could_exist("host-x")


def test_ledger_counts_creates_at_admission_and_settles_on_reports() -> None:
    ledger = LiveLedger()
    a, b = ledger.admit("h1"), ledger.admit("h1")
    assert ledger.total() == 2 and ledger.in_flight() == 2  # counted before any answer or report
    ledger.completed(a)
    ledger.landed("h1", 1)  # the report came after a's answer: it counts a; b is still in flight
    assert ledger.live("h1") == 2
    ledger.completed(b)
    assert ledger.live("h1") == 2  # b now counted as done until h1's next report
    ledger.landed("h1", 2)
    assert ledger.total() == 2 and ledger.in_flight() == 0
    c = ledger.admit("h2")
    assert ledger.total() == 3
    ledger.failed(c)
    assert ledger.total() == 2
    ledger.released("h1")
    assert ledger.total() == 1  # a release counts as its answer arrives
    ledger.landed("h2", 0)
    assert ledger.live("h1") == 1  # another host's report settles nothing of h1
    ledger.landed("h1", 1)
    assert ledger.total() == 1
    ledger.forget("h1")
    assert ledger.total() == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'{"id":17,"reply":{}}', 17), (b'{"id":3}', 3), (b'{"id":5,\xff\xfe', 5), (b'{"x":1}', None), (b"junk", None)],
)
def test_frame_id(body: bytes, expected: int | None) -> None:
    assert frame_id(body) == expected
