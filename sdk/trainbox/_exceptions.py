"""Every exception the SDK raises: one root, a precise subclass per thing that can go wrong.

    TrainboxError                       root; ``.infra`` tells a trainer to drop the rollout
    ├── RequestError                    the service refused the request: fix the call (4xx, infra=False)
    │   ├── BadRequest                  400/422  malformed body, bad parameter
    │   ├── Unauthorized                401      missing or wrong bearer token
    │   ├── UnknownEnvironment          404      env type not served here
    │   ├── UnknownSplit                404
    │   ├── UnknownTask                 404
    │   ├── UnknownInstance             404      never existed, released, or expired
    │   ├── UnknownSnapshot             404      never taken, released, or past its TTL
    │   ├── PayloadTooLarge             413      the request body is over the service's limit
    │   ├── NotForkable                 409      the instance cannot be forked (e.g. too long to replay)
    │   ├── DuplicateInstance           409      an instance id already in use
    │   ├── EpisodeOver                 409      step after the episode terminated
    │   ├── InvalidAction               422      no code / unparsable call / wrong arguments
    │   ├── UnsupportedTask             422      exists but cannot run offline
    │   └── UnavailableArchitecture     422      no host of the requested CPU architecture (arch=)
    ├── InfraError                      not the model's fault: drop the rollout (infra=True)
    │   ├── StepTimeout                 504      the service gave up on the call; its worker was replaced
    │   ├── HostTimeout                 504      the instance's host did not answer within the call's deadline
    │   ├── InstanceLost                410      the instance's worker died; the instance is gone
    │   ├── EnvironmentUnavailable      503      family not installed or its data missing
    │   ├── CapacityExceeded            429      admission control; ``.retry_after`` seconds
    │   │   ├── SnapshotLimit           429      the host holds its maximum of snapshots
    │   │   ├── HostsUnavailable        503      no host serves right now (they are being re-created)
    │   │   └── Busy                    503      too many creations in flight right now
    │   ├── EnvironmentFailure          500      the environment failed unexpectedly
    │   └── TransportError              no usable HTTP answer
    │       ├── ConnectError            could not reach the service (nothing was sent)
    │       ├── RequestTimeout          no answer within the SDK's timeout (the call may have run)
    │       └── ProtocolError           the answer was not the trainbox API (proxy page, bad JSON)
    └── ServiceStartError               the embedded local service could not be started

Errors the service answered carry ``status_code``, ``kind`` (the wire name), ``message``, ``infra`` and the
``response``; transport errors carry the ``request``; every error counts the ``attempts`` made. An error kind
this SDK does not know yet maps to ``InfraError`` when the service flags it ``infra`` or answered 5xx/429
(a failing service is never the model's fault), else to ``RequestError``: newer services keep working
with older SDKs.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class TrainboxError(Exception):
    """Root of every error the SDK raises."""

    kind = "error"
    infra = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        kind: str | None = None,
        infra: bool | None = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        if kind is not None:
            self.kind = kind
        if infra is not None:
            self.infra = infra
        self.response = response
        self.attempts = 1  # how many times the call was sent before this error was raised
        self.request = request if request is not None or response is None else _request_of(response)

    def __str__(self) -> str:
        prefix = f"[{self.status_code} {self.kind}] " if self.status_code is not None else f"[{self.kind}] "
        return prefix + self.message


class RequestError(TrainboxError):
    kind = "bad_request"


class BadRequest(RequestError):
    kind = "bad_request"


class Unauthorized(RequestError):
    kind = "unauthorized"


class UnknownEnvironment(RequestError):
    kind = "unknown_environment"


class UnknownSplit(RequestError):
    kind = "unknown_split"


class UnknownTask(RequestError):
    kind = "unknown_task"


class UnknownInstance(RequestError):
    kind = "unknown_instance"


class UnknownSnapshot(RequestError):
    kind = "unknown_snapshot"


class NotForkable(RequestError):
    kind = "not_forkable"


class PayloadTooLarge(RequestError):
    kind = "payload_too_large"


class DuplicateInstance(RequestError):
    kind = "duplicate_instance"


class EpisodeOver(RequestError):
    kind = "episode_over"


class InvalidAction(RequestError):
    kind = "invalid_action"


class UnsupportedTask(RequestError):
    kind = "unsupported_task"


class UnavailableArchitecture(RequestError):
    kind = "unavailable_architecture"


class InfraError(TrainboxError):
    kind = "infra_error"
    infra = True


class StepTimeout(InfraError):
    kind = "timeout"


class InstanceLost(InfraError):
    kind = "instance_lost"


class EnvironmentUnavailable(InfraError):
    kind = "environment_unavailable"


class CapacityExceeded(InfraError):
    kind = "capacity_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class SnapshotLimit(CapacityExceeded):
    kind = "snapshot_limit"


class HostsUnavailable(CapacityExceeded):
    kind = "hosts_unavailable"


class HostTimeout(InfraError):
    kind = "host_timeout"


class Busy(CapacityExceeded):
    kind = "busy"


class EnvironmentFailure(InfraError):
    kind = "environment_failure"


class TransportError(InfraError):
    kind = "transport_error"


class ConnectError(TransportError):
    kind = "connect_error"


class RequestTimeout(TransportError):
    kind = "request_timeout"


class ProtocolError(TransportError):
    kind = "protocol_error"


class ServiceStartError(TrainboxError):
    kind = "service_start_error"


# Derived from the classes above, so a new one needs no other edit here: every exception (exported), and
# the service's kinds each maps (not the roots: an unknown kind falls back to them; not the SDK's own).
__all__ = sorted(n for n, v in list(globals().items()) if isinstance(v, type) and issubclass(v, TrainboxError))
_SDK_OWN = (TransportError, ServiceStartError)
_BY_KIND: dict[str, type[TrainboxError]] = {
    cls.kind: cls
    for cls in (globals()[name] for name in __all__)
    if cls not in (TrainboxError, RequestError, InfraError) and not issubclass(cls, _SDK_OWN)
}


def _request_of(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:  # a Response built by hand has no request
        return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (the delta-seconds form; dates are not used by trainbox)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(response: httpx.Response) -> TrainboxError:
    """Map an error answer (status >= 400) to its typed exception; never raises itself."""
    status = response.status_code
    body = _error_body(response)
    if body is None:
        what = "a non-JSON" if status < 500 else "an unexpected"
        return ProtocolError(
            f"the service answered {status} with {what} body, not a trainbox error: {response.text[:200]!r}",
            status_code=status,
            kind="protocol_error",
            response=response,
        )
    kind = str(body.get("kind") or ("bad_request" if status < 500 else "infra_error"))
    message = str(body.get("message") or f"HTTP {status}")
    cls = _BY_KIND.get(kind)
    if cls is None:  # a kind newer than this SDK, or the service's catch-all for its own bugs
        cls = InfraError if body.get("infra") is True or status >= 500 or status == 429 else RequestError
    infra = issubclass(cls, InfraError)
    kwargs: dict[str, Any] = {"status_code": status, "kind": kind, "infra": infra, "response": response}
    if issubclass(cls, CapacityExceeded):
        return cls(message, retry_after=retry_after_seconds(response), **kwargs)
    return cls(message, **kwargs)


def _error_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        return error
    # FastAPI's own validation answers ({"detail": ...}) if a route ever lets one through.
    if "detail" in payload:
        return {"kind": "bad_request", "message": json.dumps(payload["detail"])[:2000], "infra": False}
    return None


def error_from_transport(exc: httpx.TransportError, url: str) -> TransportError:
    """Map an httpx transport failure to ours; the message names the endpoint and what to check."""
    request = _transport_request(exc)
    if isinstance(exc, httpx.PoolTimeout):  # never sent: every connection of the client stayed busy
        return ConnectError(
            f"no free connection to {url} within the SDK's timeout (too many concurrent calls on one client)",
            request=request,
        )
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return ConnectError(
            f"cannot connect to the trainbox service at {url}: {exc or type(exc).__name__} "
            "(is it running? check base_url / TRAINBOX_URL)",
            request=request,
        )
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeout(
            f"no answer from {url} within the SDK's timeout ({type(exc).__name__}); "
            "raise timeout= if the environment needs longer",
            request=request,
        )
    return ProtocolError(f"the connection to {url} failed: {type(exc).__name__}: {exc}", request=request)


def _transport_request(exc: httpx.TransportError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:
        return None
