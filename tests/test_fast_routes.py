"""The hand-checked bodies of the fast routes accept what the documented models accept, and say why not."""

from __future__ import annotations

import pytest
from trainbox_server.errors import RequestError
from trainbox_server.service.fast_routes import parse_evaluate_body, parse_step_body

ACTION = {"role": "assistant", "content": "[ls()]"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"action": {"role": "assistant", "content": "[ls()]"}}', (ACTION, None, None)),
        (
            b'{"action": {"role": "assistant", "content": "[ls()]"}, "request_id": "r1", "timeout": 2.5}',
            (ACTION, "r1", 2.5),
        ),
        (
            b'{"action": {"role": "assistant", "content": "[ls()]"}, "request_id": null, "timeout": 60}',
            (ACTION, None, 60),
        ),
    ],
)
def test_accepts(raw: bytes, expected: tuple) -> None:
    assert parse_step_body(raw) == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"action": "ls()"}', "action"),
        (b"{}", "action"),
        (b'{"action": {}, "extra": 1}', "unknown field"),
        (b'{"action": {}, "request_id": 5}', "request_id"),
        (b'{"action": {}, "timeout": 0}', "timeout"),
        (b'{"action": {}, "timeout": 7200}', "timeout"),
        (b'{"action": {}, "timeout": true}', "timeout"),
    ],
)
def test_refuses(raw: bytes, says: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_step_body(raw)
    assert refused.value.status == 422 and says in refused.value.message


@pytest.mark.parametrize(
    ("raw", "params"), [(b"", {}), (b"{}", {}), (b'{"params": {"sparse": true}}', {"sparse": True})]
)
def test_evaluate_accepts(raw: bytes, params: dict) -> None:
    assert parse_evaluate_body(raw) == params


@pytest.mark.parametrize(
    ("raw", "says"), [(b"{x", "not valid JSON"), (b'{"p": 1}', "params"), (b'{"params": 3}', "params")]
)
def test_evaluate_refuses(raw: bytes, says: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_evaluate_body(raw)
    assert refused.value.status == 422 and says in refused.value.message
