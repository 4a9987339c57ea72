"""The reference's reply shapes on the reference-compatible routes: pure functions, no I/O.

The reference (AgentScope Runtime's ``training_box``) answers a step with exactly one ``user`` message
(``{"role": "user", "content": ..., "tool_calls": []}``): for BFCL, the step's tool results as
``<tool_call>\\n{"name": "<function>_<n>", "content": ...}\\n</tool_call>\\n`` blocks (``n`` counts the
calls of the action from 1; a result that reads as JSON is embedded as JSON), or the next user question
when the action made no call, or ``[CONVERSATION_COMPLETED]`` when the episode ends (the only case where it
says ``is_terminated``); for AppWorld, the output of the code wrapped as ``Output:\\n```\\n...```\\n\\n``.
Agent loops written for it read ``state[0]["content"]`` as the next user turn. Our environments answer with
``tool``/``user`` messages (the ``/v1`` shape); the functions here turn one into the other.

Model mistakes are not errors there: an action without a well-formed ``<tool_call>`` block ends the
model's turn. ``reference_action`` keeps only the blocks the reference would have read (a JSON object
with ``name`` and ``arguments``), so a malformed block is dropped rather than refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

from trainbox_server.envs.releases import family_of

COMPLETED = "[CONVERSATION_COMPLETED]"
MODEL_NAME = "env_handler"  # the reference's default BFCL model name, echoed in its evaluation dict
# The reference's block pattern: a JSON object between the tags, optional whitespace/newline around it.
_BLOCK = re.compile(r"<tool_call>\s*\n?({.*?})\s*\n?</tool_call>", re.DOTALL)
# Any block, closed or running to the end of the text (what our parsers would try to read).
_ANY_BLOCK = re.compile(r"<tool_call>.*?(?:</tool_call>|$)", re.DOTALL)
_APPWORLD_OUTPUT = re.compile(r"\AOutput:\n```\n(.*)\n```\Z", re.DOTALL)


def reference_action(messages: dict[str, Any] | list[Any] | None) -> dict[str, Any] | None:
    """The assistant message to step with; ``None`` when ``messages`` is not a message at all.

    ``{}`` / no message is the reference client's default action: an empty assistant message (it ends
    the turn). A list means the conversation so far: its last message is the action.
    """
    if isinstance(messages, list):
        messages = messages[-1] if messages else None
    if messages is None or messages == {}:
        return {"role": "assistant", "content": ""}
    if not isinstance(messages, dict):
        return None
    content = messages.get("content")
    if isinstance(content, str) and "<tool_call>" in content:
        return {**messages, "content": well_formed_calls(content)}
    return messages


def well_formed_calls(content: str) -> str:
    """``content`` with only the ``<tool_call>`` blocks the reference reads (the rest of the text kept)."""
    kept = []
    for match in _BLOCK.finditer(content):
        try:
            payload = json.loads(match.group(1).strip())
        except ValueError:
            continue
        if isinstance(payload, dict) and "name" in payload and "arguments" in payload:
            kept.append(f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>")
    prose = _ANY_BLOCK.sub("", _BLOCK.sub("", content)).replace("</tool_call>", "").strip()
    return "\n".join(kept + ([prose] if prose else []))


def state_message(content: str) -> dict[str, Any]:
    return {"role": "user", "content": content, "tool_calls": []}


def bfcl_content(messages: list[dict[str, Any]], terminated: bool) -> str:
    """The text of the reference's one BFCL state message for a step's observation messages."""
    if terminated:
        return COMPLETED
    content = ""
    calls = 0
    for message in messages:
        if message.get("role") == "tool":
            calls += 1
            entry = {"name": f"{message.get('name') or 'call'}_{calls}", "content": _as_json(message.get("content"))}
            content += f"<tool_call>\n{json.dumps(entry, ensure_ascii=False)}\n</tool_call>\n"
        elif message.get("role") == "user":
            content = _text(message.get("content"))  # the next question replaces what came before
    return content


def appworld_content(messages: list[dict[str, Any]]) -> str:
    """The text of the reference's one AppWorld state message: each execution's output, wrapped."""
    outputs = []
    for message in messages:
        text = _text(message.get("content"))
        if message.get("role") == "user":
            found = _APPWORLD_OUTPUT.match(text)
            text = found.group(1) if found else text
        outputs.append(f"Output:\n```\n{text.rstrip()}\n```\n\n")
    return "\n".join(outputs)


def reference_step(env_type: str, result: dict[str, Any]) -> dict[str, Any]:
    """A step's reply as the reference shapes it (``info`` keeps ours: turn number, new tools, verdict)."""
    messages, terminated = result["state"], bool(result["is_terminated"])
    if family_of(env_type) == "bfcl":  # any release: "bfcl@2026.3.23"
        content = bfcl_content(messages, terminated)
    elif env_type == "appworld":
        content = appworld_content(messages)
    else:  # a family the reference never had: its shape, our text
        content = "\n".join(_text(m.get("content")) for m in messages)
    return {
        "state": [state_message(content)],
        "reward": float(result["reward"]),
        "is_terminated": terminated,
        "info": result.get("info") or {},
    }


def mistake_step() -> dict[str, Any]:
    """The reference's answer to an action it could not run (AppWorld: no code): nothing happened."""
    return {"state": [state_message("")], "reward": 0.0, "is_terminated": False, "info": {}}


def bfcl_evaluation(reward: float, details: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """The reference's BFCL evaluation dict (``evaluate`` without ``sparse``); ours rides along in ``details``.

    As in the reference, ``valid`` says the evaluation ran (not that the task passed) and ``accuracy`` is
    the task's pass/fail score; ``turn_count`` is how many user turns followed the first one.
    """
    accuracy = float(details.get("sparse", reward))
    task_id = str(task.get("task_id", "unknown"))
    return {
        "valid": True,
        "accuracy": accuracy,
        "total_count": 1,
        "correct_count": int(accuracy),
        "test_category": task.get("category") or task_id.rsplit("_", 1)[0],
        "test_id": task_id,
        "model_name": MODEL_NAME,
        "input_tokens": 0,
        "output_tokens": 0,
        "turn_count": max(0, int(details.get("turns_played", 1)) - 1),
        "completed": bool(details.get("finished", "calls" in details)),  # single-turn: a step was taken
        "details": details,
    }


def _as_json(content: Any) -> Any:
    if isinstance(content, str) and content.strip().startswith(("{", "[")):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)
