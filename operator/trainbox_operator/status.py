"""Pure: a TrainingSandbox's observed world (its RayCluster, worker pods, front) → its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainbox_operator import conditions as c
from trainbox_operator import scaling
from trainbox_operator.desired import group_name


@dataclass
class Observed:
    raycluster: dict[str, Any] | None = None
    deployment: dict[str, Any] | None = None
    worker_pods: list[dict[str, Any]] = field(default_factory=list)
    front_answers: bool | None = None  # GET <endpoint>/readyz; None when not checked
    hosts: list[dict[str, Any]] | None = None  # GET <endpoint>/v1/hosts (alive ones); None when not asked
    ray_pods: list[dict[str, Any]] = field(default_factory=list)  # head and workers

    @property
    def live_instances(self) -> int | None:
        return None if self.hosts is None else sum(h.get("live", 0) for h in self.hosts)

    def live_by_arch(self, arch: str) -> int | None:
        return None if self.hosts is None else sum(h.get("live", 0) for h in self.hosts if h.get("arch") == arch)

    def live_by_ip(self) -> dict[str, int] | None:
        """Live instances per worker pod IP; None when the service was not asked or did not answer."""
        if self.hosts is None:
            return None
        return {h["node_ip"]: h.get("live", 0) for h in self.hosts if h.get("node_ip")}


def pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(cond.get("type") == "Ready" and cond.get("status") == "True" for cond in status.get("conditions") or [])


def ready_workers(spec: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, int]:
    counts = {g["arch"]: 0 for g in spec["workerGroups"]}
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        arch = next((a for a in counts if labels.get("ray.io/group") == group_name(a)), None)
        if arch is not None and pod_ready(pod):
            counts[arch] += 1
    return counts


def raycluster_condition(raycluster: dict[str, Any] | None) -> dict[str, Any]:
    if raycluster is None:
        return c.condition(
            c.RAYCLUSTER_READY, False, c.RayClusterReadyReason.MISSING, "the RayCluster does not exist yet"
        )
    status = raycluster.get("status") or {}
    provisioned = c.is_true(status.get("conditions"), "RayClusterProvisioned")
    head_ready = c.is_true(status.get("conditions"), "HeadPodReady")
    if status.get("state") == "ready" or (provisioned and head_ready):
        return c.condition(c.RAYCLUSTER_READY, True, c.RayClusterReadyReason.READY, "KubeRay reports the cluster ready")
    state = status.get("state") or "unknown"
    return c.condition(c.RAYCLUSTER_READY, False, c.RayClusterReadyReason.PENDING, f"KubeRay state: {state}")


def workers_condition(spec: dict[str, Any], ready: dict[str, int]) -> dict[str, Any]:
    missing = [
        f"{g['arch']} {ready[g['arch']]}/{g.get('replicas', 1)}"
        for g in spec["workerGroups"]
        if ready[g["arch"]] < g.get("replicas", 1)
    ]
    if missing:
        return c.condition(c.WORKERS_READY, False, c.WorkersReadyReason.PENDING, "ready workers: " + ", ".join(missing))
    summary = ", ".join(f"{arch} {n}" for arch, n in ready.items())
    return c.condition(c.WORKERS_READY, True, c.WorkersReadyReason.READY, f"ready workers: {summary}")


def front_condition(spec: dict[str, Any], observed: Observed) -> dict[str, Any]:
    """Ready when the front's replicas are (unless an endpointOverride replaces them) and, where the
    operator could ask (`front_answers` not None), its endpoint answers /readyz."""
    override = (spec.get("service") or {}).get("endpointOverride")
    want = (spec.get("service") or {}).get("replicas", 1)
    have = ((observed.deployment or {}).get("status") or {}).get("readyReplicas") or 0
    if not override and have < want:
        return c.condition(c.FRONT_READY, False, c.FrontReadyReason.PENDING, f"{have}/{want} front replicas ready")
    if observed.front_answers:
        return c.condition(c.FRONT_READY, True, c.FrontReadyReason.READY, "the endpoint answers /readyz")
    if override or observed.front_answers is not None:
        return c.condition(c.FRONT_READY, False, c.FrontReadyReason.UNREACHABLE, "the endpoint does not answer /readyz")
    return c.condition(c.FRONT_READY, True, c.FrontReadyReason.READY, f"{have}/{want} front replicas ready")


def sandbox_status(
    body: dict[str, Any], observed: Observed, endpoint: str, now: str, clock: float = 0.0
) -> dict[str, Any]:
    """``now``: the ISO time for conditions; ``clock``: epoch seconds for the autoscaler's delays."""
    spec, meta = body["spec"], body["metadata"]
    workers = ready_workers(spec, observed.worker_pods)
    parts = [
        raycluster_condition(observed.raycluster),
        workers_condition(spec, workers),
        front_condition(spec, observed),
    ]
    blocking = next((p for p in parts if p["status"] != "True"), None)
    ready = (
        c.condition(c.READY, True, c.SandboxReady.ALL_READY, f"serving at {endpoint}")
        if blocking is None
        else c.condition(c.READY, False, blocking["reason"], blocking["message"])
    )
    current = (body.get("status") or {}).get("conditions")
    status: dict[str, Any] = {
        "observedGeneration": meta.get("generation", 0),
        "endpoint": endpoint,
        "readyWorkers": workers,
        "conditions": c.merge(current, [ready, *parts], meta.get("generation", 0), now),
    }
    if observed.live_instances is not None:
        status["liveInstances"] = observed.live_instances
    policy = scaling.Policy.of(spec)
    if policy.enabled:
        states = (body.get("status") or {}).get("autoscaling") or {}
        status["autoscaling"] = {
            g["arch"]: scaling.decide(
                g,
                observed.live_by_arch(g["arch"]),
                states.get(g["arch"]),
                clock,
                policy,
                scaling.running(observed.raycluster, g["arch"]),
            )
            for g in spec["workerGroups"]
        }
    return status


def invalid_status(body: dict[str, Any], message: str, now: str) -> dict[str, Any]:
    meta = body["metadata"]
    current = (body.get("status") or {}).get("conditions")
    ready = c.condition(c.READY, False, c.SandboxReady.INVALID_SPEC, message)
    return {
        "observedGeneration": meta.get("generation", 0),
        "conditions": c.merge(current, [ready], meta.get("generation", 0), now),
    }
