"""The data plane's exceptions: one root, a precise subclass per thing that can go wrong.

One tree for every layer: adapters raise these in their worker processes (standard library only, so any
family's interpreter imports it), the worker sends ``kind`` as it is, hosts and the front re-raise it
(``from_wire``), and the HTTP answer carries it. The SDK maps the same kinds (a test keeps them agreed).

TrainboxError                     root; ``kind`` is the wire name, ``status`` the HTTP status
├── RequestError                  the caller sent something we cannot serve (4xx)
│   ├── UnknownEnvironment        404  env type not served here
│   ├── UnknownSplit              404
│   ├── UnknownTask               404
│   ├── UnknownInstance           404  never existed, or released
│   ├── UnknownSnapshot           404  never taken, released, or past its TTL
│   ├── NotForkable               409  the family cannot copy this instance
│   ├── InvalidRequest            422  a body or parameter outside what is accepted (kind bad_request)
│   ├── PayloadTooLarge           413  the request body is over the size limit
│   ├── DuplicateInstance         409  an instance id already in use
│   ├── InvalidAction             422  no code / unparsable call / wrong arguments
│   ├── UnsupportedTask           422  exists but cannot run offline (BFCL memory_*, web_search)
│   ├── UnavailableArchitecture   422  no host of the requested CPU architecture
│   ├── Unauthorized              401  missing or wrong bearer token
│   ├── NotFound                  404  no such route
│   ├── MethodNotAllowed          405  the route exists, not with that HTTP method
│   └── EpisodeOver               409  step after the episode terminated
└── InfraError                    not the model's fault: a trainer should drop the rollout
    ├── StepTimeout               504  the call ran past its timeout; its worker was replaced
    ├── InstanceLost              410  its worker or host died (exit, kill, memory); the instance is gone
    ├── HostTimeout               504  the host did not answer within the call's deadline
    ├── EnvironmentUnavailable    503  family not installed, or its data missing
    ├── CapacityExceeded          429  admission control: retry after ``retry_after`` seconds
    │   ├── Busy                  503  too many creations in flight right now
    │   ├── SnapshotLimit         429  the host holds its maximum of snapshots (count or bytes)
    │   └── HostsUnavailable      503  no host serves right now (they are being re-created)
    ├── EnvironmentFailure        500  the adapter failed unexpectedly (logged, no traceback sent)
    └── InternalError             500  the service itself failed unexpectedly (logged, no traceback sent)
"""

from __future__ import annotations


class TrainboxError(Exception):
    kind = "error"
    status = 500
    infra = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, "infra": self.infra}


class RequestError(TrainboxError):
    kind = "bad_request"
    status = 400


class UnknownEnvironment(RequestError):
    kind = "unknown_environment"
    status = 404


class UnknownSplit(RequestError):
    kind = "unknown_split"
    status = 404


class UnknownTask(RequestError):
    kind = "unknown_task"
    status = 404


class UnknownInstance(RequestError):
    kind = "unknown_instance"
    status = 404


class InvalidRequest(RequestError):
    """A validation failure; the wire kind stays ``bad_request`` (what clients already match on)."""

    kind = "bad_request"
    status = 422


class PayloadTooLarge(RequestError):
    kind = "payload_too_large"
    status = 413


class UnknownSnapshot(RequestError):
    kind = "unknown_snapshot"
    status = 404


class NotForkable(RequestError):
    kind = "not_forkable"
    status = 409


class DuplicateInstance(RequestError):
    kind = "duplicate_instance"
    status = 409


class InvalidAction(RequestError):
    kind = "invalid_action"
    status = 422


class UnsupportedTask(RequestError):
    kind = "unsupported_task"
    status = 422


class UnavailableArchitecture(RequestError):
    kind = "unavailable_architecture"
    status = 422


class Unauthorized(RequestError):
    kind = "unauthorized"
    status = 401


class NotFound(RequestError):
    kind = "not_found"
    status = 404


class MethodNotAllowed(RequestError):
    kind = "method_not_allowed"
    status = 405


class EpisodeOver(RequestError):
    kind = "episode_over"
    status = 409


class InfraError(TrainboxError):
    kind = "infra_error"
    status = 500
    infra = True


class StepTimeout(InfraError):
    kind = "timeout"
    status = 504


class InstanceLost(InfraError):
    kind = "instance_lost"
    status = 410


class HostTimeout(InfraError):
    kind = "host_timeout"
    status = 504


class EnvironmentUnavailable(InfraError):
    kind = "environment_unavailable"
    status = 503


class CapacityExceeded(InfraError):
    kind = "capacity_exceeded"
    status = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SnapshotLimit(CapacityExceeded):
    kind = "snapshot_limit"
    status = 429


class Busy(CapacityExceeded):
    kind = "busy"
    status = 503


class HostsUnavailable(CapacityExceeded):
    kind = "hosts_unavailable"
    status = 503


class EnvironmentFailure(InfraError):
    kind = "environment_failure"
    status = 500


class InternalError(InfraError):
    kind = "internal_error"
    status = 500


def _by_kind(root: type[TrainboxError]) -> dict[str, type[TrainboxError]]:
    """Every class of the tree by its wire kind; where several share a kind, the one nearest the root."""
    found: dict[str, type[TrainboxError]] = {}
    level = [root]
    while level:
        for cls in level:
            found.setdefault(cls.kind, cls)
        level = [sub for cls in level for sub in cls.__subclasses__()]
    return found


BY_KIND = _by_kind(TrainboxError)


def from_wire(error: dict[str, object], default: type[TrainboxError] = EnvironmentFailure) -> TrainboxError:
    """The exception a worker or host reported as ``{"kind", "message", "retry_after"?}``; an unknown kind
    (a newer peer) is ``default``."""
    cls = BY_KIND.get(str(error.get("kind", "")), default)
    message = str(error.get("message") or "error")
    if issubclass(cls, CapacityExceeded):
        retry_after = error.get("retry_after", 1.0)
        return cls(message, float(retry_after) if isinstance(retry_after, int | float) else 1.0)
    return cls(message)
