"""Turn an assistant message into function calls, and check calls against a function's schema.

Pure and standard-library only (it runs in the BFCL worker and is tested from the dev venv). Model text
is only ever *parsed* — with ``json`` and ``ast`` — never evaluated: argument values must be literals.

Three action formats are accepted, tried in this order:

1. OpenAI ``tool_calls`` on the message: ``[{"id", "type": "function", "function": {"name",
   "arguments": "<json object>"}}]`` (``arguments`` may also be a dict).
2. Hermes/Qwen text: one or more ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks.
3. Python-call text, BFCL's own format: ``[cd(folder='document'), ls(a=True)]`` (the brackets, a code
   fence around it, and a single bare call are all accepted).

``parse_calls`` returns ``None`` when the message makes no call at all (plain prose), and raises
``CallSyntaxError`` when it clearly tries to make one but the syntax is broken.

Model text is bounded before and after parsing (``LIMITS``): its size, the nesting of argument values and
the size of integers. Past a bound, the action is refused (an invalid action of that instance), so no input
can exhaust the parser, the encoder or the worker that hosts thousands of other instances.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from trainbox_server.envs.messages import (
    MessageFormatError,
    content_text,
    decode_json,
    json_object,
    tool_call_blocks,
    tool_call_function,
)

ACCEPTED_FORMATS = (
    "accepted call formats: OpenAI `tool_calls` on the assistant message "
    '(function.arguments a JSON object); `<tool_call>{"name": "...", "arguments": {...}}</tool_call>` '
    "blocks in the content; or python-call text such as `[cd(folder='document'), ls(a=True)]` "
    "whose argument values are literals (strings, numbers, booleans, None, lists, dicts, tuples)"
)

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
# Text that opens like a call list (``[name(``): broken syntax there is a failed call, not prose.
_CALL_LIST_START = re.compile(r"^\[\s*[A-Za-z_][\w.]*\s*\(")


class CallSyntaxError(ValueError):
    """The message tries to make a call, but the call cannot be parsed. The text says what is accepted."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one action (documented in the README; ``TRAINBOX_BFCL_MAX_ACTION_CHARS`` etc. in the worker)."""

    action_chars: int = 1 << 20  # the text (or JSON arguments) of one message
    calls: int = 256  # calls in one message
    depth: int = 32  # nesting of argument values
    int_bits: int = 256  # integers beyond ~77 decimal digits are not arguments any BFCL function takes


LIMITS = Limits()


def check_value(value: Any, where: str, limits: Limits = LIMITS, depth: int = 0) -> None:
    """``CallSyntaxError`` if an argument value nests too deeply or holds an integer that is too large."""
    if depth > limits.depth:
        raise CallSyntaxError(f"{where}: argument values nest deeper than {limits.depth} levels")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > limits.int_bits:
        raise CallSyntaxError(f"{where}: an integer argument exceeds {limits.int_bits} bits")
    if isinstance(value, dict):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        return
    for item in items:
        check_value(item, where, limits, depth + 1)


@dataclass
class Call:
    """One parsed function call. ``args`` are positional values (python-call text only)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    call_id: str | None = None


def parse_calls(message: dict[str, Any]) -> list[Call] | None:
    """The calls an assistant message makes, or ``None`` if it makes none (plain text)."""
    tool_calls = message.get("tool_calls")
    if tool_calls:
        tool_calls = _as_list(tool_calls, "tool_calls")
        _check_count(len(tool_calls))
        calls = [_openai_call(tc, i) for i, tc in enumerate(tool_calls)]
    else:
        content = _text_of(message.get("content"))
        if len(content) > LIMITS.action_chars:
            raise CallSyntaxError(f"the message has {len(content)} characters; at most {LIMITS.action_chars}")
        blocks = tool_call_blocks(content)
        if blocks:
            _check_count(len(blocks))
            calls = [_hermes_call(block) for block in blocks]
        else:
            found = _python_calls(content)
            if found is None:
                return None
            calls = found
    _check_count(len(calls))
    for call in calls:
        check_value(call.kwargs, call.name)
        check_value(call.args, call.name)
    return calls


def _check_count(count: int) -> None:
    if count > LIMITS.calls:
        raise CallSyntaxError(f"the message makes {count} calls; at most {LIMITS.calls} per message")


def _as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CallSyntaxError(f"`{what}` must be a list; {ACCEPTED_FORMATS}")
    return value


def _text_of(content: Any) -> str:
    """Message content as text (OpenAI content parts are joined as they are: they are one text, cut up)."""
    if content is None:
        return ""
    try:
        text = content_text(content, "")
    except MessageFormatError as e:
        raise CallSyntaxError(str(e)) from None
    if text is None:
        raise CallSyntaxError(f"message content must be a string or a list of text parts, got {type(content)}")
    return text


def _openai_call(tool_call: Any, index: int) -> Call:
    function = tool_call_function(tool_call)
    if function is None or not isinstance(function.get("name"), str):
        raise CallSyntaxError(f"tool_calls[{index}] has no function.name; {ACCEPTED_FORMATS}")
    kwargs = _json_arguments(function.get("arguments"), f"tool_calls[{index}] ({function['name']})")
    call_id = tool_call.get("id")
    return Call(function["name"], kwargs, call_id=call_id if isinstance(call_id, str) else None)


def _hermes_call(block: str) -> Call:
    try:
        payload = decode_json(block.strip())
    except MessageFormatError as e:
        raise CallSyntaxError(f"<tool_call> block is {e}; {ACCEPTED_FORMATS}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        raise CallSyntaxError(f'<tool_call> block needs a "name" string; {ACCEPTED_FORMATS}')
    arguments = payload.get("arguments", payload.get("parameters", {}))
    return Call(payload["name"], _json_arguments(arguments, f"<tool_call> {payload['name']}"))


def _json_arguments(arguments: Any, where: str) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        if len(arguments) > LIMITS.action_chars:
            raise CallSyntaxError(f"{where}: arguments have more than {LIMITS.action_chars} characters")
        try:
            return json_object(arguments)
        except MessageFormatError as e:
            raise CallSyntaxError(f"{where}: arguments are {e}; {ACCEPTED_FORMATS}") from None
    if not isinstance(arguments, dict):
        raise CallSyntaxError(f"{where}: arguments must be a JSON object; {ACCEPTED_FORMATS}")
    return arguments


def _python_calls(content: str) -> list[Call] | None:
    """Parse BFCL python-call text; ``None`` if the text is not a call list at all."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        if _CALL_LIST_START.match(text):
            raise CallSyntaxError(f"the call list is not valid python ({exc.msg}); {ACCEPTED_FORMATS}") from None
        return None  # prose, not code: the model answered in words
    except (MemoryError, RecursionError, ValueError):  # the parser's own stack, or a literal it refuses
        raise CallSyntaxError(f"the call list is nested too deeply or too large to parse; {ACCEPTED_FORMATS}") from None
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    if not nodes or not all(isinstance(n, ast.Call) for n in nodes):
        return None
    return [_python_call(n) for n in nodes if isinstance(n, ast.Call)]


def _python_call(node: ast.Call) -> Call:
    name = _dotted_name(node.func)
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise CallSyntaxError(f"{name}: *args/**kwargs are not accepted; {ACCEPTED_FORMATS}")
    args = tuple(_literal(a, name) for a in node.args)
    kwargs = {k.arg: _literal(k.value, name) for k in node.keywords if k.arg is not None}
    return Call(name, kwargs, args)


def _dotted_name(node: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise CallSyntaxError(f"a call must name a function, got `{ast.unparse(node)}`; {ACCEPTED_FORMATS}")
    parts.append(node.id)
    return ".".join(reversed(parts))


def _literal(node: ast.expr, name: str) -> Any:
    try:
        return ast.literal_eval(node)  # literals only: no names, calls or attribute access
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise CallSyntaxError(
            f"{name}: argument `{ast.unparse(node)[:80]}` is not a literal; {ACCEPTED_FORMATS}"
        ) from None


def parse_call_string(text: str) -> Call:
    """Parse one python-call string (a recorded call or a BFCL ground-truth call such as ``cd(folder='x')``)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, MemoryError, RecursionError, ValueError):
        raise CallSyntaxError(f"not a python call: {text[:80]!r}; {ACCEPTED_FORMATS}") from None
    if not isinstance(node, ast.Call):
        raise CallSyntaxError(f"not a python call: {text[:80]!r}; {ACCEPTED_FORMATS}")
    return _python_call(node)


# JSON-schema-ish type names used in BFCL docs -> the Python types a value of that type may have.
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (int, float),
    "number": (int, float),
    "boolean": (bool,),
    "bool": (bool,),
    "array": (list, tuple),
    "tuple": (list, tuple),
    "list": (list, tuple),
    "dict": (dict,),
    "object": (dict,),
}


def type_error(param: str, value: Any, schema: dict[str, Any], also: frozenset[type] = frozenset()) -> str | None:
    """Why ``value`` does not fit the declared type of ``param``, or ``None`` if it fits (or is untyped).

    ``also``: further exact types to accept (BFCL's AST checker accepts a value whose type is that of the
    task's possible answers, its notation for variables such as ``"data['sales']"`` for an array).
    """
    declared = schema.get("type")
    allowed = _TYPES.get(declared) if isinstance(declared, str) else None
    if allowed is None or value is None or type(value) in also:
        return None  # 'any', Java/JS type names, unions: the checker judges those
    if isinstance(value, bool) and bool not in allowed:
        return f"parameter {param!r} expects {declared}, got boolean {value!r}"
    if isinstance(value, allowed):
        return None
    return f"parameter {param!r} expects {declared}, got {type(value).__name__} {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def argument_errors(
    kwargs: dict[str, Any], parameters: dict[str, Any], also: dict[str, frozenset[type]] | None = None
) -> list[str]:
    """Problems of keyword arguments against a BFCL ``parameters`` schema: unknown, missing, mistyped.

    ``also`` maps a parameter to further accepted types (see ``type_error``).
    """
    properties: dict[str, Any] = parameters.get("properties") or {}
    errors = [f"unknown parameter {k!r}" for k in kwargs if k not in properties]
    errors += [f"missing required parameter {k!r}" for k in parameters.get("required", []) if k not in kwargs]
    for key, value in kwargs.items():
        if key in properties:
            problem = type_error(key, value, properties[key], (also or {}).get(key, frozenset()))
            if problem:
                errors.append(problem)
    if errors and properties:
        errors.append(f"accepted parameters: {sorted(properties)}")
    return errors


def bind_arguments(method: Any, call: Call) -> dict[str, Any]:
    """Bind a call's positional and keyword arguments to ``method``'s signature, as keywords.

    Raises ``TypeError`` with Python's own message (what BFCL's executor would have shown the model).
    """
    signature = inspect.signature(method)
    bound = signature.bind(*call.args, **call.kwargs)
    return dict(bound.arguments)


def openai_name(name: str) -> str:
    """OpenAI tool names may not contain dots (``^[a-zA-Z0-9_-]{1,64}$``); BFCL maps ``.`` to ``_``."""
    return name.replace(".", "_")
