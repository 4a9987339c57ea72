"""Kopf wiring: level-triggered reconcile of TrainingSandbox and TrainingInstance.

Sandboxes: on create/update/resume and every few seconds (a timer re-reads the real state), apply the
desired children and write the status computed from what they became. Instances: a daemon per instance
(an asyncio task that sleeps between decisions) creates it through its sandbox's service once the sandbox
is Ready, copies its reward and deadline from the service now and then, wakes at its expiry, and releases
it; deleting the resource releases it first (finalizer).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

import kopf
from trainbox import TrainboxError

from trainbox_operator import GROUP, VERSION, desired, instances, kube, sandbox_api, scaling
from trainbox_operator import conditions as c
from trainbox_operator import status as st
from trainbox_operator.errors import InvalidSpec

IN_CLUSTER = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
SANDBOXES = (GROUP, VERSION, "trainingsandboxes")
INSTANCES = (GROUP, VERSION, "traininginstances")
SANDBOX_PERIOD = 3.0
RETRY_SECONDS = 2.0  # an instance waiting for its sandbox, or for the service, looks again this often
SYNC_PERIOD = 10.0  # a live instance re-reads its reward and (possibly renewed) deadline this often
CREATES_IN_FLIGHT = 32


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "trainbox.dev/release"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="trainbox.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="trainbox.dev")
    settings.posting.level = 30  # events for warnings and errors only: 1,000 instances make no event storm
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _loop_task is not None:
        _loop_task.cancel()
    await sandbox_api.close_all()


# -- sandboxes ----------------------------------------------------------------------------------------------


@kopf.index(*SANDBOXES)  # type: ignore[arg-type]  # Kopf types handlers loosely
def sandbox_index(name: str, namespace: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Instances look their sandbox up here instead of asking the API server each time."""
    return {(namespace, name): {"spec": dict(body.spec), "status": dict(body.status)}}


def _changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(old.get(k) != v for k, v in new.items())


async def _token(namespace: str, spec: dict[str, Any]) -> str | None:
    auth = spec.get("authSecretRef")
    if not auth:
        return None
    return await asyncio.to_thread(kube.secret_value, namespace, auth["name"], auth.get("key", "token"))


async def _observe(body: dict[str, Any], endpoint: str) -> st.Observed:
    meta, spec = body["metadata"], body["spec"]
    names = desired.names(meta["name"])
    namespace = meta["namespace"]
    raycluster, deployment, pods = await asyncio.gather(
        asyncio.to_thread(kube.get, "ray.io/v1", "RayCluster", namespace, names["raycluster"]),
        asyncio.to_thread(kube.get, "apps/v1", "Deployment", namespace, names["front"]),
        asyncio.to_thread(kube.pods, namespace, f"ray.io/cluster={names['raycluster']}"),
    )
    workers = [p for p in pods if (p.get("metadata") or {}).get("labels", {}).get("ray.io/node-type") == "worker"]
    observed = st.Observed(raycluster, deployment, workers)
    observed.ray_pods = pods
    # The in-cluster endpoint is a cluster DNS name: asked only from inside the cluster.
    if (spec.get("service") or {}).get("endpointOverride") or IN_CLUSTER:
        observed.front_answers = await sandbox_api.ready(endpoint)
        if observed.front_answers:
            observed.hosts = await sandbox_api.hosts(endpoint, await _token(namespace, spec))
    return observed


async def reconcile_sandbox(data: dict[str, Any], logger: Any) -> dict[str, Any] | None:
    """Apply a sandbox's children; return its new status when it changed (None: unchanged)."""
    now = c.now_iso()
    try:
        desired.validate(data["spec"])
    except InvalidSpec as exc:
        new = st.invalid_status(data, str(exc), now)
        if _changed(data["status"], new):
            logger.warning(f"invalid spec: {exc}")
            return new
        return None  # not retried: the next spec change (or loop round) re-checks
    endpoint = desired.endpoint(data)
    observed = await _observe(data, endpoint)
    # Observing takes seconds (the service answers over HTTP), and the spec or the status may change meanwhile:
    # decide on the sandbox as it is now. A round that began before a spec change must not write the replica
    # counts of the old spec: KubeRay would remove a random worker pod, maybe a loaded one (seen on real pods).
    meta = data["metadata"]
    fresh = await asyncio.to_thread(kube.get, data["apiVersion"], data["kind"], meta["namespace"], meta["name"])
    if fresh is None or (fresh.get("metadata") or {}).get("generation") != meta.get("generation"):
        return None  # gone, or changed: the round for the new spec decides
    data = {**data, "status": dict(fresh.get("status") or {})}
    new = st.sandbox_status(data, observed, endpoint, now, time.time())
    # The children follow the new status (the autoscaler's worker counts), removing the least loaded pods
    # first when a group shrinks.
    scaled = {**data, "status": {**data["status"], **new}}
    remove = scaling.deletions(
        data["spec"], scaled["status"], observed.raycluster, observed.worker_pods, observed.live_by_ip()
    )
    for arch, state in (new.get("autoscaling") or {}).items():
        running = scaling.running(observed.raycluster, arch)
        if running is not None and state["replicas"] != running:
            logger.warning(
                f"autoscaler: {arch} workers {running} → {state['replicas']} "
                f"(live {observed.live_by_arch(arch)}, removing {remove.get(arch, [])})"
            )
    for child in desired.children(scaled, remove):
        await asyncio.to_thread(kube.apply, child)
    for pod in desired.stale_ray_pods(data["spec"], observed.ray_pods):
        logger.warning(f"replacing Ray pod {pod}: its image is not the spec's")
        await asyncio.to_thread(kube.delete_pod, data["metadata"]["namespace"], pod)
    return new if _changed(data["status"], new) else None


def _sandbox_data(body: kopf.Body | dict[str, Any]) -> dict[str, Any]:
    data = {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": dict(body["metadata"])}
    data.update(spec=dict(body.get("spec") or {}), status=dict(body.get("status") or {}))
    return data


@kopf.on.resume(*SANDBOXES)
@kopf.on.create(*SANDBOXES)
@kopf.on.update(*SANDBOXES, field="spec")
async def sandbox_changed(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    new = await reconcile_sandbox(_sandbox_data(body), logger)
    if new is not None:
        patch.status.update(new)


# The periodic re-read of every sandbox is one loop for the operator, not a Kopf timer per sandbox: a timer
# makes Kopf put a finalizer on the sandbox, and then deleting a sandbox (or `helm uninstall`, which removes
# the operator at the same time) hangs until an operator removes it. Sandboxes need no finalizer: their
# children go with them through ownerReferences.
_sandboxes: dict[tuple[str, str], dict[str, Any]] = {}
_loop_task: asyncio.Task[None] | None = None


@kopf.on.event(*SANDBOXES)  # type: ignore[arg-type]
def sandbox_seen(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    """Keep the loop's view of the sandboxes current (event handlers need no finalizer)."""
    key = (body.metadata.namespace or "", body.metadata.name or "")
    if event.get("type") == "DELETED" or body.metadata.get("deletionTimestamp"):
        _sandboxes.pop(key, None)
    else:
        _sandboxes[key] = _sandbox_data(body)


async def _sandbox_loop() -> None:
    log = logging.getLogger("trainbox_operator.sandboxes")
    while True:
        await asyncio.sleep(SANDBOX_PERIOD)
        for (namespace, name), data in list(_sandboxes.items()):
            try:
                new = await reconcile_sandbox(data, log)
                if new is not None and not await asyncio.to_thread(
                    kube.patch_status, "trainingsandboxes", namespace, name, new
                ):
                    _sandboxes.pop((namespace, name), None)
            except Exception as exc:  # one sandbox's trouble must not stop the others' reconcile
                log.warning(f"reconcile of sandbox {namespace}/{name} failed: {exc}")


@kopf.on.startup()
async def start_sandbox_loop(**_: Any) -> None:
    global _loop_task
    _loop_task = asyncio.create_task(_sandbox_loop())


# -- instances ----------------------------------------------------------------------------------------------


def _sandbox_of(body: kopf.Body, index: kopf.Index[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    found = index.get((body.metadata.namespace or "", body.spec["sandboxRef"]["name"]))
    return next(iter(found), None) if found else None


def _instance_data(body: kopf.Body) -> dict[str, Any]:
    return {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}


_create_slots: asyncio.Semaphore | None = None


def _slots() -> asyncio.Semaphore:
    """Creates in flight at once: enough to keep the service busy, few enough to stay under its admission."""
    global _create_slots
    if _create_slots is None:
        _create_slots = asyncio.Semaphore(CREATES_IN_FLIGHT)
    return _create_slots


async def _create_instance(data: dict[str, Any], sandbox: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """The status after one attempt to create the instance (it says whether to wait, retry or stop)."""
    ref = data["spec"]["sandboxRef"]["name"]
    if sandbox is None:
        return instances.waiting_status(
            data, c.InstanceReady.SANDBOX_NOT_READY, f"TrainingSandbox {ref!r} does not exist", now
        )
    if not c.is_true(sandbox["status"].get("conditions"), c.READY) or not sandbox["status"].get("endpoint"):
        return instances.waiting_status(
            data, c.InstanceReady.SANDBOX_NOT_READY, f"TrainingSandbox {ref!r} is not Ready yet", now
        )
    endpoint = sandbox["status"]["endpoint"]
    token = await _token(data["metadata"]["namespace"], sandbox["spec"])
    request = instances.create_request(data)
    try:
        async with _slots():
            made = await sandbox_api.create(endpoint, token, request)
    except TrainboxError as exc:
        adopted = None
        if instances.create_answer(exc) is instances.CreateAnswer.ADOPT:
            adopted = await sandbox_api.get(endpoint, token, request["instance_id"])
        return instances.failed_create_status(data, exc, adopted, now)
    return instances.created_status(data, made, now)


async def _check_expiry(data: dict[str, Any], sandbox: dict[str, Any] | None, now: str) -> dict[str, Any] | None:
    """Past ``expiresAt``: the renewed or expired status (None when the sandbox cannot be asked now)."""
    if sandbox is None or not sandbox["status"].get("endpoint"):
        return None
    endpoint = sandbox["status"]["endpoint"]
    token = await _token(data["metadata"]["namespace"], sandbox["spec"])
    instance_id = data["status"]["instanceId"]
    live = await sandbox_api.get(endpoint, token, instance_id)
    if live is not None and live["expires_at"] > datetime.now(UTC).timestamp():
        return instances.renewed_status(data, live["expires_at"], now)  # used since: renewed
    if live is not None:
        await sandbox_api.release(endpoint, token, instance_id)
    return instances.expired_status(data, now, by_service=live is None)


async def _step_instance(data: dict[str, Any], sandbox: dict[str, Any] | None) -> tuple[dict[str, Any] | None, float]:
    """One decision for an instance: (new status or None, seconds to wait before the next)."""
    now = datetime.now(UTC)
    action = instances.next_action(data["status"], now)
    if action is instances.Action.CREATE:
        new = await _create_instance(data, sandbox, c.now_iso(now))
        return new, 0.0 if new.get("instanceId") else RETRY_SECONDS
    if action is instances.Action.CHECK_EXPIRY:
        return await _check_expiry(data, sandbox, c.now_iso(now)), RETRY_SECONDS
    if action is instances.Action.WAIT:
        left = (instances.parse_time(data["status"]["expiresAt"]) - now).total_seconds()
        return await _sync_live(data, sandbox), min(max(left, 0.2), SYNC_PERIOD)
    return None, 0.0


async def _sync_live(data: dict[str, Any], sandbox: dict[str, Any] | None) -> dict[str, Any] | None:
    """A live instance's reward and renewed deadline, as the service knows them (None: nothing new)."""
    if sandbox is None or not sandbox["status"].get("endpoint"):
        return None
    token = await _token(data["metadata"]["namespace"], sandbox["spec"])
    try:
        live = await sandbox_api.get(sandbox["status"]["endpoint"], token, data["status"]["instanceId"])
    except TrainboxError:
        return None  # the service is away for now: the next wake asks again
    return instances.synced_status(data, live) if live is not None else None


@kopf.daemon(*INSTANCES, cancellation_timeout=10)  # type: ignore[arg-type]
async def instance_daemon(
    body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger, sandbox_index: kopf.Index, **_: Any
) -> None:
    """One sleeping task per instance: it wakes to create the instance, then every SYNC_PERIOD (to copy the
    reward and renewed deadline from the service) and at its expiry."""
    data = _instance_data(body)
    namespace, name = data["metadata"]["namespace"], data["metadata"]["name"]
    while not stopped:
        if instances.next_action(data["status"], datetime.now(UTC)) is instances.Action.DONE:
            return
        new, wait = await _step_instance(data, _sandbox_of(body, sandbox_index))
        if new is not None and _changed(data["status"], new):
            if not await asyncio.to_thread(kube.patch_instance_status, namespace, name, new):
                return  # the resource is gone
            data["status"] = {**data["status"], **new}
        if c.is_true(data["status"].get("conditions"), c.EXPIRED):
            logger.info(f"instance {data['status'].get('instanceId')} expired")
            if data["spec"].get("expiryPolicy", "Delete") == "Delete":
                await asyncio.to_thread(kube.delete_instance, namespace, name)
            return
        if wait:
            await stopped.wait(wait)


@kopf.on.delete(*INSTANCES)  # type: ignore[arg-type]
async def instance_deleted(body: kopf.Body, logger: kopf.Logger, sandbox_index: kopf.Index, **_: Any) -> None:
    """Release the instance in its sandbox before the resource goes (the finalizer's job)."""
    status = dict(body.status)
    instance_id = status.get("instanceId")
    sandbox = _sandbox_of(body, sandbox_index)
    if not instance_id or c.is_true(status.get("conditions"), c.RELEASED):
        return
    if sandbox is None or not sandbox["status"].get("endpoint"):
        logger.warning(f"sandbox of {instance_id} is gone; nothing to release")
        return
    token = await _token(body.metadata.namespace or "", sandbox["spec"])
    try:
        released = await sandbox_api.release(sandbox["status"]["endpoint"], token, instance_id)
    except TrainboxError as exc:
        raise kopf.TemporaryError(f"could not release {instance_id}: {exc}", delay=5) from exc
    logger.info(f"released {instance_id} (was live: {released})")
