"""Execute BFCL calls safely, and run BFCL's official checkers on an episode.

Runs in the BFCL worker; imports ``bfcl_eval`` lazily.

*Executor.* BFCL's own ``execute_multi_turn_func_call`` builds a string per call and ``eval()``s it, caching
environment objects in module globals forever. ``Scenario`` replaces it: one fresh set of environment
objects per episode (each loaded with ``_load_scenario(initial_config)``), calls parsed with ``ast`` (see
``bfcl.calls``), dispatched by method name with the arguments bound to the method's signature and checked
against the documented parameter types. Results are rendered exactly as BFCL renders them (str as is,
dict as JSON, errors as ``"Error during execution: ..."``).

*Multi-turn checker.* ``multi_turn_checker`` is BFCL's own function, run from its own code object with
one global swapped: ``execute_multi_turn_func_call`` points at an executor backed by fresh ``Scenario``s
(one for the model's calls, one for the ground truth) that lives only for that evaluation. The state and
response checks, and the turn-by-turn driving, are BFCL's.

*AST checker.* ``ast_checker`` imports ``constants.model_config``, which imports every model handler and
their SDKs (openai, anthropic, google-genai, ...). The checker reads that table for one thing: whether the
model's function names had ``.`` replaced by ``_``. We always hand it canonical (dotted) names, so a
one-entry table saying ``underscore_to_dot=False`` is registered in its place; the checking code is BFCL's.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import sys
import tempfile
import types
from collections.abc import Iterable
from typing import Any

from trainbox_server.envs.bfcl.calls import Call, bind_arguments, parse_call_string, type_error

CHECKER_MODEL_NAME = "trainbox"  # no underscores: ast_checker maps "_" to "/" to look the name up
# BFCL's executor refuses these names before eval; kept so error texts match BFCL's.
_BLOCKED = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})


def prepare_bfcl_import() -> None:
    """Point BFCL's result/score folders (created on import of ``bfcl_eval.utils``) away from site-packages."""
    os.environ.setdefault("BFCL_PROJECT_ROOT", os.path.join(tempfile.gettempdir(), "trainbox-bfcl"))


def _render(result: Any) -> str:
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


class Scenario:
    """The stateful environment objects of one episode, and safe dispatch of calls to their methods."""

    def __init__(self, entry: dict[str, Any], docs: dict[str, dict[str, Any]]) -> None:
        from bfcl_eval.constants.executable_backend_config import STATELESS_CLASSES

        long_context = "long_context" in entry["id"]
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Any] = {}
        self.docs = docs  # function name -> BFCL doc (for parameter types)
        for class_name in entry["involved_classes"]:
            instance = environment_class(class_name)()
            if class_name not in STATELESS_CLASSES:
                config = copy.deepcopy(entry["initial_config"].get(class_name, {}))
                instance._load_scenario(config, long_context=long_context)
            self.instances[class_name] = instance
            for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    self.methods[name] = method

    def execute(self, call: Call | str) -> str:
        """Run one call; model mistakes come back as BFCL-style error text, never as exceptions."""
        try:
            if isinstance(call, str):
                call = parse_call_string(call)
            return _render(self._dispatch(call))
        except Exception as e:  # whatever the environment raises is the observation, as in BFCL
            return f"Error during execution: {e}"

    def _dispatch(self, call: Call) -> Any:
        if call.name in _BLOCKED:
            raise PermissionError(f"Function call {call.name} is not allowed.")
        method = self.methods.get(call.name)
        if method is None:
            raise NameError(f"name {call.name!r} is not defined; available functions: {sorted(self.methods)}")
        # fresh argument objects per execution (as BFCL's eval of a string gives): environments keep
        # references to lists they receive, and the same call is replayed by the checker
        try:
            kwargs = copy.deepcopy(bind_arguments(method, call))
        except TypeError as e:
            raise TypeError(f"{call.name}() {e}; signature: {call.name}{inspect.signature(method)}") from None
        properties = self.docs.get(call.name, {}).get("parameters", {}).get("properties", {})
        for key, value in kwargs.items():
            problem = type_error(key, value, properties.get(key, {}))
            if problem:
                raise TypeError(f"{call.name}(): {problem}")
        return method(**kwargs)


@functools.cache
def environment_class(class_name: str) -> type:
    import importlib

    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    return getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)


class _CheckerExecutor:
    """Stands in for BFCL's ``execute_multi_turn_func_call`` during one evaluation (same signature)."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.scenarios: dict[str, Scenario] = {}
        self.ground_truth_turns = 0  # ground truth is executed once per turn, just before that turn's checks

    def __call__(
        self,
        func_call_list: Iterable[Call | str],
        initial_config: dict[str, Any],
        involved_classes: list[str],
        model_name: str,
        test_entry_id: str,
        long_context: bool = False,
        is_evaL_run: bool = False,
    ) -> tuple[list[str], dict[str, Any]]:
        if model_name.endswith("_ground_truth"):
            self.ground_truth_turns += 1
        scenario = self.scenarios.get(model_name)
        if scenario is None:
            entry = {"id": test_entry_id, "initial_config": initial_config, "involved_classes": involved_classes}
            scenario = self.scenarios[model_name] = Scenario(entry, self.docs)
        return [scenario.execute(call) for call in func_call_list], scenario.instances


def check_multi_turn(
    entry: dict[str, Any], ground_truth: list[list[str]], turns: list[list[list[Call]]], docs: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """BFCL's ``multi_turn_checker`` on the model's calls (per turn, per step); returns (result, turns passed).

    Turns the episode did not reach count as turns without calls. "Turns passed" is how many turns the
    checker got through before its first failure (all of them when the result is valid).
    """
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker as module

    executor = _CheckerExecutor(docs)
    checker_globals = dict(vars(module), execute_multi_turn_func_call=executor)
    checker = types.FunctionType(module.multi_turn_checker.__code__, checker_globals)
    padded = turns + [[] for _ in range(len(ground_truth) - len(turns))]
    result: dict[str, Any] = checker(padded, ground_truth, entry, entry["id"].rsplit("_", 1)[0], CHECKER_MODEL_NAME)
    passed = len(ground_truth) if result.get("valid") else max(executor.ground_truth_turns - 1, 0)
    return result, passed


def _install_model_config_table() -> None:
    name = "bfcl_eval.constants.model_config"
    if name in sys.modules:
        return
    table = types.ModuleType(name, "trainbox: the one row of BFCL's model table that ast_checker reads.")
    table.MODEL_CONFIG_MAPPING = {  # type: ignore[attr-defined]
        CHECKER_MODEL_NAME: types.SimpleNamespace(underscore_to_dot=False, is_fc_model=False)
    }
    sys.modules[name] = table


def check_ast(
    functions: list[dict[str, Any]], output: list[dict[str, Any]], answer: Any, category: str, language: str
) -> dict[str, Any]:
    """BFCL's ``ast_checker`` on decoded calls ``[{name: {param: value}}]`` (names in BFCL's dotted form)."""
    _install_model_config_table()
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    result: dict[str, Any] = ast_checker(functions, output, answer, Language(language), category, CHECKER_MODEL_NAME)
    return result
