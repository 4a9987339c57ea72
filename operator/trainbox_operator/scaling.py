"""Pure: how many workers each architecture gets when a sandbox autoscales, and which pod goes first.

The autoscaler is the operator's, not KubeRay's in-tree one: Ray's autoscaler scales on Ray resource
demand (tasks and actors waiting for CPUs), and a trainbox host is one zero-CPU actor per node that holds
thousands of instances — Ray sees no demand however busy it is. The load that matters is the service's
live instances per architecture (``GET /v1/hosts``), so the operator scales on that:

* ``want = ceil(live / targetInstancesPerWorker)``, within ``[minReplicas, maxReplicas]`` of the group;
* up at once; down only after the load has stayed low for ``scaleDownDelaySeconds`` (no flapping between
  bursts of rollouts), one step at a time to the wanted count;
* on the way down the pod whose host holds the fewest live instances is removed (KubeRay's
  ``scaleStrategy.workersToDelete``); instances it held answer ``instance_lost`` (410), never a silent loss.

State kept in ``status.autoscaling[arch]``: ``{"replicas", "lowSince"}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_TARGET = 1000
DEFAULT_DOWN_DELAY = 60.0


@dataclass(frozen=True)
class Policy:
    enabled: bool = False
    target_per_worker: int = DEFAULT_TARGET
    down_delay: float = DEFAULT_DOWN_DELAY

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Policy:
        auto = spec.get("autoscaling") or {}
        return cls(
            enabled=bool(auto.get("enabled", False)),
            target_per_worker=int(auto.get("targetInstancesPerWorker", DEFAULT_TARGET)),
            down_delay=float(auto.get("scaleDownDelaySeconds", DEFAULT_DOWN_DELAY)),
        )


def wanted(live: int, group: dict[str, Any], policy: Policy) -> int:
    """Workers the load asks for, within the group's bounds."""
    low, high = group.get("minReplicas", 0), group.get("maxReplicas", 10)
    return max(low, min(high, math.ceil(live / max(policy.target_per_worker, 1))))


def decide(
    group: dict[str, Any],
    live: int | None,
    state: dict[str, Any] | None,
    now: float,
    policy: Policy,
    running: int | None = None,
) -> dict[str, Any]:
    """The group's next ``{"replicas", "lowSince"}``. ``live`` None: the service could not be asked, so the
    count stays what the RayCluster runs (``running``) — an unknown load never removes a pod. ``state`` may lag
    the RayCluster by one round (the status patch lands after the children are applied)."""
    low, high = group.get("minReplicas", 0), group.get("maxReplicas", 10)
    fallback = running if running is not None else group.get("replicas", 1)
    current = max(low, min(high, int((state or {}).get("replicas", fallback))))
    if live is None:
        kept = current if running is None else max(low, min(high, running))
        return {"replicas": kept, "lowSince": (state or {}).get("lowSince")}
    want = wanted(live, group, policy)
    if want >= current:
        return {"replicas": want, "lowSince": None}
    since = (state or {}).get("lowSince")
    if since is None:
        return {"replicas": current, "lowSince": now}
    if now - float(since) >= policy.down_delay:
        return {"replicas": current - 1, "lowSince": now}  # one step, then wait again
    return {"replicas": current, "lowSince": since}


def running(raycluster: dict[str, Any] | None, arch: str) -> int | None:
    """The replicas the RayCluster asks for the group of ``arch`` (None: no RayCluster or no such group)."""
    for spec in ((raycluster or {}).get("spec") or {}).get("workerGroupSpecs", []):
        if spec.get("groupName") == f"workers-{arch}":
            return int(spec.get("replicas", 0))
    return None


def replicas(spec: dict[str, Any], status: dict[str, Any], arch: str) -> int:
    """The replica count the RayCluster gets for a group: the autoscaler's when it is on, else the spec's."""
    group = next(g for g in spec["workerGroups"] if g["arch"] == arch)
    if not Policy.of(spec).enabled:
        return int(group.get("replicas", 1))
    state = (status.get("autoscaling") or {}).get(arch) or {}
    return int(state.get("replicas", group.get("replicas", 1)))


def first_to_go(pods: list[dict[str, Any]], live_by_ip: dict[str, int], count: int) -> list[str]:
    """The names of the ``count`` worker pods to remove: those holding the fewest live instances."""
    ranked = sorted(
        pods, key=lambda p: (live_by_ip.get((p.get("status") or {}).get("podIP", ""), 0), p["metadata"]["name"])
    )
    return [p["metadata"]["name"] for p in ranked[:count]]


def deletions(
    spec: dict[str, Any], status: dict[str, Any], raycluster: dict[str, Any] | None,
    pods: list[dict[str, Any]], live_by_ip: dict[str, int] | None,
) -> dict[str, list[str]]:  # fmt: skip
    """Per architecture, the worker pods to remove now: as many as the autoscaler's count is below the
    RayCluster's current one, least loaded first (empty when nothing shrinks, and when the load is unknown —
    ``live_by_ip`` None: a pod whose instances cannot be counted is never removed)."""
    if not Policy.of(spec).enabled or raycluster is None or live_by_ip is None:
        return {}
    current = {g["groupName"]: g.get("replicas", 0) for g in (raycluster.get("spec") or {}).get("workerGroupSpecs", [])}
    out: dict[str, list[str]] = {}
    for group in spec["workerGroups"]:
        name = f"workers-{group['arch']}"
        fewer = current.get(name, 0) - replicas(spec, status, group["arch"])
        if fewer > 0:
            mine = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get("ray.io/group") == name]
            out[group["arch"]] = first_to_go(mine, live_by_ip, fewer)
    return out
