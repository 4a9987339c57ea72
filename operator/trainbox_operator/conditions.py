"""Status conditions (KubeRay / Kubernetes style): every type and reason is a documented constant.

TrainingSandbox conditions
  Ready            True when every part below is True.  Reasons: ``AllReady``, ``InvalidSpec``, or the
                   reason of the first part that is not ready.
  RayClusterReady  the KubeRay RayCluster is ready.     Reasons: ``RayClusterReady``, ``RayClusterPending``,
                   ``RayClusterMissing``.
  WorkersReady     every worker group has its replicas Ready on nodes of its architecture.
                   Reasons: ``WorkersReady``, ``WorkersPending``.
  FrontReady       the HTTP front answers.              Reasons: ``FrontReady``, ``FrontPending``,
                   ``EndpointUnreachable``.

TrainingInstance conditions
  Ready            the instance is live in its sandbox. Reasons: ``Created``, ``SandboxNotReady``,
                   ``Creating``, ``Released``, ``Expired``, ``Failed``.
  Expired          its TTL passed and it was released.  Reason: ``TTLExpired``.
  Released         it was released (expiry, deletion, or lost by the service). Reasons: ``TTLExpired``,
                   ``Deleted``, ``ReleasedByService``.
  Failed           it could not be created (bad task, env missing) — not retried. Reasons: ``CreateFailed``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

READY = "Ready"
RAYCLUSTER_READY = "RayClusterReady"
WORKERS_READY = "WorkersReady"
FRONT_READY = "FrontReady"
EXPIRED = "Expired"
RELEASED = "Released"
FAILED = "Failed"


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


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
