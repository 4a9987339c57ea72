"""Pure checks of what a caller sends, before anything is parsed further or forwarded to a host.

JSON a host cannot carry (integers past 64 bits, nesting orjson refuses, non-finite numbers) or that would
cost a worker its life (megabytes in one string, thousands of levels) is refused here with a 422 that says
what was wrong and what is accepted. The limits are configurable (``ServiceConfig``) and documented in the
README; ``InputLimits`` holds them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from trainbox_server.errors import InvalidRequest
from trainbox_server.hosts.lifecycle import caller_id_problem

MAX_CHANNEL_DEPTH = 200  # orjson refuses 255 levels; the host and worker frames wrap a few more around
MAX_CHANNEL_INT_DIGITS = 18  # every integer of 18 digits fits in 64 bits, as the channel needs
MAX_REQUEST_ID_CHARS = 200
MAX_STEP_TIMEOUT = 3600.0
# Runs of this many digits may be an integer orjson silently read as a float: re-read them exactly.
LONG_DIGITS = re.compile(rb"\d{19,}")


@dataclass(frozen=True)
class InputLimits:
    max_body_bytes: int = 4 * 1024 * 1024  # TRAINBOX_MAX_BODY_BYTES
    max_depth: int = 64  # TRAINBOX_MAX_JSON_DEPTH: levels of objects/arrays in one value
    max_string_chars: int = 1024 * 1024  # TRAINBOX_MAX_STRING_CHARS: one string (or key)
    max_int_digits: int = MAX_CHANNEL_INT_DIGITS  # TRAINBOX_MAX_INT_DIGITS (at most 18)
    min_step_timeout: float = 1.0  # TRAINBOX_MIN_STEP_TIMEOUT: a shorter step timeout is refused

    def __post_init__(self) -> None:
        # the channel itself cannot carry more: clamp rather than let a setting reintroduce a 500
        object.__setattr__(self, "max_depth", max(1, min(self.max_depth, MAX_CHANNEL_DEPTH)))
        object.__setattr__(self, "max_int_digits", max(1, min(self.max_int_digits, MAX_CHANNEL_INT_DIGITS)))


def invalid(message: str) -> InvalidRequest:
    return InvalidRequest(f"invalid request: {message}")


NOT_AN_OBJECT = frozenset({"model_type", "model_attributes_type", "dict_type"})


def validation_message(errors: Sequence[Any], model: type[BaseModel] | None = None) -> str:
    """Pydantic's validation errors of a request body (FastAPI's, located under "body", or a model's own)
    said plainly: where, what was wrong, what is accepted. The first five; ``model`` names the fields."""
    fields = f"; accepted: {sorted(model.model_fields)}" if model is not None else ""
    if any(e.get("type") == "json_invalid" for e in errors):
        return "the body is not valid JSON (or nests too deep)"
    problems = []
    for error in errors[:5]:
        loc = tuple(error.get("loc", ()))
        where = ".".join(str(part) for part in (loc[1:] if loc[:1] == ("body",) else loc))
        if not where and error.get("type") in NOT_AN_OBJECT | {"missing"}:
            problems.append(f"the body must be an object{fields}")
        elif error.get("type") == "extra_forbidden":
            problems.append(f"{where}: unknown field{fields}")
        else:
            problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(problems)


def json_problem(value: Any, limits: InputLimits, root: str = "value") -> str | None:
    """The first place where ``value`` (parsed JSON) exceeds ``limits``, said plainly; None if it fits."""
    int_bound = 10**limits.max_int_digits
    stack: list[tuple[Any, str, int]] = [(value, root, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limits.max_depth:
                return f"{where}: nests deeper than {limits.max_depth} levels (accepted: at most {limits.max_depth})"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and len(key) > limits.max_string_chars:
                    return f"{where}: a key of {len(key)} characters (accepted: at most {limits.max_string_chars})"
                stack.append((child, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]", depth + 1))
        elif isinstance(item, str):
            if len(item) > limits.max_string_chars:
                return f"{where}: a string of {len(item)} characters (accepted: at most {limits.max_string_chars})"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -int_bound < item < int_bound:
                digits = limits.max_int_digits
                return f"{where}: an integer of more than {digits} digits (accepted: at most {digits})"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{where}: {item} is not a finite number (accepted: finite numbers only)"
    return None


def check_json(value: Any, limits: InputLimits, name: str) -> None:
    """Raise a 422 naming the field (``name``) and the place in it where ``value`` exceeds the limits."""
    problem = json_problem(value, limits, name)
    if problem is not None:
        raise invalid(problem)


def check_request_id(request_id: object) -> str | None:
    if request_id is None:
        return None
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        shown = type(request_id).__name__ if not isinstance(request_id, str) else f"{len(request_id)} characters"
        raise invalid(f"request_id: must be a string of 1 to {MAX_REQUEST_ID_CHARS} characters, got {shown}")
    return request_id


def check_timeout(timeout: object, limits: InputLimits) -> float | None:
    if timeout is None:
        return None
    floor = limits.min_step_timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not floor <= timeout <= MAX_STEP_TIMEOUT
    ):
        raise invalid(f"timeout: must be a number of seconds in [{floor:g}, {MAX_STEP_TIMEOUT:g}], got {timeout!r}")
    return float(timeout)


def check_count(count: object, max_group: int) -> int:
    if count is None:
        return 1
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= max_group:
        raise invalid(f"count: must be an integer between 1 and {max_group}, got {count!r}")
    return count


def check_instance_id(instance_id: object) -> str | None:
    """A caller-chosen id for a create (None: generate one), or a 422 saying what is accepted."""
    if instance_id is None or instance_id == "":
        return None
    problem = caller_id_problem(instance_id)
    if problem is not None:
        raise invalid(f"instance_id: {problem}")
    assert isinstance(instance_id, str)
    return instance_id


def check_split(split: object) -> str:
    if not isinstance(split, str) or not 0 < len(split) <= 100:
        raise invalid(f"split: must be a split name such as 'train', 'val' or 'test', got {type(split).__name__}")
    return split
