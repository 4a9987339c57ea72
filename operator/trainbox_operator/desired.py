"""Pure: a TrainingSandbox's spec → the children it owns (RayCluster, front Deployment, Service).

Every child carries an ownerReference to the sandbox (garbage collection cascades deletion) and the
``trainbox.dev/sandbox`` label. Worker groups are pinned to their architecture twice: Kubernetes node
selection (``kubernetes.io/arch``) places the pods, and the Ray node label ``trainbox.dev/arch`` lets the
service place an instance on a chosen architecture through Ray's label scheduling.
"""

from __future__ import annotations

import json
from typing import Any

from trainbox_operator import scaling
from trainbox_operator.errors import InvalidSpec

RAY_VERSION = "2.60.0"
ARCH_LABEL = "trainbox.dev/arch"
SANDBOX_LABEL = "trainbox.dev/sandbox"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY = {"app.kubernetes.io/managed-by": "trainbox-operator", "app.kubernetes.io/name": "trainbox"}


def names(sandbox: str) -> dict[str, str]:
    return {"raycluster": f"{sandbox}-ray", "front": f"{sandbox}-front", "service": sandbox}


def group_name(arch: str) -> str:
    return f"workers-{arch}"


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(body: dict[str, Any], name: str, component: str) -> dict[str, Any]:
    sandbox = body["metadata"]["name"]
    return {
        "name": name,
        "namespace": body["metadata"]["namespace"],
        "labels": {**MANAGED_BY, SANDBOX_LABEL: sandbox, COMPONENT_LABEL: component},
        "ownerReferences": [owner_reference(body)],
    }


def validate(spec: dict[str, Any]) -> None:
    """What the schema cannot say. Raises InvalidSpec with the fix in the message."""
    archs = [g["arch"] for g in spec.get("workerGroups", [])]
    extra = sorted(set(spec.get("imagesByArch") or {}) - set(archs))
    if extra:
        raise InvalidSpec(f"imagesByArch names {extra} but workerGroups has no such architecture (has {archs})")
    service = spec.get("service") or {}
    if service.get("replicas", 1) == 0 and not service.get("endpointOverride"):
        raise InvalidSpec("service.replicas is 0 and no service.endpointOverride is set: nothing would serve the API")


def endpoint(body: dict[str, Any]) -> str:
    service = body["spec"].get("service") or {}
    if service.get("endpointOverride"):
        return str(service["endpointOverride"]).rstrip("/")
    meta = body["metadata"]
    return f"http://{names(meta['name'])['service']}.{meta['namespace']}.svc.cluster.local:{service.get('port', 8080)}"


# Ray pods host the sandboxed AppWorld workers (server/trainbox_server/runtime/sandbox.py): bubblewrap, run
# as the image's unprivileged user, creates a user namespace for each worker. The container needs no
# capability and no privilege escalation for that; it needs a seccomp profile that allows user namespaces
# (the runtime's default profile refuses them, so it is set Unconfined here). /proc stays masked: the
# sandbox then runs without a /proc of its own (never the container's). Where a cluster forbids this, the
# service refuses AppWorld with `environment_unavailable` naming bubblewrap's error.
SANDBOX_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "Unconfined"},
}


def _container(
    name: str, image: str, pull: str, resources: dict[str, Any] | None, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": pull}
    if resources:
        container["resources"] = resources
    if security:
        container["securityContext"] = dict(security)
    return container


# The families whose data a sandbox mounts into its worker pods, read-only: the spec field naming the volume,
# where the pods see it, and the family's variable the hosts set to it (the server's family registry declares the
# same; tests/test_registry.py checks that they agree).
DATA_VOLUMES = {
    "appworld": ("appworldData", "/data/appworld", "APPWORLD_ROOT"),
    "webshop": ("webshopData", "/data/webshop", "WEBSHOP_ROOT"),
}
GCS_PORT = 6379
RAYLET_PORT = 6380  # fixed, so a probe can check the raylet answers
# Ray keeps few objects here (instances live in worker processes): a small store fits a pod's /dev/shm.
OBJECT_STORE_BYTES = "100000000"


# Every Ray node names its pod's address itself (`ray start` runs under bash, which expands the variable):
# otherwise Ray looks for it by "connecting" to a public DNS server and then by resolving the host name.
POD_IP_ENV = {"name": "TRAINBOX_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
# Fixed agent ports: with them the raylet does not wait (a fixed ~20 s) for the agents' port files, which an
# emulated node (arm64 under qemu-user) misses; and Ray's wait for a new raylet to register is long enough
# for one (the server image makes it RAY_raylet_start_wait_time_s).
RAY_NODE_PARAMS = {
    "node-ip-address": "$TRAINBOX_POD_IP",
    "object-store-memory": OBJECT_STORE_BYTES,
    "dashboard-agent-grpc-port": "52366",
    "runtime-env-agent-port": "52367",
}
RAY_ENV = [
    POD_IP_ENV,
    {"name": "RAY_raylet_start_wait_time_s", "value": "600"},
    {"name": "RAY_agent_register_timeout_ms", "value": "600000"},
]
# No Service environment variables in our pods: a Service named like the sandbox ("trainbox") would inject
# TRAINBOX_PORT=tcp://... into the front, which reads TRAINBOX_* as its configuration.
POD_DEFAULTS: dict[str, Any] = {"enableServiceLinks": False}
# A Ray pod's `ray start --block` drains on SIGTERM and takes its time to exit (measured on real pods: still
# there 5 s later; KubeRay #503: up to the grace period). Nothing in it needs the time — a worker's instances
# end with it either way (scale-downs pick empty pods), and the head is the cluster — so with a short grace
# scale-downs, restarts and image roll-outs free the pod and its node's resources instead of waiting up to 30 s.
RAY_POD_GRACE_SECONDS = 5
RAY_POD_DEFAULTS: dict[str, Any] = {**POD_DEFAULTS, "terminationGracePeriodSeconds": RAY_POD_GRACE_SECONDS}


def _tcp_probes(port: int) -> dict[str, Any]:
    """Readiness and liveness as TCP checks on a Ray port. Given explicitly, so KubeRay injects none of its
    own (those poll the dashboard agent with wget, which the image has neither of)."""
    return {
        # Until Ray's port first answers, only the startup probe runs: up to 10 minutes (an emulated node —
        # arm64 under qemu-user — takes minutes to start Ray), then liveness takes over.
        "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 60},
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {
            "tcpSocket": {"port": port},
            "periodSeconds": 20,
            "timeoutSeconds": 10,
            "failureThreshold": 6,
        },
    }


def _data_volumes(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(volumes, mounts, families' env) giving worker pods the families' data that the spec names
    (spec.appworldData, spec.webshopData)."""
    volumes, mounts, families = [], [], {}
    for family, (field, path, variable) in DATA_VOLUMES.items():
        data = spec.get(field) or {}
        if data.get("claimName"):
            source: dict[str, Any] = {"persistentVolumeClaim": {"claimName": data["claimName"], "readOnly": True}}
        elif data.get("hostPath"):
            source = {"hostPath": {"path": data["hostPath"], "type": "Directory"}}
        else:
            continue
        volumes.append({"name": f"{family}-data", **source})
        mounts.append({"name": f"{family}-data", "mountPath": path, "readOnly": True})
        families[family] = {"env": {variable: path}}
    return volumes, mounts, families


def control_arch(spec: dict[str, Any]) -> str:
    """Where the head and the front run: amd64 when a worker group is amd64 (native speed on mixed clusters,
    and `spec.image` is known to exist for it), else the first group's architecture."""
    groups = spec["workerGroups"]
    return "amd64" if any(g["arch"] == "amd64" for g in groups) else str(groups[0]["arch"])


def raycluster(body: dict[str, Any], workers_to_delete: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """``workers_to_delete``: per architecture, the pods a scale-down removes (KubeRay's scaleStrategy)."""
    spec = body["spec"]
    pull = spec.get("imagePullPolicy", "IfNotPresent")
    groups = spec["workerGroups"]
    head_arch = control_arch(spec)
    head = _container("ray-head", spec["image"], pull, (spec.get("head") or {}).get("resources"))
    head.update(_tcp_probes(GCS_PORT), env=list(RAY_ENV))
    head_pod = {"spec": {**RAY_POD_DEFAULTS, "nodeSelector": {"kubernetes.io/arch": head_arch}, "containers": [head]}}
    volumes, mounts, _ = _data_volumes(spec)
    workers = []
    for g in groups:
        image = (spec.get("imagesByArch") or {}).get(g["arch"], spec["image"])
        worker = _container("ray-worker", image, pull, g.get("resources"), SANDBOX_SECURITY)
        worker.update(_tcp_probes(RAYLET_PORT), env=list(RAY_ENV))
        if mounts:
            worker["volumeMounts"] = mounts
        pod_spec: dict[str, Any] = {
            **RAY_POD_DEFAULTS,
            "nodeSelector": {"kubernetes.io/arch": g["arch"]},
            "containers": [worker],
        }
        if volumes:
            pod_spec["volumes"] = volumes
        group: dict[str, Any] = {
            "groupName": group_name(g["arch"]),
            "replicas": scaling.replicas(spec, body.get("status") or {}, g["arch"]),
            "minReplicas": g.get("minReplicas", 0),
            "maxReplicas": g.get("maxReplicas", 10),
            "labels": {ARCH_LABEL: g["arch"]},  # KubeRay passes these to `ray start --labels`
            "rayStartParams": {**RAY_NODE_PARAMS, "node-manager-port": str(RAYLET_PORT)},
            "template": {"metadata": {"labels": {ARCH_LABEL: g["arch"]}}, "spec": pod_spec},
        }
        if (workers_to_delete or {}).get(g["arch"]):
            group["scaleStrategy"] = {"workersToDelete": workers_to_delete[g["arch"]]}  # type: ignore[index]
        workers.append(group)
    head_params = {**RAY_NODE_PARAMS, "num-cpus": "0", "include-dashboard": "false"}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _metadata(body, names(body["metadata"]["name"])["raycluster"], "ray"),
        "spec": {
            "rayVersion": RAY_VERSION,
            # The head hosts no instances (num-cpus 0, no arch label): hosts go to the labelled workers.
            "headGroupSpec": {"rayStartParams": head_params, "template": head_pod},
            "workerGroupSpecs": workers,
        },
    }


# spec.instanceDefaults: the CRD's defaults (the apiserver fills them in; these stand in where it did not) and
# the front's variable each sets. tests/test_settings_pure.py checks them against the CRD, the chart and the
# service's own defaults (trainbox_server.service.config).
INSTANCE_DEFAULTS = {"idleTTLSeconds": 300, "maxLifetimeSeconds": 3600, "maxLiveInstances": 10000}
INSTANCE_ENV = {
    "idleTTLSeconds": "TRAINBOX_IDLE_TTL",
    "maxLifetimeSeconds": "TRAINBOX_MAX_LIFETIME",
    "maxLiveInstances": "TRAINBOX_MAX_LIVE",
}


def _front_env(body: dict[str, Any]) -> list[dict[str, Any]]:
    spec, meta = body["spec"], body["metadata"]
    defaults = spec.get("instanceDefaults") or {}
    ray_head = f"{names(meta['name'])['raycluster']}-head-svc.{meta['namespace']}.svc.cluster.local:{GCS_PORT}"
    env: list[dict[str, Any]] = [
        {"name": "TRAINBOX_RAY_ADDRESS", "value": ray_head},
        # The front is a Ray node of its own (see trainbox_server.hosts.ray_hosts.join_ray_node).
        {"name": "TRAINBOX_RAY_JOIN_AS_NODE", "value": "true"},
        {"name": "TRAINBOX_ENVIRONMENTS", "value": ",".join(spec.get("environments") or ["bfcl"])},
        {"name": "TRAINBOX_RAY_NAMESPACE", "value": f"trainbox-{meta['name']}"},
        {"name": "TRAINBOX_NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        *({"name": var, "value": str(defaults.get(key, INSTANCE_DEFAULTS[key]))} for key, var in INSTANCE_ENV.items()),
    ]
    families = _data_volumes(spec)[2]
    if families:  # the hosts start those families' workers with the data where the pods mount it
        env.append({"name": "TRAINBOX_FAMILIES", "value": json.dumps(families)})
    auth = spec.get("authSecretRef")
    if auth:
        secret = {"name": auth["name"], "key": auth.get("key", "token")}
        env.append({"name": "TRAINBOX_TOKEN", "valueFrom": {"secretKeyRef": secret}})
    return env


def front_deployment(body: dict[str, Any]) -> dict[str, Any]:
    spec, sandbox = body["spec"], body["metadata"]["name"]
    service = spec.get("service") or {}
    port = service.get("port", 8080)
    selector = {SANDBOX_LABEL: sandbox, COMPONENT_LABEL: "front"}
    container = _container("front", spec["image"], spec.get("imagePullPolicy", "IfNotPresent"), None)
    container.update(
        {
            # In a pod the front must listen on the pod's address; outside Kubernetes it binds 127.0.0.1.
            "args": ["python", "-m", "trainbox_server", "serve", "--host", "0.0.0.0", "--port", str(port)],
            "env": _front_env(body),
            "ports": [{"name": "http", "containerPort": port}],
            # Generous timeouts: a busy small node answers late, and a front killed for it loses every
            # request in flight (its instances live on in the workers, but the clients see errors).
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 5},
            "livenessProbe": {
                "httpGet": {"path": "/healthz", "port": "http"},
                "periodSeconds": 20,
                "timeoutSeconds": 10,
                "failureThreshold": 6,
            },
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(body, names(sandbox)["front"], "front"),
        "spec": {
            "replicas": service.get("replicas", 1),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**MANAGED_BY, **selector}},
                "spec": {
                    **POD_DEFAULTS,
                    "nodeSelector": {"kubernetes.io/arch": control_arch(spec)},
                    "containers": [container],
                },
            },
        },
    }


def front_service(body: dict[str, Any]) -> dict[str, Any]:
    sandbox = body["metadata"]["name"]
    service = body["spec"].get("service") or {}
    port = service.get("port", 8080)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(body, names(sandbox)["service"], "front"),
        "spec": {
            "type": service.get("type", "ClusterIP"),
            "selector": {SANDBOX_LABEL: sandbox, COMPONENT_LABEL: "front"},
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def children(body: dict[str, Any], workers_to_delete: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Everything a sandbox owns, in apply order."""
    validate(body["spec"])
    return [raycluster(body, workers_to_delete), front_deployment(body), front_service(body)]


def stale_ray_pods(spec: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    """Ray pods (head or worker) running another image than the spec names now. KubeRay does not replace
    pods when their template changes, so the operator deletes these and KubeRay re-creates them from the
    new template (an image change rolls the Ray cluster; the front's Deployment rolls itself)."""
    stale = []
    by_arch = spec.get("imagesByArch") or {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        labels = meta.get("labels") or {}
        group = labels.get("ray.io/group", "")
        arch = group.removeprefix("workers-") if group.startswith("workers-") else None
        want = by_arch.get(arch, spec["image"]) if arch else spec["image"]
        containers = (pod.get("spec") or {}).get("containers") or []
        if containers and containers[0].get("image") != want:
            stale.append(str(meta.get("name")))
    return stale
