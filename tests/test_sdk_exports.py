"""The SDK's public surface: exactly what ``__all__`` lists, importable, and nothing from the server."""

import subprocess
import sys

import trainbox
from trainbox import _exceptions

EXPECTED = {
    "AsyncTrainingSandbox",
    "BadRequest",
    "Busy",
    "CapacityExceeded",
    "ConnectError",
    "CreateResult",
    "DEFAULT_TIMEOUT",
    "DuplicateInstance",
    "EnvironmentFailure",
    "EnvironmentUnavailable",
    "EpisodeOver",
    "EvaluateResult",
    "HostTimeout",
    "HostsUnavailable",
    "InfraError",
    "InstanceInfo",
    "InstanceLost",
    "InstanceStatus",
    "InvalidAction",
    "Message",
    "NotForkable",
    "PayloadTooLarge",
    "ProtocolError",
    "RequestError",
    "RequestTimeout",
    "ServiceStartError",
    "SnapshotInfo",
    "SnapshotLimit",
    "StepResult",
    "StepTimeout",
    "TrainboxError",
    "TrainingSandbox",
    "TransportError",
    "Unauthorized",
    "UnknownEnvironment",
    "UnknownInstance",
    "UnknownSnapshot",
    "UnknownSplit",
    "UnknownTask",
    "UnavailableArchitecture",
    "UnsupportedTask",
    "__version__",
}


def test_all_is_the_public_surface():
    assert set(trainbox.__all__) == EXPECTED
    public = {name for name in vars(trainbox) if not name.startswith("_")} | {"__version__"}
    assert public == EXPECTED


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
