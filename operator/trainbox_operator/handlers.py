"""Kopf wiring: level-triggered reconcile of TrainingSandbox and TrainingInstance.

Sandboxes: on create/update/resume and every few seconds (a timer re-reads the real state), apply the
desired children and write the status computed from what they became. Instances: a timer per instance
creates it through its sandbox's service once the sandbox is Ready, watches its TTL, and releases it;
deleting the resource releases it first (finalizer).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf

from trainbox_operator import GROUP, VERSION, desired, instances, kube, sandbox_api
from trainbox_operator import conditions as c
from trainbox_operator import status as st
from trainbox_operator.errors import InvalidSpec, OperatorError, ServiceCallFailed

SANDBOXES = (GROUP, VERSION, "trainingsandboxes")
INSTANCES = (GROUP, VERSION, "traininginstances")
SANDBOX_PERIOD = 3.0
INSTANCE_PERIOD = 1.0
# The service's own refusals that no retry fixes: the instance is marked Failed.
PERMANENT_KINDS = {"unknown_environment", "unknown_task", "unsupported_task", "bad_request", "unavailable_architecture"}


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
        asyncio.to_thread(kube.pods, namespace, f"ray.io/cluster={names['raycluster']},ray.io/node-type=worker"),
    )
    observed = st.Observed(raycluster, deployment, pods)
    if (spec.get("service") or {}).get("endpointOverride"):
        observed.front_answers = await sandbox_api.ready(endpoint)
        if observed.front_answers:
            try:
                observed.live_instances = await sandbox_api.live_instances(endpoint, await _token(namespace, spec))
            except OperatorError:
                observed.live_instances = None
    return observed


async def reconcile_sandbox(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger) -> None:
    data = {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": dict(body.metadata)}
    data.update(spec=dict(body.spec), status=dict(body.status))
    now = c.now_iso()
    try:
        children = desired.children(data)
    except InvalidSpec as exc:
        new = st.invalid_status(data, str(exc), now)
        if _changed(data["status"], new):
            logger.warning(f"invalid spec: {exc}")
            patch.status.update(new)
        return  # not retried: the next spec change (or timer tick) re-checks
    for child in children:
        await asyncio.to_thread(kube.apply, child)
    endpoint = desired.endpoint(data)
    new = st.sandbox_status(data, await _observe(data, endpoint), endpoint, now)
    if _changed(data["status"], new):
        patch.status.update(new)


@kopf.on.resume(*SANDBOXES)
@kopf.on.create(*SANDBOXES)
@kopf.on.update(*SANDBOXES, field="spec")
async def sandbox_changed(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    await reconcile_sandbox(body, patch, logger)


@kopf.timer(*SANDBOXES, interval=SANDBOX_PERIOD)
async def sandbox_tick(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
    await reconcile_sandbox(body, patch, logger)


# -- instances ----------------------------------------------------------------------------------------------


def _sandbox_of(body: kopf.Body, index: kopf.Index[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    found = index.get((body.metadata.namespace or "", body.spec["sandboxRef"]["name"]))
    return next(iter(found), None) if found else None


def _instance_data(body: kopf.Body) -> dict[str, Any]:
    return {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}


async def _create_instance(data: dict[str, Any], sandbox: dict[str, Any] | None, patch: kopf.Patch, now: str) -> None:
    ref = data["spec"]["sandboxRef"]["name"]
    if sandbox is None:
        new = instances.waiting_status(data, "SandboxNotReady", f"TrainingSandbox {ref!r} does not exist", now)
    elif not c.is_true(sandbox["status"].get("conditions"), c.READY) or not sandbox["status"].get("endpoint"):
        new = instances.waiting_status(data, "SandboxNotReady", f"TrainingSandbox {ref!r} is not Ready yet", now)
    else:
        endpoint = sandbox["status"]["endpoint"]
        token = await _token(data["metadata"]["namespace"], sandbox["spec"])
        request = instances.create_request(data)
        try:
            made = await sandbox_api.create(endpoint, token, request)
        except ServiceCallFailed as exc:
            if exc.kind == "duplicate_instance":  # an earlier attempt made it (or is making it): adopt it
                found = await sandbox_api.get(endpoint, token, request["instance_id"])
                if found is None:  # still being created by that attempt: look again next tick
                    patch.status.update(instances.waiting_status(data, "Creating", "a create is in flight", now))
                    return
                made = {"state": [], **found}
            elif exc.kind in PERMANENT_KINDS:
                new = instances.failed_status(data, str(exc), now)
                if _changed(data["status"], new):
                    patch.status.update(new)
                return
            else:
                new = instances.waiting_status(data, "ServiceError", str(exc), now)
                patch.status.update(new)
                return
        new = instances.created_status(data, made, now)
    if _changed(data["status"], new):
        patch.status.update(new)


async def _check_expiry(data: dict[str, Any], sandbox: dict[str, Any] | None, patch: kopf.Patch, now: str) -> bool:
    """True when the instance is now released (expired)."""
    if sandbox is None or not sandbox["status"].get("endpoint"):
        return False  # cannot ask; try again on the next tick
    endpoint = sandbox["status"]["endpoint"]
    token = await _token(data["metadata"]["namespace"], sandbox["spec"])
    instance_id = data["status"]["instanceId"]
    live = await sandbox_api.get(endpoint, token, instance_id)
    if live is not None and live["expires_at"] > datetime.now(UTC).timestamp():
        patch.status.update(instances.renewed_status(data, live["expires_at"], now))  # used since: renewed
        return False
    if live is not None:
        await sandbox_api.release(endpoint, token, instance_id)
    patch.status.update(instances.expired_status(data, now, by_service=live is None))
    return True


@kopf.timer(*INSTANCES, interval=INSTANCE_PERIOD)  # type: ignore[arg-type]
async def instance_tick(
    body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, sandbox_index: kopf.Index, **_: Any
) -> None:
    data = _instance_data(body)
    action = instances.next_action(data["status"], datetime.now(UTC))
    sandbox = _sandbox_of(body, sandbox_index)
    now = c.now_iso()
    if action is instances.Action.CREATE:
        await _create_instance(data, sandbox, patch, now)
    elif action is instances.Action.CHECK_EXPIRY and await _check_expiry(data, sandbox, patch, now):
        logger.info(f"instance {data['status']['instanceId']} expired")
        if data["spec"].get("expiryPolicy", "Delete") == "Delete":
            await asyncio.to_thread(kube.delete_instance, data["metadata"]["namespace"], data["metadata"]["name"])


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
    except ServiceCallFailed as exc:
        raise kopf.TemporaryError(f"could not release {instance_id}: {exc}", delay=5) from exc
    logger.info(f"released {instance_id} (was live: {released})")
