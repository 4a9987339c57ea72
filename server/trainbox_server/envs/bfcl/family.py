"""The BFCL family's adapter: tasks, instances (multi-turn and single-turn) and their rewards."""

from __future__ import annotations

import copy
import sys
from typing import Any

from trainbox_server.envs.base import SPLITS, Created, Evaluation, Message, StepResult
from trainbox_server.envs.bfcl import data, formats
from trainbox_server.envs.bfcl.calls import (
    ACCEPTED_FORMATS,
    Call,
    CallSyntaxError,
    argument_errors,
    openai_name,
    parse_calls,
)
from trainbox_server.envs.bfcl.splits import split_ids
from trainbox_server.envs.releases import env_suffix
from trainbox_server.errors import (
    EnvironmentUnavailable,
    EpisodeOver,
    InvalidAction,
    RequestError,
    UnknownSplit,
    UnknownTask,
    UnsupportedTask,
)

MAXIMUM_STEP_LIMIT = 20  # BFCL's per-turn cap on model steps (constants.default_prompts)
_DETAIL_TEXT_LIMIT = 2000


class BfclFamily:
    name = "bfcl"
    max_instances_per_process = 100_000

    def __init__(self, release: str | None = None) -> None:
        from trainbox_server.envs.bfcl.execute import prepare_bfcl_import

        installed = data.installed_release()
        if release is not None and release != installed:
            raise EnvironmentUnavailable(
                f"bfcl@{release} needs an interpreter with bfcl-eval=={release}; this one ({sys.executable}) has "
                f"{installed or 'none'}: run `make install` or point TRAINBOX_PYTHON_{env_suffix('bfcl@' + release)} "
                "at that release's venv"
            )
        self.release = installed
        prepare_bfcl_import()
        self._splits: dict[str, list[str]] | None = None

    def preload(self) -> None:
        """What the fork server loads once for all its forks (``runtime.forkserver``): the same as ``warm``
        (the engine, the checker, the dataset's tasks; no instance)."""
        self.warm()

    def warm(self) -> None:
        """Before the first create (the warm pool calls this): parse the dataset, import the checker and the
        environment classes, then freeze what was loaded out of the garbage collector's way."""
        import gc

        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker  # noqa: F401

        from trainbox_server.envs.bfcl.execute import environment_class

        self.task_ids("train")
        for category in data.MULTI_TURN_CATEGORIES:
            for task in data.tasks(category).values():
                for class_name in task.entry.get("involved_classes", ()):
                    environment_class(class_name)
        gc.freeze()

    def task_ids(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise UnknownSplit(f"unknown split {split!r}; BFCL splits are {list(SPLITS)}")
        if self._splits is None:
            self._splits = split_ids({c: data.category_ids(c) for c in data.CATEGORIES})
        return list(self._splits[split])

    def create(self, task_id: str, params: dict[str, Any]) -> tuple[Created, Any]:
        task = _find_task(task_id)
        kind = MultiTurnInstance if task.multi_turn else SingleTurnInstance
        instance = kind(task, params)
        info = {
            "task_id": task.id,
            "category": task.category,
            "multi_turn": task.multi_turn,
            "num_turns": len(task.entry["question"]),
            "release": self.release,
            "tools": data.tools(task),
        }
        return Created([dict(m) for m in data.initial_messages(task)], info), instance


class _Forkable:
    """`fork`, for both kinds of episode: a deep copy that shares the read-only task data with its source."""

    __slots__ = ()

    def fork(self) -> Any:
        """An independent copy of this episode (the task's data and docs are shared: they are never written)."""
        task = self.task  # type: ignore[attr-defined]
        shared = [task, task.entry, getattr(getattr(self, "scenario", None), "docs", None)]
        return copy.deepcopy(self, {id(value): value for value in shared if value is not None})


def make_family(release: str | None = None) -> BfclFamily:
    return BfclFamily(release)


def _find_task(task_id: str) -> data.Task:
    if not isinstance(task_id, str):
        raise UnknownTask(f"task id must be a string, got {type(task_id).__name__}")
    reason = data.unsupported_reason(task_id)
    if reason:
        raise UnsupportedTask(f"{task_id!r} cannot run here: {reason}. Supported categories: {data.CATEGORIES}")
    category = data.category_of(task_id)
    task = data.tasks(category).get(task_id) if category else None
    if task is None:
        raise UnknownTask(
            f"unknown BFCL task {task_id!r}; ids look like 'multi_turn_base_0' or 'live_simple_0-0-0' "
            f"in categories {data.CATEGORIES}; list them with task_ids(split)"
        )
    return task


def _ends_turn(params: dict[str, Any]) -> bool:
    mode = params.get("on_invalid_action", "error")
    if mode not in ("error", "end_turn"):
        raise RequestError(f"param on_invalid_action must be 'error' or 'end_turn', got {mode!r}")
    return mode == "end_turn"


def _parse(message: Message) -> list[Call] | None:
    if not isinstance(message, dict):
        raise InvalidAction(f"the action must be an assistant message dict; {ACCEPTED_FORMATS}")
    try:
        return parse_calls(message)
    except CallSyntaxError as e:
        raise InvalidAction(str(e)) from None


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Checker findings as JSON-safe, bounded data (environment objects become their ``str``)."""
    if isinstance(value, str):
        return value if len(value) <= _DETAIL_TEXT_LIMIT else value[:_DETAIL_TEXT_LIMIT] + "..."
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 6:
        return _jsonable(repr(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v, depth + 1) for v in value]
    return _jsonable(str(value))


def _verdict(result: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    details = result.get("details") or {}
    findings = {k: _jsonable(details[k]) for k in keep if k in details}
    error = result.get("error_message", result.get("error"))
    verdict = {"valid": bool(result.get("valid")), "error_type": result.get("error_type")}
    verdict["error_message"] = _jsonable(error)
    if findings:
        verdict["findings"] = findings
    return verdict


class MultiTurnInstance(_Forkable):
    """An episode of a multi-turn task: live environment objects plus the calls made, turn by turn."""

    __slots__ = (
        "_evaluation",
        "available",
        "done",
        "end_turn",
        "forced_quit",
        "scenario",
        "sparse",
        "steps",
        "task",
        "turns",
    )

    def __init__(self, task: data.Task, params: dict[str, Any]) -> None:
        self.task = task
        self.sparse = bool(params.get("sparse", True))
        self.end_turn = _ends_turn(params)
        self.turns: list[list[list[Call]]] = [[]]  # per turn, per step: the calls made
        self.scenario: Any = None  # environment objects, built on the first call
        self.available: list[dict[str, Any]] | None = None  # function docs, once a turn reveals more
        self.done = False
        self.forced_quit = False
        self.steps = 0  # accepted steps so far: the cached evaluation is valid for one value
        self._evaluation: tuple[int, Evaluation] | None = None

    def step(self, message: Message) -> StepResult:
        if self.done:
            raise EpisodeOver(f"episode of {self.task.id} is over; evaluate or close it")
        try:
            calls = _parse(message)
        except InvalidAction:
            if not self.end_turn:
                raise
            calls = None
        self.steps += 1
        if calls:
            return self._run_calls(calls)
        return self._end_turn()

    def _run_calls(self, calls: list[Call]) -> StepResult:
        if self.scenario is None:
            from trainbox_server.envs.bfcl.execute import Scenario

            self.scenario = Scenario(self.task.entry, _docs_by_name(self.task))
        self.turns[-1].append(calls)
        messages: list[Message] = []
        for call in calls:
            observation: Message = {"role": "tool", "name": call.name, "content": self.scenario.execute(call)}
            if call.call_id is not None:
                observation["tool_call_id"] = call.call_id
            messages.append(observation)
        if len(self.turns[-1]) <= MAXIMUM_STEP_LIMIT:
            return StepResult(messages, info={"turn": len(self.turns) - 1})
        self.done = self.forced_quit = True
        quit_text = f"Model has been forced to quit after {MAXIMUM_STEP_LIMIT} steps."
        evaluation = self.evaluate({})
        messages.append({"role": "user", "content": quit_text})
        return StepResult(messages, evaluation.reward, True, {"evaluation": evaluation.details})

    def _end_turn(self) -> StepResult:
        questions = self.task.entry["question"]
        if len(self.turns) >= len(questions):
            self.done = True
            evaluation = self.evaluate({})
            return StepResult([], evaluation.reward, True, {"evaluation": evaluation.details})
        turn = len(self.turns)
        self.turns.append([])
        info: dict[str, Any] = {"turn": turn}
        messages = [dict(m) for m in questions[turn]]
        revealed = self.task.revealed_at(turn)
        if revealed:
            self.available = (self.available or list(self.task.prompt_functions)) + revealed
            messages = [{"role": "user", "content": data.additional_functions_prompt(revealed)}]
            info["new_tools"] = data.openai_tools(revealed)
            info["tools"] = data.openai_tools(self.available)
        return StepResult(messages, 0.0, False, info)

    def evaluate(self, params: dict[str, Any]) -> Evaluation:
        sparse = bool(params.get("sparse", self.sparse))
        if self._evaluation is None or self._evaluation[0] != self.steps:
            self._evaluation = (self.steps, self._check())
        scores = self._evaluation[1]
        reward = scores.details["sparse"] if sparse else scores.details["dense"]
        return Evaluation(reward, {**scores.details, "mode": "sparse" if sparse else "dense"})

    def _check(self) -> Evaluation:
        from trainbox_server.envs.bfcl.execute import check_multi_turn

        task, num_turns = self.task, len(self.task.ground_truth)
        result, passed = check_multi_turn(task.entry, task.ground_truth, self.turns, _docs_by_name(task))
        verdict = _verdict(result, ("differences", "missing_items"))
        finished = self.done and not self.forced_quit
        if not finished and verdict["valid"]:
            # BFCL fails an entry whose turns were not all played ("force_terminated")
            reason = "forced to quit: too many steps in one turn" if self.forced_quit else "episode not finished"
            verdict.update(valid=False, error_type="trainbox:unfinished", error_message=reason)
        verdict["finished"] = finished
        sparse = 1.0 if verdict["valid"] else 0.0
        dense = passed / num_turns if num_turns else sparse
        details = {**verdict, "sparse": sparse, "dense": dense, "turns_passed": passed, "num_turns": num_turns}
        details["turns_played"] = len(self.turns)
        return Evaluation(sparse, details)

    def close(self) -> None:
        self.scenario = None


def _docs_by_name(task: data.Task) -> dict[str, dict[str, Any]]:
    if "docs" not in task._created:
        task._created["docs"] = {
            doc["name"]: doc for name in task.entry["involved_classes"] for doc in data.class_docs(name)
        }
    docs: dict[str, dict[str, Any]] = task._created["docs"]
    return docs


class SingleTurnInstance(_Forkable):
    """An episode of a single-turn AST task: one step with the calls, scored by BFCL's ``ast_checker``."""

    __slots__ = ("end_turn", "evaluation", "sparse", "task")

    def __init__(self, task: data.Task, params: dict[str, Any]) -> None:
        self.task = task
        self.sparse = bool(params.get("sparse", True))
        self.end_turn = _ends_turn(params)
        self.evaluation: Evaluation | None = None

    def step(self, message: Message) -> StepResult:
        if self.evaluation is not None:
            raise EpisodeOver(f"episode of {self.task.id} is over (single-turn); evaluate or close it")
        try:
            return self._step(message)
        except InvalidAction as e:
            if not self.end_turn:
                raise
            details = {"valid": False, "error_type": "trainbox:invalid_action", "error_message": str(e)}
            self.evaluation = Evaluation(0.0, {**details, "sparse": 0.0, "dense": 0.0, "calls": []})
            return StepResult([], 0.0, True, {"evaluation": self.evaluation.details})

    def _step(self, message: Message) -> StepResult:
        if self.task.config is not None:
            self.evaluation = self._score_format(message)
            return StepResult([], self.evaluation.reward, True, {"evaluation": self.evaluation.details})
        calls = _parse(message) or []
        category = self.task.category
        if not calls and category not in data.NO_CALL_CATEGORIES:
            names = [f["name"] for f in self.task.prompt_functions]
            raise InvalidAction(f"no function call found; this task expects calls to {names}. {ACCEPTED_FORMATS}")
        decoded = [{name: call.kwargs} for call, name in zip(calls, self._check_calls(calls), strict=True)]
        self.evaluation = self._score(decoded)
        return StepResult([], self.evaluation.reward, True, {"evaluation": self.evaluation.details})

    def _check_calls(self, calls: list[Call]) -> list[str]:
        """Each call's canonical (BFCL, dotted) function name; refuse calls the checker could not judge."""
        by_name = {f["name"]: f for f in self.task.prompt_functions}
        aliases = {openai_name(n): n for n in by_name}
        names = []
        for call in calls:
            name = call.name if call.name in by_name else aliases.get(call.name)
            if name is None:
                raise InvalidAction(f"unknown function {call.name!r}; this task offers {sorted(by_name)}")
            if call.args:
                raise InvalidAction(f"{call.name}: pass arguments by keyword (name=value), not by position")
            errors = argument_errors(call.kwargs, by_name[name].get("parameters", {}), self._answer_types(name))
            if errors:
                raise InvalidAction(f"{call.name}: " + "; ".join(errors))
            names.append(name)
        return names

    def _answer_types(self, name: str) -> dict[str, frozenset[type]]:
        """Per parameter, the types of the possible answers: BFCL's checker accepts those types too."""
        if self.task.language != "python" or not isinstance(self.task.ground_truth, list):
            return {}
        types: dict[str, set[type]] = {}
        for answer in self.task.ground_truth:
            for param, values in answer.get(name, {}).items():
                types.setdefault(param, set()).update(type(v) for v in values if v != "")
        return {param: frozenset(ts) for param, ts in types.items()}

    def _score(self, decoded: list[dict[str, Any]]) -> Evaluation:
        task = self.task
        if task.category in data.NO_CALL_CATEGORIES:
            valid = not decoded
            error = None if valid else "Valid syntax. Successfully decode AST when it should not."
            result = {"valid": valid, "error": error, "error_type": None if valid else "irrelevance_error"}
        elif task.category in data.ANY_CALL_CATEGORIES:
            result = {"valid": True}
        else:
            from trainbox_server.envs.bfcl.execute import check_ast

            functions = task.functions
            result = check_ast(functions, decoded, task.ground_truth, task.category, task.language)
        verdict = _verdict(result, ())
        score = 1.0 if verdict["valid"] else 0.0
        return Evaluation(score, {**verdict, "sparse": score, "dense": score, "calls": _jsonable(decoded)})

    def _score_format(self, message: Message) -> Evaluation:
        """format_sensitivity: the message text decoded in the task's format, then BFCL's checker (a text that
        does not decode scores 0 with the decoder's reason, as in BFCL)."""
        from trainbox_server.envs.bfcl.execute import check_ast

        if not isinstance(message, dict):
            raise InvalidAction(f"the action must be an assistant message dict; {ACCEPTED_FORMATS}")
        task = self.task
        assert task.config is not None and task.source_category is not None
        decoded, failure = formats.decode(message.get("content"), task.config)
        if failure is None:
            failure = check_ast(task.functions, decoded or [], task.ground_truth, task.source_category, "python")
        verdict = _verdict(failure, ())
        score = 1.0 if verdict["valid"] else 0.0
        return Evaluation(score, {**verdict, "sparse": score, "dense": score, "calls": _jsonable(decoded)})

    def evaluate(self, params: dict[str, Any]) -> Evaluation:
        if self.evaluation is None:
            message = "no action was taken"
            details = {"valid": False, "error_type": "trainbox:no_action", "error_message": message}
            return Evaluation(0.0, {**details, "sparse": 0.0, "dense": 0.0})
        return self.evaluation

    def close(self) -> None:
        self.evaluation = None
