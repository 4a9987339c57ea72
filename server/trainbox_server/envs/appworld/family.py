"""The AppWorld family's adapter: one world per worker process, rewards from the evaluator process."""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
import re
import shutil
import sys
import tempfile
from typing import Any

from trainbox_server.envs.appworld.messages import (
    APPWORLD_TOOL,
    SYSTEM_PROMPT,
    extract_code,
    observation,
    user_message,
)
from trainbox_server.envs.appworld.speedups import fast_model_subclass_checks
from trainbox_server.envs.base import SPLITS, Created, Evaluation, Message, StepResult
from trainbox_server.envs.registry import data_of
from trainbox_server.errors import EnvironmentUnavailable, EpisodeOver, RequestError, UnknownSplit, UnknownTask

SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("dev",),
    "test": ("test_normal", "test_challenge"),
}
TASK_ID = re.compile(r"^[A-Za-z0-9]+_[0-9]+$")
DEFAULT_STEP_TIMEOUT = 20
OUTPUTS_DIR = os.path.join(tempfile.gettempdir(), "trainbox-appworld")


def data_root() -> str:
    """``APPWORLD_ROOT``, else the registry's default."""
    return data_of("appworld").root()


def _missing(what: str) -> EnvironmentUnavailable:
    return EnvironmentUnavailable(
        f"AppWorld data not found: {what}. Run `make appworld-data` (downloads it; needs the internet), "
        "or set APPWORLD_ROOT to a directory holding AppWorld's data/ folder "
        "(`python -m trainbox_server.envs.appworld.dataset --root DIR` builds a small one)."
    )


def split_task_ids(root: str, split: str) -> list[str]:
    """The task ids of ``split`` from AppWorld's dataset files under ``root`` (pure file reading)."""
    if split not in SPLITS:
        raise UnknownSplit(f"unknown split {split!r}; splits are {list(SPLITS)}")
    datasets = os.path.join(root, "data", "datasets")
    paths = [os.path.join(datasets, f"{name}.txt") for name in SPLIT_FILES[split]]
    found = [path for path in paths if os.path.isfile(path)]
    if not found:
        raise _missing(f"no {' or '.join(os.path.basename(p) for p in paths)} in {datasets}")
    ids: list[str] = []
    for path in found:
        with open(path) as file:
            # AppWorld allows "<id>:<tag>" lines; the tag is not part of the id.
            ids += [line.split(":")[0].strip() for line in file if line.strip()]
    return ids


def rewards(pass_count: int, num_tests: int) -> tuple[float, float]:
    """(sparse, dense) from AppWorld's test counts."""
    passed_all = num_tests > 0 and pass_count == num_tests
    return (1.0 if passed_all else 0.0), (pass_count / num_tests if num_tests else 0.0)


def _bool_param(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise RequestError(f"param {key!r} must be true or false, got {value!r}")
    return value


def _int_param(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise RequestError(f"param {key!r} must be a positive number, got {value!r}")
    return max(1, round(value))


class AppWorldInstance:
    """One open world. Not thread-safe; one per process (see the module docstring)."""

    def __init__(self, world: Any, output_dir: str, sparse: bool) -> None:
        self.world = world
        self.output_dir = output_dir
        self.sparse = sparse
        self.terminated = False
        self.closed = False

    def step(self, message: Message) -> StepResult:
        if self.terminated:
            raise EpisodeOver("the task was already marked complete; evaluate or close this instance")
        code, tool_call_id = extract_code(message)
        output = self.world.execute(code)
        self.terminated = bool(self.world.task_completed())
        info: dict[str, Any] = {"interactions": self.world.num_interactions}
        # The reward of the completing step comes from the evaluator process (see appworld.judge).
        return StepResult([observation(output, tool_call_id)], 0.0, self.terminated, info, judge=self.terminated)

    def export_state(self) -> dict[str, Any]:
        """The world's state as data, for the evaluator: AppWorld saves its database changes after every
        execution (and at creation) under the output directory."""
        from trainbox_server.envs.appworld.judge import read_state

        return {"files": read_state(self.world.output_db_home_path_on_disk), "sparse": self.sparse}

    def evaluate(self, params: dict[str, Any]) -> Evaluation:
        raise RequestError("AppWorld instances are evaluated by the evaluator process, not in their sandbox")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.world.close()
        finally:
            shutil.rmtree(self.output_dir, ignore_errors=True)


class AppWorldFamily:
    name = "appworld"
    max_instances_per_process = 1

    def __init__(self) -> None:
        self._instance: AppWorldInstance | None = None
        self._worlds = 0
        self._process_dir = os.path.join(OUTPUTS_DIR, str(os.getpid()))

    def preload(self) -> None:
        """What the fork server imports once for all its forks (``runtime.forkserver``): no data, no world."""
        _import_engine()

    def warm(self) -> None:
        """Import the engine and its apps, and open one world if data is present, before any create."""
        root = data_root()
        os.environ["APPWORLD_ROOT"] = root  # AppWorld's path_store reads it on every use
        _sweep_dead_process_dirs()
        atexit.register(self._close_at_exit)
        _import_engine()
        try:
            first = split_task_ids(root, "train")[:1]
        except EnvironmentUnavailable:
            first = []
        if first and os.path.isdir(os.path.join(root, "data", "tasks", first[0])):
            # The first world pays one-off costs (IPython shell, API collection, DB engines). Optional: if
            # this task cannot load, the worker still serves the others (and a create of it says why).
            try:
                _, instance = self.create(first[0], {})
                instance.close()
            except Exception as exc:
                print(f"appworld warm-up world {first[0]} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._instance = None
        # What warm-up allocated lives as long as the process: keep the collector from rescanning it.
        gc.collect()
        gc.freeze()

    def task_ids(self, split: str) -> list[str]:
        return split_task_ids(data_root(), split)

    def create(self, task_id: str, params: dict[str, Any]) -> tuple[Created, AppWorldInstance]:
        if self._instance is not None and not self._instance.closed:
            raise RequestError("this worker already hosts an AppWorld instance (one world per process)")
        root = data_root()
        os.environ["APPWORLD_ROOT"] = root
        self._check_task(root, task_id)
        sparse = _bool_param(params, "sparse", False)
        timeout = _int_param(params, "step_timeout", DEFAULT_STEP_TIMEOUT)
        max_interactions = _int_param(params, "max_interactions", 1000)
        from appworld import AppWorld

        self._worlds += 1
        # An absolute experiment name puts AppWorld's outputs outside the (maybe read-only) data root.
        output_dir = os.path.join(self._process_dir, str(self._worlds))
        world = AppWorld(
            task_id,
            experiment_name=output_dir,
            timeout_seconds=timeout,
            max_interactions=max_interactions,
            load_ground_truth=False,  # the sandbox cannot read it anyway; rewards come from the evaluator
        )
        supervisor = dict(world.task.supervisor)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(supervisor, world.task.instruction)},
        ]
        info = {
            "task_id": task_id,
            "supervisor": {k: supervisor.get(k) for k in ("first_name", "last_name", "email", "phone_number")},
            "datetime": world.task.datetime.isoformat(),
            "tools": [APPWORLD_TOOL],
        }
        self._instance = AppWorldInstance(world, output_dir, sparse)
        return Created(messages, info), self._instance

    def _check_task(self, root: str, task_id: str) -> None:
        tasks = os.path.join(root, "data", "tasks")
        if not os.path.isdir(tasks):
            raise _missing(f"no {tasks}")
        check_task_id(root, task_id)

    def _close_at_exit(self) -> None:
        if self._instance is not None:
            with contextlib.suppress(Exception):  # the process is exiting: cleanup is best effort
                self._instance.close()
        shutil.rmtree(self._process_dir, ignore_errors=True)


def check_task_id(root: str, task_id: Any) -> None:
    """``UnknownTask`` unless ``task_id`` is well-formed and present under ``root``."""
    tasks = os.path.join(root, "data", "tasks")
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        raise UnknownTask(f"unknown AppWorld task id {task_id!r}; ids look like '82e2fac_1'")
    if not os.path.isfile(os.path.join(tasks, task_id, "specs.json")):
        raise UnknownTask(f"unknown AppWorld task {task_id!r}: not in {tasks}")


def _import_engine() -> None:
    """Import AppWorld (~2 s cold) and every app's models and APIs; reuse the API server app across worlds.

    Each world's ``Requester`` rebuilds the FastAPI app that serves every app's APIs (~25 ms of CPU, a
    third of a create) although that app holds no per-world state: its routes act on the app models, whose
    databases each world points elsewhere. Caching ``build_main_app`` per app list keeps that cost in the
    warm-up.
    """
    fast_model_subclass_checks()
    import appworld.requester
    from appworld import AppWorld  # noqa: F401
    from appworld.apps import get_all_apps
    from appworld.common.utils import import_apis_module, import_models_module

    for app_name in get_all_apps():
        import_models_module(app_name)
        import_apis_module(app_name)
    if not hasattr(appworld.requester.build_main_app, "cache_info"):
        appworld.requester.build_main_app = functools.cache(appworld.requester.build_main_app)


def _sweep_dead_process_dirs() -> None:
    """Remove output directories left by worker processes that were killed (no atexit ran)."""
    try:
        names = os.listdir(OUTPUTS_DIR)
    except FileNotFoundError:
        return
    for name in names:
        if name.isdigit() and not os.path.exists(f"/proc/{name}"):
            shutil.rmtree(os.path.join(OUTPUTS_DIR, name), ignore_errors=True)


def make_family() -> AppWorldFamily:
    return AppWorldFamily()
