"""The small datasets the tests build with the project's builders, cached between runs.

A builder's output depends only on its code and its family's pinned engine, so it is built once per version
of those and kept under ``~/.cache/trainbox/datasets/<family>-<hash>`` (``TRAINBOX_CACHE``); each caller gets
its own copy (engines write into their roots: AppWorld its outputs). Building AppWorld's took ≈ 10 s of CPU,
three times a run (each lane's session fixture and the cluster test's hostPath).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from trainbox_server.runtime.process import default_python

from tests.servicekit import REPO

CACHE = Path(os.environ.get("TRAINBOX_CACHE", Path.home() / ".cache/trainbox")) / "datasets"


def inputs_hash(family: str, module: str) -> str:
    """The builder's code (its family's package, the shared envs modules) and the family's requirements."""
    digest = hashlib.sha256(f"{family} {module}".encode())
    envs = REPO / "server/trainbox_server/envs"
    files = [*sorted((envs / family).rglob("*.py")), *sorted(envs.glob("*.py"))]
    files += sorted((REPO / "requirements").glob(f"{family}*.txt"))
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def dataset(family: str, module: str, dest: Path) -> Path:
    """`dest` filled with the family's dataset, built by `module` in the family's venv unless cached."""
    cached = CACHE / f"{family}-{inputs_hash(family, module)}"
    if not cached.is_dir():
        python = default_python(family)
        if not os.path.exists(python):
            raise RuntimeError(f"the {family} venv is missing ({python}): run `make install`")
        CACHE.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{family}-", dir=CACHE))
        env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
        subprocess.run([python, "-m", module, "--root", str(building)], check=True, env=env,
                       stdout=subprocess.DEVNULL, timeout=600)  # fmt: skip
        try:
            building.rename(cached)  # atomic: a concurrent run that built it first wins
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(cached, dest, dirs_exist_ok=True)
    return dest
