"""Replay BFCL ground truth as assistant messages, through the runtime or directly in the BFCL venv.

Standard library only: in the dev venv the ground truth comes from one call to the BFCL venv's interpreter
(the adapter's own ``bfcl_data``, so both sides agree on any dataset fix), so the runtime tests can build the
messages too. Calls are spread over the three accepted
action formats (python-call text, ``<tool_call>`` blocks, OpenAI ``tool_calls``), one call per step.

Direct run, without the runtime (replays every supported task)::

    PYTHONPATH=server .venvs/bfcl/bin/python tests/bfcl_replay.py [category ...]
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
SINGLE_TURN = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
MAX_STEPS_PER_TURN = 10
END_OF_TURN = {"role": "assistant", "content": "I have completed the request."}


BFCL_PYTHON = ROOT / ".venvs/bfcl/bin/python"
_DUMP = (
    "import json, sys\n"
    "from trainbox_server.envs import bfcl_data\n"
    "print(json.dumps({c: {i: t.ground_truth for i, t in bfcl_data.tasks(c).items()} for c in sys.argv[1:]}))\n"
)


@cache
def ground_truth(category: str) -> dict[str, Any]:
    """Task id -> ground truth, exactly as the adapter's checker sees it (``None`` for (ir)relevance tasks)."""
    try:
        from trainbox_server.envs import bfcl_data  # direct mode: we are in the BFCL venv

        return {i: t.ground_truth for i, t in bfcl_data.tasks(category).items()}
    except ImportError:
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT / "server")}
    out = subprocess.run(
        [str(BFCL_PYTHON), "-c", _DUMP, category], env=env, check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout)[category])


def _as_format(calls: list[tuple[str, dict[str, Any]]], style: int, tag: str) -> dict[str, Any]:
    """An assistant message carrying ``calls`` in format ``style`` (0 python, 1 hermes, 2 openai)."""
    if style == 1:
        blocks = [json.dumps({"name": n, "arguments": kw}) for n, kw in calls]
        return {"role": "assistant", "content": "".join(f"<tool_call>{b}</tool_call>" for b in blocks)}
    if style == 2:
        tool_calls = [
            {"id": f"{tag}-{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(kw)}}
            for i, (n, kw) in enumerate(calls)
        ]
        return {"role": "assistant", "content": None, "tool_calls": tool_calls}
    text = ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in kw.items())})" for n, kw in calls)
    return {"role": "assistant", "content": f"[{text}]"}


def multi_turn_steps(task_id: str, turns: list[list[str]] | None = None) -> list[list[dict[str, Any]]]:
    """Per turn: one assistant message per ground-truth call, then a message without calls (ends the turn)."""
    turns = ground_truth(task_id.rsplit("_", 1)[0])[task_id] if turns is None else turns
    result = []
    for t, turn in enumerate(turns):
        if len(turn) > MAX_STEPS_PER_TURN:  # BFCL cuts a turn off after 20 steps: one step, all calls
            result.append([{"role": "assistant", "content": "[" + ", ".join(turn) + "]"}, END_OF_TURN])
            continue
        steps = []
        for i, text in enumerate(turn):
            node = ast.parse(text, mode="eval").body
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if node.args:  # positional ground truth (e.g. sort('x')): only python text can carry it
                steps.append({"role": "assistant", "content": text})
                continue
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            steps.append(_as_format([(node.func.id, kwargs)], (t + i) % 3, f"call-{t}-{i}"))
        result.append([*steps, END_OF_TURN])
    return result


def wrong_multi_turn_steps(task_id: str) -> list[list[dict[str, Any]]]:
    """The ground truth with the first call of the first non-empty turn replaced by a plausible wrong call."""
    turns = [list(t) for t in ground_truth(task_id.rsplit("_", 1)[0])[task_id]]
    first = next(t for t in turns if t)
    first[0] = "mkdir(dir_name='not_asked_for')" if "(" in first[0] else first[0]
    return multi_turn_steps(task_id, turns)


def _first_value(values: list[Any]) -> Any:
    return next((v for v in values if v != ""), "")


def single_turn_calls(task_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The ground-truth calls of a single-turn task: each parameter's first accepted value (optional ones left out)."""
    answer = ground_truth(task_id.rsplit("_", 1)[0])[task_id] or []
    java_like = task_id.startswith(("simple_java", "simple_javascript"))
    calls = []
    for item in answer:
        for name, params in item.items():
            kwargs = {k: _first_value(v) for k, v in params.items() if _first_value(v) != ""}
            if java_like:
                kwargs = {k: _java_text(v) for k, v in kwargs.items()}
            calls.append((name, kwargs))
    return calls


def _java_text(value: Any) -> Any:
    """Java/JavaScript arguments travel as source text (BFCL shows them as strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def single_turn_message(task_id: str, style: int = 0, wrong: bool = False) -> dict[str, Any]:
    calls = single_turn_calls(task_id)
    if wrong and calls:
        name, kwargs = calls[0]
        key = next(iter(kwargs), None)
        if key is not None:
            calls[0] = (name, {**kwargs, key: _wrong_value(kwargs[key])})
    if not calls:
        return {"role": "assistant", "content": "None of the functions fit this request."}
    return _as_format(calls, style, "st")


def _wrong_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 7919
    if isinstance(value, str):
        return value + "_wrong"
    if isinstance(value, list):
        return [*value, value[0]] if value else ["wrong"]
    if isinstance(value, dict):
        return {**value, "unexpected_key": 1}
    return value


def _replay_direct(categories: list[str]) -> int:
    """Replay every task of ``categories`` in this process (BFCL venv); print per-category pass counts."""
    from trainbox_server.envs.bfcl import make_family

    family, failures = make_family(), 0
    for category in categories:
        passed, total = 0, 0
        for task_id in ground_truth(category):
            _, instance = family.create(task_id, {})
            if category in MULTI_TURN:
                result = None
                for turn in multi_turn_steps(task_id):
                    for message in turn:
                        result = instance.step(message)
                ok = result is not None and result.terminated and result.reward == 1.0
            else:
                ok = instance.step(single_turn_message(task_id, style=total % 3)).reward == 1.0
            total += 1
            passed += ok
            if not ok:
                failures += 1
                print(f"  FAIL {task_id}: {json.dumps(instance.evaluate({}).details)[:600]}")
            instance.close()
        print(f"{category}: {passed}/{total} ground-truth replays score 1.0")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_replay_direct(sys.argv[1:] or [*MULTI_TURN, *SINGLE_TURN]))
