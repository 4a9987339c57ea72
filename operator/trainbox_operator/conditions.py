"""Status conditions (KubeRay / Kubernetes style): every type is a constant, every reason a member of the
enum that stands next to its condition (a test holds the operator to these, and this text to the enums).

TrainingSandbox conditions
  Ready            True when every part below is True.    ``SandboxReady``: ``AllReady``, ``InvalidSpec``;
                   otherwise the reason of the first part below that is not True.
  RayClusterReady  the KubeRay RayCluster is ready.       ``RayClusterReadyReason``: ``RayClusterReady``,
                   ``RayClusterPending``, ``RayClusterMissing``.
  WorkersReady     every worker group has its replicas Ready on nodes of its architecture.
                                                         ``WorkersReadyReason``: ``WorkersReady``, ``WorkersPending``.
  FrontReady       the HTTP front answers.                ``FrontReadyReason``: ``FrontReady``, ``FrontPending``,
                   ``EndpointUnreachable``.

TrainingInstance conditions
  Ready            the instance is live in its sandbox.   ``InstanceReady``: ``Created``; not (yet):
                   ``SandboxNotReady`` (its sandbox is missing or not Ready), ``Creating`` (a create is in
                   flight), ``ServiceError`` (the service did not answer or failed: retried), ``Expired``,
                   ``Failed``.
  Expired          its TTL passed and it was released.    ``ExpiredReason``: ``TTLExpired``.
  Released         it was released (by the operator at its TTL, or by the service on its own).
                                                         ``ReleasedReason``: ``TTLExpired``, ``ReleasedByService``.
  Failed           it could not be created (the service refused the request: unknown task, bad params,
                   no such architecture, ...) — not retried. ``FailedReason``: ``CreateFailed``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
RAYCLUSTER_READY = "RayClusterReady"
WORKERS_READY = "WorkersReady"
FRONT_READY = "FrontReady"
EXPIRED = "Expired"
RELEASED = "Released"
FAILED = "Failed"


class SandboxReady(enum.StrEnum):
    """A TrainingSandbox's ``Ready``: all parts True, or its spec cannot be reconciled (not retried until
    it changes); otherwise it carries the blocking part's reason."""

    ALL_READY = "AllReady"
    INVALID_SPEC = "InvalidSpec"


class RayClusterReadyReason(enum.StrEnum):
    READY = "RayClusterReady"
    PENDING = "RayClusterPending"  # KubeRay has not reported it ready yet
    MISSING = "RayClusterMissing"  # not created yet


class WorkersReadyReason(enum.StrEnum):
    READY = "WorkersReady"
    PENDING = "WorkersPending"  # a group has fewer Ready pods than its replicas


class FrontReadyReason(enum.StrEnum):
    READY = "FrontReady"
    PENDING = "FrontPending"  # fewer front replicas Ready than asked for
    UNREACHABLE = "EndpointUnreachable"  # the endpoint does not answer /readyz


class InstanceReady(enum.StrEnum):
    """A TrainingInstance's ``Ready``."""

    CREATED = "Created"
    SANDBOX_NOT_READY = "SandboxNotReady"
    CREATING = "Creating"  # an earlier create of the same id is still in flight
    SERVICE_ERROR = "ServiceError"  # the service failed or did not answer: retried
    EXPIRED = "Expired"
    FAILED = "Failed"


class ExpiredReason(enum.StrEnum):
    TTL_EXPIRED = "TTLExpired"


class ReleasedReason(enum.StrEnum):
    TTL_EXPIRED = "TTLExpired"  # the operator released it at its deadline
    RELEASED_BY_SERVICE = "ReleasedByService"  # the service had already released it (its own idle TTL)


class FailedReason(enum.StrEnum):
    CREATE_FAILED = "CreateFailed"


# Every reason enum with the condition type it is written on (the sandbox's and the instance's Ready share
# the type; each kind of resource has its own enum).
REASONS: dict[type[enum.StrEnum], str] = {
    SandboxReady: READY,
    RayClusterReadyReason: RAYCLUSTER_READY,
    WorkersReadyReason: WORKERS_READY,
    FrontReadyReason: FRONT_READY,
    InstanceReady: READY,
    ExpiredReason: EXPIRED,
    ReleasedReason: RELEASED,
    FailedReason: FAILED,
}


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: enum.StrEnum, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": str(reason), "message": message}


def merge(
    current: list[dict[str, Any]] | None, updates: list[dict[str, Any]], generation: int, now: str
) -> list[dict[str, Any]]:
    """Set conditions by type; ``lastTransitionTime`` changes only when the status flips."""
    by_type = {c["type"]: dict(c) for c in current or []}
    for update in updates:
        previous = by_type.get(update["type"])
        changed = previous is None or previous.get("status") != update["status"]
        by_type[update["type"]] = {
            **update,
            "observedGeneration": generation,
            "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),  # type: ignore[union-attr]
        }
    return sorted(by_type.values(), key=lambda c: (c["type"] != READY, c["type"]))


def get(conditions: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == kind), None)


def is_true(conditions: list[dict[str, Any]] | None, kind: str) -> bool:
    found = get(conditions, kind)
    return bool(found and found.get("status") == "True")
