"""The SDK's public surface: exactly what ``__all__`` lists, importable, and nothing from the server."""

import re
import subprocess
import sys

import trainbox
from trainbox import _exceptions

# What the package exports besides its exceptions (those are every TrainboxError class in _exceptions).
CLIENTS_AND_TYPES = {
    "AsyncTrainingSandbox",
    "TrainingSandbox",
    "CreateResult",
    "EvaluateResult",
    "InstanceInfo",
    "InstanceStatus",
    "Message",
    "SnapshotInfo",
    "StepResult",
    "DEFAULT_TIMEOUT",
    "__version__",
}
EXPECTED = CLIENTS_AND_TYPES | set(_exceptions.__all__)


def test_all_is_the_public_surface():
    assert set(trainbox.__all__) == EXPECTED
    public = {name for name in vars(trainbox) if not name.startswith("_")} | {"__version__"}
    assert public == EXPECTED


def test_the_exceptions_module_exports_every_exception_it_defines():
    defined = {n for n, v in vars(_exceptions).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert set(_exceptions.__all__) == defined - {"Exception"} and len(defined) > 25


def test_the_docstring_tree_draws_every_exception_once():
    drawn = re.findall(r"[├└]── (\w+)|^    (TrainboxError)", _exceptions.__doc__ or "", re.MULTILINE)
    names = [a or b for a, b in drawn]
    assert sorted(names) == sorted(_exceptions.__all__)


def test_every_exception_is_exported_and_derives_from_the_root():
    for name in _exceptions.__all__:
        cls = getattr(trainbox, name)
        assert issubclass(cls, trainbox.TrainboxError)
        assert cls.__module__ == "trainbox"


def test_infra_flag_follows_the_tree():
    for name in _exceptions.__all__:
        cls = getattr(trainbox, name)
        assert cls("x").infra is issubclass(cls, trainbox.InfraError), name


def test_import_pulls_nothing_from_the_server():
    code = "import sys, trainbox; print(sorted(m for m in sys.modules if m.startswith(('trainbox_server', 'ray'))))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
