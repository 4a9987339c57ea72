"""Replay BFCL ground truth as assistant messages, through the runtime or directly in a BFCL venv.

Standard library (and the family registry) only: in the dev venv the ground truth of a release comes from one
call to that release's interpreter (the adapter's own ``bfcl.data``, so both sides agree on any dataset fix), so
the runtime tests can build the messages too. Every function takes the release (default: the current one, what
``bfcl`` serves). Calls are spread over the three accepted action formats (python-call text, ``<tool_call>``
blocks, OpenAI ``tool_calls``), one call per step — or, with ``batched=True``, all of a turn's calls in one
step — and a plain message ends each turn.

Direct run, without the runtime (replays every supported task of the venv's release)::

    PYTHONPATH=server .venvs/bfcl-2026.3.23/bin/python tests/bfcl_replay.py [category ...]
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from trainbox_server.envs.bfcl.data import MULTI_TURN_CATEGORIES, SINGLE_TURN_CATEGORIES
from trainbox_server.envs.registry import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
# The adapter's own category lists (standard library, importable here and in every BFCL venv).
MULTI_TURN, SINGLE_TURN = MULTI_TURN_CATEGORIES, SINGLE_TURN_CATEGORIES
RELEASES = FAMILIES["bfcl"].releases  # the releases served, current first
CURRENT = RELEASES[0]
# Per release: the tasks whose ground truth BFCL's own checker (or decoder) rejects; the same 13 in both releases.
_DEFECTS = {
    "simple_java_36": "ArrayList of 'any' items: the converter keeps every element a string, the answer has ints",
    "simple_java_64": "possible answer for a HashMap entry is a bare string, compared character by character",
    "simple_java_65": "ArrayList of 'any' items: the converter keeps every element a string, the answer has bools",
    "live_simple_106-63-0": "required array parameters whose list of possible answers is empty",
    "live_simple_112-68-0": "required array parameters whose list of possible answers is empty",
    "live_multiple_862-181-3": "answer uses 'journey_start_time', which the function does not declare",
    "live_multiple_964-207-0": "answer uses 'question'; the function's only (required) parameter is 'statement'",
}
# format_sensitivity: simple_python_96 in the 6 JSON configs (ids 110-115). BFCL's JSON decoder cuts the answer at
# the first "}]" (its regex), and this answer's arguments hold a list of objects: a correct JSON answer never decodes.
_JSON_CUT = "BFCL's JSON decoder cuts an argument that is a list of objects: a correct JSON answer never decodes"
_DEFECTS |= {
    f"format_sensitivity_{110 + i}:ret_fmt=json&tool_call_tag={tag}&func_doc_fmt={doc}"
    f"&prompt_fmt=plaintext&style=classic:simple_python_96": _JSON_CUT
    for i, (tag, doc) in enumerate((t, d) for t in ("True", "False") for d in ("python", "xml", "json"))
}
UNPASSABLE_BY_RELEASE: dict[str, dict[str, str]] = {"2026.3.23": dict(_DEFECTS), "2025.10.1": dict(_DEFECTS)}
UNPASSABLE = UNPASSABLE_BY_RELEASE[CURRENT]
MAX_STEPS_PER_TURN = 10
END_OF_TURN = {"role": "assistant", "content": "I have completed the request."}


def bfcl_python(release: str = CURRENT) -> Path:
    return ROOT / f".venvs/bfcl-{release}/bin/python"


BFCL_PYTHON = bfcl_python()
_DUMP = (
    "import json, sys\n"
    "from trainbox_server.envs.bfcl import data\n"
    "print(json.dumps({c: data.ground_truth_table(c) for c in sys.argv[1:]}))\n"
)


@cache
def _table(category: str, release: str = CURRENT) -> dict[str, Any]:
    try:
        from trainbox_server.envs.bfcl import data  # direct mode: we are in a BFCL venv

        if data.installed_release() == release:
            return data.ground_truth_table(category)
    except ImportError:
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT / "server")}
    command = [str(bfcl_python(release)), "-c", _DUMP, category]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout)[category])


def ground_truth(category: str, release: str = CURRENT) -> dict[str, Any]:
    """Task id -> ground truth, exactly as the adapter's checker sees it (``None`` for (ir)relevance tasks)."""
    return {task_id: row["ground_truth"] for task_id, row in _table(category, release).items()}


def _functions(task_id: str, release: str = CURRENT) -> dict[str, dict[str, Any]]:
    return dict(_table(task_id.rsplit("_", 1)[0], release)[task_id]["functions"])


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


def _keyword_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """A ground-truth call as (name, kwargs); ``None`` when it has positional arguments (e.g. ``sort('x')``),
    which only python-call text can carry."""
    node = ast.parse(text, mode="eval").body
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    if node.args:
        return None
    return node.func.id, {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}


def multi_turn_steps(
    task_id: str,
    turns: list[list[str]] | None = None,
    release: str = CURRENT,
    batched: bool = False,
    style: int | None = None,
) -> list[list[dict[str, Any]]]:
    """Per turn: one assistant message per ground-truth call (``batched``: one message with all of the turn's
    calls), then a message without calls (ends the turn). The calls rotate through the three formats unless
    ``style`` fixes one (1: ``<tool_call>``, as the reference)."""
    turns = ground_truth(task_id.rsplit("_", 1)[0], release)[task_id] if turns is None else turns
    result = []
    for t, turn in enumerate(turns):
        if len(turn) > MAX_STEPS_PER_TURN and not batched:  # BFCL cuts a turn off after 20 steps: one step
            result.append([{"role": "assistant", "content": "[" + ", ".join(turn) + "]"}, END_OF_TURN])
            continue
        calls = [_keyword_call(text) for text in turn]
        if batched and turn:
            if any(call is None for call in calls):
                step = {"role": "assistant", "content": "[" + ", ".join(turn) + "]"}
            else:
                step = _as_format([c for c in calls if c is not None], t % 3 if style is None else style, f"turn-{t}")
            result.append([step, END_OF_TURN])
            continue
        steps = [
            {"role": "assistant", "content": text}
            if call is None
            else _as_format([call], (t + i) % 3 if style is None else style, f"call-{t}-{i}")
            for i, (text, call) in enumerate(zip(turn, calls, strict=True))
        ]
        result.append([*steps, END_OF_TURN])
    return result


def wrong_multi_turn_steps(
    task_id: str, release: str = CURRENT, style: int | None = None
) -> list[list[dict[str, Any]]]:
    """The ground truth with the first call of the first non-empty turn replaced by a plausible wrong call."""
    turns = [list(t) for t in ground_truth(task_id.rsplit("_", 1)[0], release)[task_id]]
    first = next(t for t in turns if t)
    first[0] = "mkdir(dir_name='not_asked_for')" if "(" in first[0] else first[0]
    return multi_turn_steps(task_id, turns, release, style=style)


def _answer_value(value: Any) -> Any:
    """A concrete argument from BFCL's possible-answer notation (nested dicts map keys to value lists)."""
    if isinstance(value, dict):
        return {k: _answer_value(_pick(vs) if isinstance(vs, list) else vs) for k, vs in value.items() if _keep(vs)}
    if isinstance(value, list):
        return [_answer_value(v) for v in value]
    return value


def _keep(values: Any, required: bool = False) -> bool:
    return required or not (isinstance(values, list) and "" in values)


def _pick(values: list[Any]) -> Any:
    return next((v for v in values if v != ""), "")


def single_turn_calls(task_id: str, release: str = CURRENT) -> list[tuple[str, dict[str, Any]]]:
    """The ground-truth calls of a single-turn task: each parameter's first accepted value; optional
    parameters that may be omitted (accepted values include ``""``) are left out. Relevance tasks (no
    ground truth, any valid call passes) get a call of their first function with placeholder values."""
    offered = _functions(task_id, release)
    answer = ground_truth(task_id.rsplit("_", 1)[0], release)[task_id]
    if answer is None:
        return [_placeholder_call(*next(iter(offered.items())))] if task_id.startswith("live_relevance") else []
    calls = []
    for item in answer:
        for name, params in item.items():
            if name not in offered and len(offered) == 1:
                name = next(iter(offered))  # BFCL's simple checker ignores the answer's name (e.g. simple_python_9x)
            schema = offered.get(name, {})
            required = schema.get("required", [])
            kwargs = {k: _answer_value(_pick(vs)) for k, vs in params.items() if _keep(vs, k in required)}
            if task_id.startswith("simple_javascript"):
                kwargs = {k: v if isinstance(v, str) else json.dumps(v) for k, v in kwargs.items()}
            elif task_id.startswith("simple_java"):
                kwargs = {k: _java_text(v, schema.get("properties", {}).get(k, {})) for k, v in kwargs.items()}
            calls.append((name, kwargs))
    return calls


_PLACEHOLDERS = {"integer": 1, "float": 1.0, "number": 1.0, "boolean": True, "array": [], "tuple": [], "dict": {}}


def _placeholder_call(name: str, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    properties = schema.get("properties", {})
    return name, {k: _PLACEHOLDERS.get(properties.get(k, {}).get("type"), "x") for k in schema.get("required", [])}


def _java_text(value: Any, schema: dict[str, Any]) -> str:
    """A Java argument as source text, in the forms BFCL's java_type_converter reads."""
    kind = schema.get("type")
    item = (schema.get("items") or {}).get("type")
    if kind in ("Array", "ArrayList") and isinstance(value, list):
        if kind == "Array":
            return f"new {item or 'Object'}[]{{{', '.join(_java_scalar(v, item, quote=False) for v in value)}}}"
        quote = item in (None, "String", "any", "Object")
        return f"new ArrayList<>(Arrays.asList({', '.join(_java_scalar(v, item, quote=quote) for v in value)}))"
    if kind == "HashMap" and isinstance(value, dict):
        puts = " ".join(f'put("{k}", {_java_scalar(v, None, quote=True)});' for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return _java_scalar(value, kind, quote=False)


def _java_scalar(value: Any, kind: str | None, quote: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if quote else value
    if kind == "long":
        return f"{value}L"
    if kind == "float":
        return f"{value}f"
    return str(value)


def single_turn_message(task_id: str, style: int = 0, wrong: bool = False, release: str = CURRENT) -> dict[str, Any]:
    if task_id.startswith("format_sensitivity_"):
        return format_sensitivity_message(task_id, wrong, release)
    calls = single_turn_calls(task_id, release)
    if style == 0 and any(keyword.iskeyword(k) for _, kw in calls for k in kw):
        style = 1  # python-call text cannot carry a parameter named like a keyword (`from=`)
    if wrong and calls:
        name, kwargs = calls[0]
        key = next(iter(kwargs), None)
        if key is not None:
            calls[0] = (name, {**kwargs, key: _wrong_value(kwargs[key])})
    if not calls:
        return {"role": "assistant", "content": "None of the functions fit this request."}
    return _as_format(calls, style, "st")


def format_sensitivity_message(task_id: str, wrong: bool = False, release: str = CURRENT) -> dict[str, Any]:
    """The ground truth of a format-sensitivity task (``format_sensitivity_<i>:<config>:<task id>``) written in the
    format its config asks for (``wrong``: the first argument changed)."""
    _, config, source = task_id.split(":")
    calls = single_turn_calls(source, release)
    if wrong:
        name, kwargs = calls[0]
        key = next(iter(kwargs))
        calls[0] = (name, {**kwargs, key: _wrong_value(kwargs[key])})
    return {"role": "assistant", "content": formatted_answer(calls, config)}


def formatted_answer(calls: list[tuple[str, dict[str, Any]]], config: str) -> str:
    """Calls as text in a BFCL format config (``ret_fmt``: python, json, verbose_xml, concise_xml; with
    ``tool_call_tag``, inside ``<TOOLCALL>``)."""
    settings = dict(part.split("=", 1) for part in config.split("&"))
    form = settings["ret_fmt"]
    if form == "python":
        body = "[" + ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in kw.items())})" for n, kw in calls) + "]"
    elif form == "json":
        body = json.dumps([{"function": n, "parameters": kw} for n, kw in calls])
    else:
        functions = []
        for name, kwargs in calls:
            params = "".join(_xml_param(k, v, verbose=form == "verbose_xml") for k, v in kwargs.items())
            params = f"<params>{params}</params>" if form == "verbose_xml" else params
            functions.append(f'<function name="{name}">{params}</function>')
        body = f"<functions>{''.join(functions)}</functions>"
    return f"<TOOLCALL>{body}</TOOLCALL>" if settings["tool_call_tag"] == "True" else body


_XML_TYPES = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"), (dict, "dict"))


def _xml_param(name: str, value: Any, verbose: bool) -> str:
    kind = next((t for python_type, t in _XML_TYPES if isinstance(value, python_type)), "string")
    text = {"boolean": str(value).lower(), "string": value}.get(kind, value if kind in ("integer", "float") else None)
    text = repr(value) if text is None else str(text)
    if verbose:
        attribute = escape(text, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
        return f'<param name="{name}" value="{attribute}" type="{kind}"/>'
    return f'<param name="{name}" type="{kind}">{escape(text)}</param>'


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


def _replay_one(instance: Any, task_id: str, multi_turn: bool, style: int, release: str) -> bool:
    if not multi_turn:
        return bool(instance.step(single_turn_message(task_id, style=style, release=release)).reward == 1.0)
    result = None
    for turn in multi_turn_steps(task_id, release=release, batched=style == 1):
        for message in turn:
            result = instance.step(message)
    return result is not None and result.terminated and result.reward == 1.0


def _replay_direct(categories: list[str]) -> int:
    """Replay every task of ``categories`` in this process (a BFCL venv); print per-category pass counts."""
    from trainbox_server.envs.bfcl import make_family

    family, failures = make_family(), 0
    release = family.release or CURRENT
    unpassable = UNPASSABLE_BY_RELEASE[release]
    print(f"bfcl-eval {release}")
    for category in categories:
        passed, total = 0, 0
        for task_id in ground_truth(category, release):
            _, instance = family.create(task_id, {})
            try:
                ok = _replay_one(instance, task_id, category in MULTI_TURN, style=total % 3, release=release)
            except Exception as e:
                print(f"  ERROR {task_id}: {type(e).__name__}: {e}")
                ok = False
            total += 1
            passed += ok
            if not ok and task_id in unpassable:
                print(f"  known dataset defect {task_id}: {unpassable[task_id]}")
            elif not ok:
                failures += 1
                print(f"  FAIL {task_id}: {json.dumps(instance.evaluate({}).details)[:600]}")
            instance.close()
        print(f"{category}: {passed}/{total} ground-truth replays score 1.0")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(_replay_direct(sys.argv[1:] or [*MULTI_TURN, *SINGLE_TURN]))
