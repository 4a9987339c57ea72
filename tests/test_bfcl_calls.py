"""BFCL's pure parts, table-driven: parsing the three action formats, argument checks, and the splits.

These modules are standard-library only, so they run in the dev venv without bfcl-eval.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from trainbox_server.envs.bfcl.calls import (
    Call,
    CallSyntaxError,
    argument_errors,
    bind_arguments,
    openai_name,
    parse_calls,
    type_error,
)
from trainbox_server.envs.bfcl.splits import SPLIT_FRACTIONS, natural_key, split_category, split_ids


def text(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_calls(*calls: tuple[str, Any]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ],
    }


def calls_of(message: dict[str, Any]) -> list[tuple[str, dict[str, Any], tuple[Any, ...], str | None]] | None:
    parsed = parse_calls(message)
    return None if parsed is None else [(c.name, c.kwargs, c.args, c.call_id) for c in parsed]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # python-call text, BFCL's own format
        (text("[cd(folder='document')]"), [("cd", {"folder": "document"}, (), None)]),
        (text("[cd(folder='a'), ls(a=True)]"), [("cd", {"folder": "a"}, (), None), ("ls", {"a": True}, (), None)]),
        (text("cd(folder='a')"), [("cd", {"folder": "a"}, (), None)]),
        (text("```python\n[ls()]\n```"), [("ls", {}, (), None)]),
        (text("```\nsort('f.txt')\n```"), [("sort", {}, ("f.txt",), None)]),
        (text("[math.factorial(n=5)]"), [("math.factorial", {"n": 5}, (), None)]),
        (
            text("[f(x=-1.5, y=[1, (2, 3)], z={'k': None})]"),
            [("f", {"x": -1.5, "y": [1, (2, 3)], "z": {"k": None}}, (), None)],
        ),
        (text([{"type": "text", "text": "[ls(a=False)]"}]), [("ls", {"a": False}, (), None)]),
        # prose and empty messages make no call
        (text("I have finished the task."), None),
        (text("ls"), None),
        (text("[]"), None),
        (text(""), None),
        (text(None), None),
        (text("Sure! [cd(folder='x')]"), None),
        # Hermes / Qwen blocks
        (
            text('<tool_call>{"name": "cd", "arguments": {"folder": "x"}}</tool_call>'),
            [("cd", {"folder": "x"}, (), None)],
        ),
        (
            text('thinking...\n<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n<tool_call>{"name": "b"}'),
            [("a", {}, (), None), ("b", {}, (), None)],
        ),
        (
            text('<tool_call>{"name": "f", "arguments": "{\\"n\\": 1}"}</tool_call>'),
            [("f", {"n": 1}, (), None)],
        ),
        (text('<tool_call>{"name": "f", "parameters": {"n": 2}}</tool_call>'), [("f", {"n": 2}, (), None)]),
        # OpenAI tool_calls (arguments as a JSON string or an object)
        (tool_calls(("cd", json.dumps({"folder": "x"}))), [("cd", {"folder": "x"}, (), "c0")]),
        (tool_calls(("a", {"k": [1]}), ("b", "")), [("a", {"k": [1]}, (), "c0"), ("b", {}, (), "c1")]),
    ],
)
def test_parse_calls(message: dict[str, Any], expected: Any) -> None:
    assert calls_of(message) == expected


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (text("<tool_call>{not json}</tool_call>"), "not valid JSON"),
        (text('<tool_call>{"arguments": {}}</tool_call>'), '"name"'),
        (text('<tool_call>{"name": "f", "arguments": [1]}</tool_call>'), "JSON object"),
        (tool_calls(("f", "{broken")), "not valid JSON"),
        (tool_calls(("f", "[1, 2]")), "JSON object"),
        ({"role": "assistant", "tool_calls": [{"type": "function"}]}, "function.name"),
        ({"role": "assistant", "tool_calls": "ls"}, "must be a list"),
        # model text is parsed, never evaluated: anything but literals is refused
        (text("[__import__('os').system('touch /tmp/pwned')]"), "must name a function"),
        (text("[f(x=__import__('os').getcwd())]"), "not a literal"),
        (text("[f(x=open('/etc/passwd').read())]"), "not a literal"),
        (text("[f(x=y)]"), "not a literal"),
        (text("[f(x=[i for i in range(9)])]"), "not a literal"),
        (text("[f(*args)]"), "*args"),
        (text("[f(**kw)]"), "*args"),
        (text("[(lambda: 1)()]"), "must name a function"),
        (text(42), "string or a list"),
        (text("[cd(folder=)]"), "not valid python"),
        (text("[mkdir(dir_name='a'), ls(]"), "not valid python"),
    ],
)
def test_parse_calls_refuses_broken_calls(message: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CallSyntaxError) as info:
        parse_calls(message)
    assert fragment in str(info.value)
    assert "accepted call formats" in str(info.value) or "string or a list" in str(info.value)


PARAMS = {
    "type": "dict",
    "properties": {
        "name": {"type": "string"},
        "count": {"type": "integer"},
        "ratio": {"type": "float"},
        "flag": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": "string"}},
        "meta": {"type": "dict"},
        "anything": {"type": "any"},
    },
    "required": ["name"],
}


@pytest.mark.parametrize(
    ("kwargs", "also", "problems"),
    [
        ({"name": "a"}, None, []),
        ({"name": "a", "count": 3, "ratio": 2, "flag": False, "items": ["x"], "meta": {}, "anything": [1]}, None, []),
        ({"name": "a", "ratio": 0.5, "items": ("x",)}, None, []),
        ({"name": None}, None, []),  # None is left to the checker (optional values)
        ({}, None, ["missing required parameter 'name'"]),
        ({"name": "a", "colour": "red"}, None, ["unknown parameter 'colour'"]),
        ({"name": 1}, None, ["parameter 'name' expects string, got int 1"]),
        ({"name": "a", "count": "3"}, None, ["parameter 'count' expects integer, got str '3'"]),
        ({"name": "a", "count": True}, None, ["parameter 'count' expects integer, got boolean True"]),
        ({"name": "a", "count": 1.5}, None, ["parameter 'count' expects integer, got float 1.5"]),
        ({"name": "a", "flag": "yes"}, None, ["parameter 'flag' expects boolean, got str 'yes'"]),
        ({"name": "a", "items": "x"}, None, ["parameter 'items' expects array, got str 'x'"]),
        ({"name": "a", "meta": []}, None, ["parameter 'meta' expects dict, got list []"]),
        # BFCL's notation for variables: a value of the possible answers' type is accepted too
        ({"name": "a", "items": "data['x']"}, {"items": frozenset({str})}, []),
    ],
)
def test_argument_errors(kwargs: dict[str, Any], also: Any, problems: list[str]) -> None:
    errors = argument_errors(kwargs, PARAMS, also)
    assert errors[: len(problems)] == problems
    if problems:
        assert errors[-1].startswith("accepted parameters: ['anything', 'count'")
    else:
        assert errors == []


def test_type_error_long_values_are_shortened() -> None:
    problem = type_error("name", "x" * 500, {"type": "integer"})
    assert problem is not None and problem.endswith("...") and len(problem) < 120


def test_bind_arguments_uses_the_signature() -> None:
    def sort(file_name: str, reverse: bool = False) -> None: ...

    assert bind_arguments(sort, Call("sort", {}, ("a",))) == {"file_name": "a"}
    assert bind_arguments(sort, Call("sort", {"reverse": True, "file_name": "b"})) == {
        "reverse": True,
        "file_name": "b",
    }
    for bad in (Call("sort", {"folder": "x"}), Call("sort"), Call("sort", {"file_name": "a"}, ("b",))):
        with pytest.raises(TypeError):
            bind_arguments(sort, bad)


@pytest.mark.parametrize(("name", "alias"), [("cd", "cd"), ("math.factorial", "math_factorial"), ("a.b.c", "a_b_c")])
def test_openai_name(name: str, alias: str) -> None:
    assert openai_name(name) == alias


# --- splits ---------------------------------------------------------------------------------------------

# The first test ids of multi_turn_base under SPLIT_VERSION 1 (a change of scheme must be deliberate).
PINNED_TEST_HEAD = [
    "multi_turn_base_12",
    "multi_turn_base_15",
    "multi_turn_base_28",
    "multi_turn_base_30",
    "multi_turn_base_37",
]
CATEGORIES = {
    "multi_turn_base": [f"multi_turn_base_{i}" for i in range(200)],
    "simple_python": [f"simple_python_{i}" for i in range(400)],
    "live_parallel": [f"live_parallel_{i}-{i % 3}-0" for i in range(16)],
    "tiny": ["tiny_0", "tiny_1"],
}


def test_splits_are_disjoint_complete_and_stratified() -> None:
    splits = split_ids(CATEGORIES)
    all_ids = [i for ids in CATEGORIES.values() for i in ids]
    listed = [i for ids in splits.values() for i in ids]
    assert sorted(listed, key=natural_key) == sorted(all_ids, key=natural_key)
    assert len(set(listed)) == len(all_ids)
    for category, ids in CATEGORIES.items():
        parts = split_category(category, ids)
        n = len(ids)
        assert len(parts["train"]) == round(n * SPLIT_FRACTIONS["train"])
        assert len(parts["train"]) + len(parts["val"]) == round(n * 0.9)
        for split, part in parts.items():
            assert part == sorted(part, key=natural_key)
            assert [i for i in splits[split] if i in set(ids)] == part


def test_splits_are_deterministic_and_seeded() -> None:
    first = split_ids(CATEGORIES)
    assert split_ids(dict(reversed(list(CATEGORIES.items())))) != first  # category order = listing order
    assert {k: sorted(v) for k, v in split_ids(dict(reversed(list(CATEGORIES.items())))).items()} == {
        k: sorted(v) for k, v in first.items()
    }
    assert split_ids(CATEGORIES) == first
    assert split_ids(CATEGORIES, seed="other")["test"] != first["test"]
    assert split_category("multi_turn_base", CATEGORIES["multi_turn_base"])["test"][:5] == PINNED_TEST_HEAD


def test_adding_a_category_moves_no_other_task() -> None:
    before = split_category("multi_turn_base", CATEGORIES["multi_turn_base"])
    after = split_ids({**CATEGORIES, "new_category": [f"new_category_{i}" for i in range(50)]})
    for split, ids in before.items():
        assert [i for i in after[split] if i.startswith("multi_turn_base_")] == ids


def test_shuffle_does_not_depend_on_input_order() -> None:
    ids = CATEGORIES["simple_python"]
    assert split_category("simple_python", ids) == split_category("simple_python", list(reversed(ids)))


@pytest.mark.parametrize(
    ("ids", "ordered"),
    [
        (["x_10", "x_2", "x_1"], ["x_1", "x_2", "x_10"]),
        (["live_simple_10-1-0", "live_simple_2-1-0"], ["live_simple_2-1-0", "live_simple_10-1-0"]),
    ],
)
def test_natural_key(ids: list[str], ordered: list[str]) -> None:
    assert sorted(ids, key=natural_key) == ordered
