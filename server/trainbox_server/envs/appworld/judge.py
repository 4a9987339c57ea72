"""AppWorld's rewards, computed where model code cannot reach: the evaluator process.

The world runs in a sandboxed worker that cannot read any task's ground truth (see ``appworld.view``).
After a step that completes the task, or on ``evaluate``, that worker hands over the world's state as data
— the database changes AppWorld writes after every execution (``dbs/*.jsonl`` + ``model_hashes.json``) —
and this process, which alone reads the ground truth, runs AppWorld's own evaluator on it.

The state comes from a process that ran model code: it is checked (file names, sizes) before anything is
written, and the task id is the one the runtime recorded at create, never one the worker claims.
Runs in the AppWorld venv (``python -m trainbox_server.runtime.worker appworld --judge``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import Any

from trainbox_server.envs.appworld.speedups import fast_model_subclass_checks
from trainbox_server.envs.base import Evaluation
from trainbox_server.errors import InvalidAction, RequestError

STATE_FILE = re.compile(r"^(?:[a-z_]{1,40}\.jsonl|model_hashes\.json)$")
MAX_STATE_BYTES = 64 * 1024 * 1024
MAX_STATE_FILES = 64


def read_state(dbs_dir: str) -> dict[str, str]:
    """The world's saved database changes as ``{file name: text}`` (worker side)."""
    files: dict[str, str] = {}
    total = 0
    for name in sorted(os.listdir(dbs_dir)):
        path = os.path.join(dbs_dir, name)
        if not STATE_FILE.match(name) or not os.path.isfile(path):
            continue
        total += os.path.getsize(path)
        if total > MAX_STATE_BYTES or len(files) >= MAX_STATE_FILES:
            raise InvalidAction(f"the world's state exceeds {MAX_STATE_BYTES} bytes; it cannot be evaluated")
        with open(path, encoding="utf-8", errors="replace") as file:
            files[name] = file.read()
    return files


def check_state(state: Any) -> dict[str, str]:
    """Refuse a state that is not what ``read_state`` makes (the worker may have been tampered with)."""
    if not isinstance(state, dict) or not state or len(state) > MAX_STATE_FILES:
        raise InvalidAction("the world's state is missing or malformed; it cannot be evaluated")
    total = 0
    for name, text in state.items():
        if not isinstance(name, str) or not STATE_FILE.match(name) or not isinstance(text, str):
            raise InvalidAction("the world's state holds an unexpected file; it cannot be evaluated")
        total += len(text)
    if total > MAX_STATE_BYTES:
        raise InvalidAction(f"the world's state exceeds {MAX_STATE_BYTES} bytes; it cannot be evaluated")
    return state


class AppWorldJudge:
    """Evaluates states of any task; one evaluation at a time, nothing kept between them."""

    def __init__(self) -> None:
        self.scratch = tempfile.mkdtemp(prefix="trainbox-judge-")

    def warm(self) -> None:
        fast_model_subclass_checks()
        from appworld.evaluator import evaluate_task  # noqa: F401 - the import is the warm-up (~3 s)

    def judge(self, task_id: str, state: Any, sparse: bool) -> Evaluation:
        from appworld.apps.model_lib import CachedDBHandler
        from appworld.evaluator import evaluate_task

        from trainbox_server.envs.appworld.family import check_task_id, data_root, rewards

        root = data_root()
        os.environ["APPWORLD_ROOT"] = root
        check_task_id(root, task_id)
        files = check_state(state)
        run = tempfile.mkdtemp(dir=self.scratch)
        dbs = os.path.join(run, "tasks", task_id, "dbs")
        os.makedirs(dbs)
        for name, text in files.items():
            with open(os.path.join(dbs, name), "w", encoding="utf-8") as file:
                file.write(text)
        try:
            tracker = evaluate_task(task_id=task_id, experiment_name=run, suppress_errors=True, save_report=False)
        except Exception as exc:  # a state AppWorld cannot load is the episode's, not the evaluator's, failure
            raise RequestError(f"the world's state could not be evaluated: {type(exc).__name__}") from None
        finally:
            CachedDBHandler.reset()  # the next state of the same task must be read from its own files
            shutil.rmtree(run, ignore_errors=True)
        sparse_reward, dense_reward = rewards(tracker.pass_count, tracker.num_tests)
        details = {
            "sparse": sparse_reward,
            "dense": dense_reward,
            "success": tracker.success,
            "pass_count": tracker.pass_count,
            "num_tests": tracker.num_tests,
            "passes": [p["requirement"] for p in tracker.passes],
            "failures": [{"requirement": f["requirement"], "trace": f["trace"]} for f in tracker.failures],
        }
        return Evaluation(sparse_reward if sparse else dense_reward, details)


def make_judge() -> AppWorldJudge:
    return AppWorldJudge()
