"""Taking an assistant message apart, for every family: its text, its OpenAI tool calls, its ``<tool_call>`` blocks.

Families differ in what an action is (BFCL: function calls; AppWorld: code; WebShop: a page action) and in how
they refuse one, so these helpers only read the message's parts; each adapter says what it accepts and words its
own refusals. Pure and standard library only (it runs in every family's worker).
"""

from __future__ import annotations

import json
import re
from typing import Any

# A Hermes/Qwen tool call in the text; an unclosed last block counts (generation may stop before the tag).
TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


class MessageFormatError(ValueError):
    """A part of the message is malformed in a way no family accepts; the text says what was wrong."""


def content_text(content: Any, separator: str) -> str | None:
    """A message's content as text: a string as it is, OpenAI content parts (``{"type": "text", "text": ...}``)
    as their texts joined by ``separator``; ``None`` for anything else (``None`` included)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts = [part.get("text", "") for part in content if isinstance(part, dict)]
    if not all(isinstance(text, str) for text in texts):
        raise MessageFormatError("a content part's `text` must be a string")
    return separator.join(texts)


def tool_call_blocks(text: str) -> list[str]:
    """The payloads of the ``<tool_call>...</tool_call>`` blocks in ``text``, in order."""
    return TOOL_CALL_BLOCK.findall(text) if "<tool_call>" in text else []


def tool_calls(message: dict[str, Any]) -> list[Any]:
    """A message's OpenAI ``tool_calls`` (none: ``[]``); ``MessageFormatError`` when they are not a list."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise MessageFormatError("tool_calls must be a list")
    return calls


def tool_call_function(tool_call: Any) -> dict[str, Any] | None:
    """The ``function`` object of one OpenAI tool call (``{"id", "type", "function": {"name", "arguments"}}``),
    or ``None`` when it has none."""
    function = tool_call.get("function") if isinstance(tool_call, dict) else None
    return function if isinstance(function, dict) else None


def decode_json(text: str) -> Any:
    """``json.loads``; whatever makes it refuse the text (bad syntax, nesting past the parser's stack, an integer
    of more digits than Python converts) is ``MessageFormatError("not valid JSON (<why>)")``."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise MessageFormatError(f"not valid JSON ({exc})") from None


def json_object(text: str) -> dict[str, Any]:
    """``decode_json`` of text that must hold a JSON object (``MessageFormatError("not a JSON object")``)."""
    value = decode_json(text)
    if not isinstance(value, dict):
        raise MessageFormatError("not a JSON object")
    return value
