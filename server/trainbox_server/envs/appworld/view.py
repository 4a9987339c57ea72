"""What AppWorld's sandboxed worker may see of the data root, and what its evaluator sees.

A world needs ``data/base_dbs``, ``data/api_docs``, ``data/datasets`` and, per task, ``specs.json`` and
``dbs/``. A task's ``ground_truth/`` (the answer, the private data and the evaluation code) is for the
evaluator only: the worker's view of ``data/tasks`` is a copy without it (hard links where the file
system allows, copies otherwise), built once per dataset and cached by its fingerprint. Everything else
of ``data/`` is bound read-only as it is.

Both views are mounted at ``SANDBOX_ROOT`` inside the sandbox (``APPWORLD_ROOT`` there). Standard library
only: the runtime (service venv) builds the view, and tests read the constants.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat

SANDBOX_ROOT = "/appworld"
TASK_FILES = ("specs.json",)
TASK_DIRS = ("dbs",)


def views_dir() -> str:
    """Where views are kept: ``TRAINBOX_CACHE`` (default ``~/.cache/trainbox``), else the temp dir."""
    base = os.environ.get("TRAINBOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "trainbox")
    path = os.path.join(base, "appworld-views")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        path = os.path.join("/tmp", f"trainbox-appworld-views-{os.getuid()}")
        os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _public_files(tasks: str) -> list[str]:
    """Relative paths (under ``data/tasks``) of every file a world may read."""
    found: list[str] = []
    for task in sorted(os.listdir(tasks)):
        for name in TASK_FILES:
            if os.path.isfile(os.path.join(tasks, task, name)):
                found.append(os.path.join(task, name))
        for sub in TASK_DIRS:
            top = os.path.join(tasks, task, sub)
            for dirpath, _, files in os.walk(top):
                found += [os.path.relpath(os.path.join(dirpath, f), tasks) for f in sorted(files)]
    return found


def _fingerprint(tasks: str, files: list[str]) -> str:
    digest = hashlib.sha256(os.path.realpath(tasks).encode())
    for rel in files:
        info = os.stat(os.path.join(tasks, rel))
        digest.update(f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n".encode())
    return digest.hexdigest()[:20]


def _place(source: str, target: str) -> None:
    """Hard-link ``source`` if it is world-readable and on the same file system, else copy it readable."""
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if os.stat(source).st_mode & stat.S_IROTH:
        with contextlib.suppress(OSError):
            os.link(source, target)
            return
    shutil.copyfile(source, target)
    os.chmod(target, 0o644)


def public_tasks_view(root: str) -> str:
    """A directory holding every task's public files (no ``ground_truth``), built once per dataset."""
    tasks = os.path.join(root, "data", "tasks")
    files = _public_files(tasks)
    view = os.path.join(views_dir(), _fingerprint(tasks, files))
    if os.path.isfile(os.path.join(view, ".complete")):
        return os.path.join(view, "tasks")
    building = f"{view}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    for rel in files:
        _place(os.path.join(tasks, rel), os.path.join(building, "tasks", rel))
    os.makedirs(os.path.join(building, "tasks"), mode=0o755, exist_ok=True)
    for dirpath, _, _ in os.walk(building):
        os.chmod(dirpath, 0o755)
    with open(os.path.join(building, ".complete"), "w") as marker:
        marker.write(root)
    try:
        os.rename(building, view)
    except OSError:  # another process built it first
        shutil.rmtree(building, ignore_errors=True)
    return os.path.join(view, "tasks")


def binds(root: str, judge: bool) -> list[tuple[str, str]]:
    """The read-only binds of a world's worker (``judge``: of the evaluator); none while ``root`` holds no tasks
    (the worker then reports the missing data itself)."""
    if not os.path.isdir(os.path.join(root, "data", "tasks")):
        return []
    return evaluator_binds(root) if judge else worker_binds(root)


def worker_binds(root: str) -> list[tuple[str, str]]:
    """Read-only binds for a world's worker: the public tasks view, and the rest of ``data/`` as it is."""
    data = os.path.join(root, "data")
    binds = [(public_tasks_view(root), f"{SANDBOX_ROOT}/data/tasks")]
    for name in sorted(os.listdir(data)):
        if name != "tasks":
            binds.append((os.path.join(data, name), f"{SANDBOX_ROOT}/data/{name}"))
    return binds


def evaluator_binds(root: str) -> list[tuple[str, str]]:
    """The evaluator sees the whole data root, ground truth included (it runs no model code)."""
    return [(os.path.join(root, "data"), f"{SANDBOX_ROOT}/data")]
