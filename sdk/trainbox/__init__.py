"""trainbox SDK: drive training-sandbox instances (list tasks, create, step, evaluate, release) over HTTP.

    from trainbox import TrainingSandbox

    with TrainingSandbox() as box:                 # no endpoint: starts a local service, stops it after
        task_ids = box.get_env_profile(env_type="bfcl", split="train")
        created = box.create_instance(env_type="bfcl", task_id=task_ids[0])
        result = box.step(created["info"]["instance_id"], {"role": "assistant", "content": "..."})

``TRAINBOX_URL`` (or ``base_url=``) points it at a running service; ``TRAINBOX_TOKEN`` (or ``token=``)
authenticates. ``AsyncTrainingSandbox`` has the same methods, awaitable. Every error derives from
``TrainboxError``; ``error.infra`` tells a trainer to drop the rollout.
"""

from . import _exceptions
from ._async import AsyncTrainingSandbox
from ._base import DEFAULT_TIMEOUT
from ._exceptions import (
    BadRequest,
    Busy,
    CapacityExceeded,
    ConnectError,
    DuplicateInstance,
    EnvironmentFailure,
    EnvironmentUnavailable,
    EpisodeOver,
    HostsUnavailable,
    HostTimeout,
    InfraError,
    InstanceLost,
    InvalidAction,
    NotForkable,
    PayloadTooLarge,
    ProtocolError,
    RequestError,
    RequestTimeout,
    ServiceStartError,
    SnapshotLimit,
    StepTimeout,
    TrainboxError,
    TransportError,
    Unauthorized,
    UnavailableArchitecture,
    UnknownEnvironment,
    UnknownInstance,
    UnknownSnapshot,
    UnknownSplit,
    UnknownTask,
    UnsupportedTask,
)
from ._sync import TrainingSandbox
from ._types import CreateResult, EvaluateResult, InstanceInfo, InstanceStatus, Message, SnapshotInfo, StepResult

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncTrainingSandbox",
    "BadRequest",
    "Busy",
    "CapacityExceeded",
    "ConnectError",
    "CreateResult",
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
    "UnavailableArchitecture",
    "UnknownEnvironment",
    "UnknownInstance",
    "UnknownSnapshot",
    "UnknownSplit",
    "UnknownTask",
    "UnsupportedTask",
    "__version__",
]

# Clients and errors report the public module, as httpx does: tracebacks say trainbox.UnknownTask.
# (Not the TypedDicts: pydantic resolves their annotations through their defining module.)
for _cls in (TrainingSandbox, AsyncTrainingSandbox, *(globals()[n] for n in _exceptions.__all__)):
    _cls.__module__ = "trainbox"
del _cls
