"""The AppWorld import speed-up (``envs.appworld.speedups``) answers every subclass check as ``ABCMeta`` would.

Run in the AppWorld venv on the real engine: after the engine and every app are imported with the fast check
installed, each model class is asked about every model class and a few builtins both ways (the MRO answer and
``ABCMeta``'s own walk), and a real ``ABCMeta.register`` on a model class switches back to ``ABCMeta``'s
answer so that virtual subclasses still count.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venvs" / "appworld" / "bin" / "python"

CHECK = r"""
import abc, json, sys
from trainbox_server.envs.appworld.speedups import fast_model_subclass_checks
from trainbox_server.envs.appworld.family import _import_engine
_import_engine()
from pydantic import BaseModel
from pydantic.main import ModelMetaclass

seen, todo = set(), [BaseModel]
while todo:
    for sub in type.__subclasses__(todo.pop()):
        if sub not in seen:
            seen.add(sub)
            todo.append(sub)
models = sorted(seen, key=lambda c: (c.__module__, c.__qualname__))
candidates = [*models, BaseModel, int, str, list, dict, bytes, object, type(None)]
pairs = mismatches = 0
for model in [BaseModel, *models[::7]]:
    for candidate in candidates:
        pairs += 1
        fast = issubclass(candidate, model)
        if fast != abc.ABCMeta.__subclasscheck__(model, candidate) or fast != (model in candidate.__mro__):
            mismatches += 1

class Virtual:
    pass

before = issubclass(Virtual, BaseModel)
BaseModel.register(Virtual)
print(json.dumps({
    "installed": getattr(ModelMetaclass, "_trainbox_fast", False) and not fast_model_subclass_checks(),
    "models": len(models), "pairs": pairs, "mismatches": mismatches,
    "virtual_before": before, "virtual_after": issubclass(Virtual, BaseModel),
    "instances": [isinstance(model(), BaseModel) for model in models if not model.__fields__][:5],
}))
"""


def test_fast_model_subclass_checks_agree_with_abcmeta() -> None:
    done = subprocess.run(
        [str(PYTHON), "-c", CHECK], capture_output=True, text=True, timeout=300, check=False,
        cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "server"), "HOME": "/tmp"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["installed"] is True
    assert result["models"] > 500  # every app's models were imported
    assert result["pairs"] > 50_000
    assert result["mismatches"] == 0
    assert result["virtual_before"] is False
    assert result["virtual_after"] is True
    assert result["instances"] == [True] * 5
