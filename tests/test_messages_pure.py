"""The assistant-message parts every family reads (``envs.messages``), table-driven, and each family's refusal of
a content part whose text is not a string (an invalid action, never an adapter failure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from trainbox_server.envs.appworld.messages import extract_code
from trainbox_server.envs.bfcl.calls import CallSyntaxError, parse_calls
from trainbox_server.envs.messages import (
    MessageFormatError,
    content_text,
    decode_json,
    json_object,
    tool_call_blocks,
    tool_call_function,
)
from trainbox_server.envs.webshop.family import extract_action
from trainbox_server.errors import InvalidAction


@pytest.mark.parametrize(
    ("content", "separator", "text"),
    [
        ("plain", "\n", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "\n", "a\nb"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "", "ab"),
        ([{"type": "image_url"}, "not a part", {"type": "text", "text": "c"}], "|", "|c"),
        (None, "\n", None),
        (5, "\n", None),
    ],
)
def test_content_text(content: Any, separator: str, text: str | None) -> None:
    assert content_text(content, separator) == text


def test_content_text_refuses_a_part_whose_text_is_not_a_string() -> None:
    with pytest.raises(MessageFormatError, match="must be a string"):
        content_text([{"type": "text", "text": 5}], "\n")


@pytest.mark.parametrize(
    ("text", "blocks"),
    [
        ("no call", []),
        ('<tool_call>{"a": 1}</tool_call> then <tool_call>{"b": 2}</tool_call>', ['{"a": 1}', '{"b": 2}']),
        ('<tool_call>{"cut": "off', ['{"cut": "off']),
    ],
)
def test_tool_call_blocks(text: str, blocks: list[str]) -> None:
    assert tool_call_blocks(text) == blocks


@pytest.mark.parametrize(
    ("tool_call", "function"),
    [
        ({"id": "1", "function": {"name": "f"}}, {"name": "f"}),
        ({"id": "1", "function": "f"}, None),
        ("f", None),
    ],
)
def test_tool_call_function(tool_call: Any, function: dict[str, Any] | None) -> None:
    assert tool_call_function(tool_call) == function


@pytest.mark.parametrize("text", ["{not json", "[" * 100_000, "1" * 5000])
def test_decode_json_refusals_are_one_error(text: str) -> None:
    with pytest.raises(MessageFormatError, match="not valid JSON"):
        decode_json(text)


def test_json_object() -> None:
    assert json_object('{"code": "x"}') == {"code": "x"}
    with pytest.raises(MessageFormatError, match="not a JSON object"):
        json_object("[1, 2]")


@pytest.mark.parametrize(
    ("extract", "error"),
    [(parse_calls, CallSyntaxError), (extract_code, InvalidAction), (extract_action, InvalidAction)],
)
def test_every_family_refuses_a_text_part_that_is_not_a_string(extract: Callable[..., Any], error: type) -> None:
    with pytest.raises(error, match="must be a string"):
        extract({"role": "assistant", "content": [{"type": "text", "text": 5}]})


@pytest.mark.parametrize("tool_calls", [5, "webshop", {"function": {"name": "webshop"}}])
@pytest.mark.parametrize("extract", [extract_code, extract_action])
def test_tool_calls_that_are_not_a_list_are_an_invalid_action(extract: Callable[..., Any], tool_calls: Any) -> None:
    with pytest.raises(InvalidAction, match="tool_calls must be a list"):
        extract({"role": "assistant", "content": "", "tool_calls": tool_calls})
