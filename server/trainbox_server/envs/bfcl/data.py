"""BFCL's dataset as shipped inside the ``bfcl-eval`` package: categories, tasks, prompts, ground truth.

Runs in the BFCL worker. Files are read directly from ``bfcl_eval/data`` (not through ``bfcl_eval.utils``,
whose import creates result folders inside site-packages); each category is parsed once per process,
on first use, and what ``create`` needs per task (system prompt, OpenAI tool list) is built once and shared
by every instance of that task.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from trainbox_server.envs.bfcl import formats
from trainbox_server.envs.bfcl.calls import openai_name
from trainbox_server.envs.bfcl.formats import CATEGORY as FORMAT_SENSITIVITY

MULTI_TURN_CATEGORIES = (
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
)
SINGLE_TURN_CATEGORIES = (
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
    FORMAT_SENSITIVITY,  # the tasks above asked in BFCL's 26 prompt formats (see bfcl.formats)
)
CATEGORIES = MULTI_TURN_CATEGORIES + SINGLE_TURN_CATEGORIES
# Categories of the package this adapter cannot run offline, with the reason given to the caller.
UNSUPPORTED_PREFIXES = {
    "memory_": "BFCL memory tasks need an embedding-model download and a memory backend",
    "web_search": "BFCL web_search tasks need live internet search",
}
# Categories where the right answer is to make no call / any call (scored without ground truth).
NO_CALL_CATEGORIES = ("irrelevance", "live_irrelevance")
ANY_CALL_CATEGORIES = ("live_relevance",)

_TYPE_TO_OPENAI = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
}


@dataclass
class Task:
    """One BFCL test entry with its ground truth, in the shape the official checkers take.

    Function docs are attached on first use (multi-turn docs are shared per environment class), so
    listing a category costs only its JSON parse.
    """

    id: str
    category: str
    entry: dict[str, Any]  # the test entry: question, initial_config, involved_classes, ...
    ground_truth: Any  # multi-turn: list[list[str]] per turn; AST: list[{func: {param: [values]}}]
    _created: dict[str, Any] = field(default_factory=dict)
    # format_sensitivity: the prompt-format config, and the category of the task it asks in that format
    config: str | None = None
    source_category: str | None = None

    @property
    def multi_turn(self) -> bool:
        return self.category in MULTI_TURN_CATEGORIES

    @property
    def language(self) -> str:
        return {"simple_java": "java", "simple_javascript": "javascript"}.get(self.category, "python")

    @property
    def functions(self) -> list[dict[str, Any]]:
        """The raw function docs (what BFCL's checkers get); multi-turn: minus the held-out ones."""
        if self.multi_turn and "function" not in self.entry:
            _add_multi_turn_functions(self.entry)
        functions: list[dict[str, Any]] = self.entry["function"]
        return functions

    def revealed_at(self, turn: int) -> list[dict[str, Any]]:
        """miss_func: the held-out function docs that become available at ``turn`` (raw, as BFCL shows them)."""
        if not self.multi_turn:
            return []
        self.functions  # noqa: B018 - attaches the docs, held-out ones included
        revealed: list[dict[str, Any]] = self.entry.get("missed_function", {}).get(str(turn), [])
        return revealed

    @property
    def prompt_functions(self) -> list[dict[str, Any]]:
        """The docs shown to the model: BFCL's language hints applied (Java/JS types become strings)."""
        if "prompt_functions" not in self._created:
            if self.multi_turn:
                hinted = {f["name"]: f for name in self.entry["involved_classes"] for f in hinted_class_docs(name)}
                prompt = [hinted[f["name"]] for f in self.functions]
            else:
                prompt = _with_language_hints(self.functions, self.source_category or self.category)
            self._created["prompt_functions"] = prompt
        result: list[dict[str, Any]] = self._created["prompt_functions"]
        return result


def data_dir() -> Path:
    import bfcl_eval

    return Path(bfcl_eval.__file__).parent / "data"


@cache
def installed_release() -> str | None:
    """The ``bfcl-eval`` release this interpreter has (``None``: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bfcl-eval")
    except PackageNotFoundError:
        return None


def category_of(task_id: str) -> str | None:
    """The supported category a task id belongs to (the longest matching prefix), or ``None``."""
    best = None
    for category in CATEGORIES:
        if task_id.startswith(category + "_") and (best is None or len(category) > len(best)):
            best = category
    return best


def unsupported_reason(task_id: str) -> str | None:
    for prefix, reason in UNSUPPORTED_PREFIXES.items():
        if task_id.startswith(prefix):
            return reason
    return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


@cache
def category_ids(category: str) -> tuple[str, ...]:
    return tuple(tasks(category))


@cache
def tasks(category: str) -> dict[str, Task]:
    """Every task of a category, by id (parsed once per process)."""
    if category == FORMAT_SENSITIVITY:
        return _format_sensitivity_tasks()
    entries = _read_jsonl(data_dir() / f"BFCL_v4_{category}.json")
    answers: dict[str, Any] = {}
    if category not in NO_CALL_CATEGORIES + ANY_CALL_CATEGORIES:
        answer_file = data_dir() / "possible_answer" / f"BFCL_v4_{category}.json"
        answers = {a["id"]: a["ground_truth"] for a in _read_jsonl(answer_file)}
    result = {}
    fixes = UPSTREAM_FIXES.get(installed_release() or "", ())
    for entry in entries:
        if entry["id"] in fixes:
            answers[entry["id"]] = fixed_ground_truth(entry, answers[entry["id"]])
        result[entry["id"]] = Task(entry["id"], category, entry, answers.get(entry["id"]))
    return result


def _format_sensitivity_tasks() -> dict[str, Task]:
    """BFCL's format-sensitivity tasks: the listed tasks (each category's in dataset order) crossed with every
    format config; they share their source task's entry and ground truth."""
    sources: list[Task] = []
    for category, ids in formats.listed_ids(data_dir()).items():
        listed = frozenset(ids)
        sources += [task for task in tasks(category).values() if task.id in listed]
    by_id = {task.id: task for task in sources}
    return {
        variant: Task(variant, FORMAT_SENSITIVITY, by_id[source].entry, by_id[source].ground_truth,
                      config=config, source_category=by_id[source].category)
        for variant, config, source in formats.variant_ids([task.id for task in sources])
    }  # fmt: skip


# Dataset fixes merged upstream after a release, per release that ships the defect (later ones carry the fix).
# ``multi_turn_base_154``: 5 user turns but 6 ground-truth turns, so BFCL's checker cannot pass it (IndexError
# upstream). ShishirPatil/gorilla PR #1177 merges ground-truth turns 2 and 3 (the second user turn asks for both
# the nearest airport and the flight cost); bfcl-eval 2026.3.23 ships exactly that.
UPSTREAM_FIXES: dict[str, tuple[str, ...]] = {"2025.10.1": ("multi_turn_base_154",)}


def fixed_ground_truth(entry: dict[str, Any], truth: list[list[str]]) -> list[list[str]]:
    """The ground truth of a task listed in ``UPSTREAM_FIXES``; a release whose data does not have the defect
    the fix is for is a listing mistake, refused rather than "fixed" twice."""
    if entry["id"] == "multi_turn_base_154" and len(truth) == len(entry["question"]) + 1:
        return [truth[0], truth[1] + truth[2], *truth[3:]]
    raise ValueError(f"{entry['id']}: the ground truth no longer has the defect UPSTREAM_FIXES lists it for")


@cache
def class_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    path = data_dir() / "multi_turn_func_doc" / MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name]
    return tuple(_read_jsonl(path))


@cache
def hinted_class_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    return tuple(_with_language_hints(list(class_docs(class_name)), "multi_turn"))


def _add_multi_turn_functions(entry: dict[str, Any]) -> None:
    """BFCL's ``populate_test_cases_with_predefined_functions``: docs of the involved classes, minus holdouts.

    ``missed_function`` becomes ``{turn index (str): [docs]}``: functions revealed at that turn. The doc
    dicts are shared between tasks (read-only).
    """
    functions = [doc for name in entry["involved_classes"] for doc in class_docs(name)]
    missed = entry.get("missed_function", {})
    for turn, names in missed.items():
        missed[turn] = [f for f in functions if f["name"] in names]
    held_out = {f["name"] for docs in missed.values() for f in docs}
    entry["function"] = [f for f in functions if f["name"] not in held_out]


def _with_language_hints(functions: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    """BFCL's ``_func_doc_language_specific_pre_processing`` (what its prompt shows; the checker gets raw docs)."""
    from bfcl_eval.utils import _func_doc_language_specific_pre_processing

    return _func_doc_language_specific_pre_processing(copy.deepcopy(functions), category)


def system_prompt(functions: list[dict[str, Any]]) -> str:
    """BFCL's default prompting system prompt (``DEFAULT_SYSTEM_PROMPT_FORMAT``: python calls, JSON docs)."""
    from bfcl_eval.constants.default_prompts import (
        OUTPUT_FORMAT_MAPPING,
        PARAM_TYPE_MAPPING,
        PROMPT_STYLE_TEMPLATES,
        PROMPT_TEMPLATE_MAPPING,
    )

    style = PROMPT_STYLE_TEMPLATES["classic"]
    return PROMPT_TEMPLATE_MAPPING["plaintext"].format(
        persona=style["persona"],
        task=style["task"],
        tool_call_format=style["tool_call_no_tag"].format(
            output_format=OUTPUT_FORMAT_MAPPING["python"], param_types=PARAM_TYPE_MAPPING["python"]
        ),
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(format="json", functions=json.dumps(functions, indent=4)),
    )


def additional_functions_prompt(functions: list[dict[str, Any]]) -> str:
    """The user message of a miss_func turn that reveals held-out functions (BFCL's prompting text)."""
    from bfcl_eval.constants.default_prompts import DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING

    return DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING.format(functions=functions)


def openai_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL docs as OpenAI chat ``tools`` (BFCL's ``convert_to_tool``: dots become underscores)."""
    return [
        {
            "type": "function",
            "function": {
                "name": openai_name(f["name"]),
                "description": f.get("description", ""),
                "parameters": _openai_schema(f.get("parameters", {})),
            },
        }
        for f in functions
    ]


def _openai_schema(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    declared = schema.get("type")
    out["type"] = _TYPE_TO_OPENAI.get(declared, "string") if isinstance(declared, str) else "string"
    if "properties" in schema:
        out["properties"] = {k: _openai_schema(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        out["items"] = _openai_schema(schema["items"])
    return out


def initial_messages(task: Task) -> list[dict[str, Any]]:
    """System prompt + the first user turn, as BFCL's prompting handlers build them (shared per task)."""
    if "messages" not in task._created:
        first_turn = [dict(m) for m in task.entry["question"][0]]
        if task.config is not None:
            prompt = formats.system_prompt(task.config, task.prompt_functions)
        else:
            prompt = system_prompt(task.prompt_functions)
        if first_turn and first_turn[0].get("role") == "system":
            first_turn[0]["content"] = prompt + "\n\n" + first_turn[0]["content"]
        else:
            first_turn.insert(0, {"role": "system", "content": prompt})
        task._created["messages"] = first_turn
        task._created["tools"] = openai_tools(task.prompt_functions)
    return task._created["messages"]


def tools(task: Task) -> list[dict[str, Any]]:
    initial_messages(task)
    return task._created["tools"]


def ground_truth_table(category: str) -> dict[str, dict[str, Any]]:
    """Per task: the ground truth and each function's raw parameter schema (for replay tests, as JSON)."""
    return {
        task_id: {
            "ground_truth": task.ground_truth,
            "functions": {f["name"]: f.get("parameters", {}) for f in task.functions},
        }
        for task_id, task in tasks(category).items()
    }
