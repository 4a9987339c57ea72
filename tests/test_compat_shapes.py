"""The reference's reply shapes, table-driven (``trainbox_server.service.compat_shapes``).

The expected strings are the reference's (agentscope-runtime 1.1.6 ``training_box``: ``bfcl_env``'s
``tool_message_to_qwen_text`` / ``transition`` and ``appworld_env``'s ``appworld_excute``), written out by hand.
"""

from __future__ import annotations

from typing import Any

import pytest
from trainbox_server.service.compat_shapes import (
    COMPLETED,
    appworld_content,
    bfcl_content,
    bfcl_evaluation,
    reference_action,
    reference_step,
)

TOOL_CD = {"role": "tool", "name": "cd", "content": '{"current_working_directory": "document"}'}
TOOL_LS = {"role": "tool", "name": "ls", "content": '{"current_directory_content": ["a.txt"]}'}
TOOL_ERR = {"role": "tool", "name": "mv", "content": "Error during execution: no such file"}


@pytest.mark.parametrize(
    ("messages", "terminated", "expected"),
    [
        (
            [TOOL_CD],
            False,
            '<tool_call>\n{"name": "cd_1", "content": {"current_working_directory": "document"}}\n</tool_call>\n',
        ),
        (
            [TOOL_CD, TOOL_LS, TOOL_ERR],
            False,
            '<tool_call>\n{"name": "cd_1", "content": {"current_working_directory": "document"}}\n</tool_call>\n'
            '<tool_call>\n{"name": "ls_2", "content": {"current_directory_content": ["a.txt"]}}\n</tool_call>\n'
            '<tool_call>\n{"name": "mv_3", "content": "Error during execution: no such file"}\n</tool_call>\n',
        ),
        (
            [{"role": "tool", "name": "f", "content": "{not json"}],
            False,
            '<tool_call>\n{"name": "f_1", "content": "{not json"}\n</tool_call>\n',
        ),
        (
            [{"role": "tool", "name": "echo", "content": "ünïcode"}],
            False,
            '<tool_call>\n{"name": "echo_1", "content": "ünïcode"}\n</tool_call>\n',
        ),
        ([{"role": "user", "content": "Now move it."}], False, "Now move it."),
        ([], True, COMPLETED),
        ([TOOL_CD, {"role": "user", "content": "Model has been forced to quit after 20 steps."}], True, COMPLETED),
    ],
)
def test_bfcl_state_text(messages: list[dict[str, Any]], terminated: bool, expected: str) -> None:
    assert bfcl_content(messages, terminated) == expected


def test_step_reply_is_one_user_message() -> None:
    reply = reference_step("bfcl", {"state": [TOOL_CD], "reward": 0, "is_terminated": False, "info": {"turn": 0}})
    assert reply["state"] == [{"role": "user", "content": bfcl_content([TOOL_CD], False), "tool_calls": []}]
    assert reply["reward"] == 0.0 and isinstance(reply["reward"], float) and reply["is_terminated"] is False
    done = reference_step("bfcl", {"state": [], "reward": 1, "is_terminated": True, "info": {}})
    assert done["state"] == [{"role": "user", "content": COMPLETED, "tool_calls": []}] and done["reward"] == 1.0


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([{"role": "user", "content": "Output:\n```\nhello\n```"}], "Output:\n```\nhello\n```\n\n"),
        ([{"role": "tool", "name": "appworld", "tool_call_id": "c1", "content": "42\n"}], "Output:\n```\n42\n```\n\n"),
        ([], ""),
    ],
)
def test_appworld_state_text(messages: list[dict[str, Any]], expected: str) -> None:
    assert appworld_content(messages) == expected


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (None, {"role": "assistant", "content": ""}),
        ({}, {"role": "assistant", "content": ""}),
        ([], {"role": "assistant", "content": ""}),
        ("text", None),
        ({"role": "assistant", "content": "[ls()]"}, {"role": "assistant", "content": "[ls()]"}),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "done"}],
            {"role": "assistant", "content": "done"},
        ),
        # malformed JSON, a list, no arguments: the reference reads none of them; the prose stays
        (
            {"role": "assistant", "content": 'ok <tool_call>\n{"name": "ls", "arguments": {</tool_call>'},
            {"role": "assistant", "content": "ok"},
        ),
        ({"role": "assistant", "content": "<tool_call>[1]</tool_call>"}, {"role": "assistant", "content": ""}),
        (
            {"role": "assistant", "content": '<tool_call>{"name": "ls"}</tool_call>'},
            {"role": "assistant", "content": ""},
        ),
        (
            {"role": "assistant", "content": '<tool_call>{"name": "ls", "arguments": {}}'},
            {"role": "assistant", "content": ""},
        ),
        # the good blocks are kept, in order, the broken one between them dropped
        (
            {
                "role": "assistant",
                "content": '<tool_call>{"name": "cd", "arguments": {"folder": "d"}}</tool_call>'
                "<tool_call>{oops}</tool_call>"
                '<tool_call>\n{"name": "ls", "arguments": {}}\n</tool_call>',
            },
            {
                "role": "assistant",
                "content": '<tool_call>\n{"name": "cd", "arguments": {"folder": "d"}}\n</tool_call>\n'
                '<tool_call>\n{"name": "ls", "arguments": {}}\n</tool_call>',
            },
        ),
    ],
)
def test_reference_action(messages: Any, expected: dict[str, Any] | None) -> None:
    assert reference_action(messages) == expected


def test_bfcl_evaluation_dict() -> None:
    details = {"valid": False, "sparse": 0.0, "dense": 0.5, "finished": True, "turns_played": 4, "error_type": "x"}
    task = {"task_id": "multi_turn_base_3", "category": "multi_turn_base"}
    result = bfcl_evaluation(0.5, details, task)
    assert result == {
        "valid": True,  # the reference: the evaluation ran
        "accuracy": 0.0,
        "total_count": 1,
        "correct_count": 0,
        "test_category": "multi_turn_base",
        "test_id": "multi_turn_base_3",
        "model_name": "env_handler",
        "input_tokens": 0,
        "output_tokens": 0,
        "turn_count": 3,
        "completed": True,
        "details": details,
    }
    single = bfcl_evaluation(1.0, {"valid": True, "sparse": 1.0, "calls": []}, {"task_id": "simple_python_0"})
    assert single["accuracy"] == 1.0 and single["correct_count"] == 1 and single["turn_count"] == 0
    assert single["completed"] is True and single["test_category"] == "simple_python"
