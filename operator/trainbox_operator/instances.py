"""Pure: what to do about a TrainingInstance, and what its status becomes.

Policy on expiry (``spec.expiryPolicy``): ``Delete`` (default) releases the instance in its sandbox and
deletes the resource; ``Retain`` releases it and keeps the resource with ``Expired=True`` /
``Released=True`` / ``Ready=False``. The sandbox's service also enforces the idle TTL on its own (each
step there extends it), so the operator asks the service once ``expiresAt`` has passed: a renewed
deadline is written back, a released instance is marked expired.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from trainbox import DuplicateInstance, RequestError, TrainboxError

from trainbox_operator import conditions as c

TTL_SECONDS = 300  # the CRD's default of spec.ttlSeconds (tests/test_settings_pure.py checks both)

MESSAGE_CAP = 4096


class CreateAnswer(enum.Enum):
    """What a failed create means for the instance."""

    FAILED = "failed"  # the service refused the request (unknown task, bad params, ...): not retried
    ADOPT = "adopt"  # an earlier attempt of this create (same id) made it, or is making it: read it back
    RETRY = "retry"  # the service failed or did not answer: try again later


def create_answer(error: TrainboxError) -> CreateAnswer:
    if isinstance(error, DuplicateInstance):
        return CreateAnswer.ADOPT
    if isinstance(error, RequestError):
        return CreateAnswer.FAILED
    return CreateAnswer.RETRY


class Action(enum.Enum):
    CREATE = "create"  # not created yet
    CHECK_EXPIRY = "check-expiry"  # past expiresAt: ask the service
    WAIT = "wait"  # live and not yet due
    DONE = "done"  # released or failed: nothing more to do


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def instance_id_for(body: dict[str, Any]) -> str:
    """Deterministic, so a create retried after a crash meets its first attempt (409) instead of leaking."""
    return f"tin-{body['metadata']['uid']}"


def next_action(status: dict[str, Any] | None, now: datetime) -> Action:
    status = status or {}
    conditions = status.get("conditions")
    if c.is_true(conditions, c.RELEASED) or c.is_true(conditions, c.FAILED):
        return Action.DONE
    if not status.get("instanceId"):
        return Action.CREATE
    expires = status.get("expiresAt")
    if expires and parse_time(expires) <= now:
        return Action.CHECK_EXPIRY
    return Action.WAIT


def create_request(body: dict[str, Any]) -> dict[str, Any]:
    spec = body["spec"]
    request: dict[str, Any] = {
        "env_type": spec["envType"],
        "task_id": spec["taskId"],
        "params": spec.get("params") or {},
        "instance_id": instance_id_for(body),
        "idle_ttl": spec.get("ttlSeconds", TTL_SECONDS),
    }
    if spec.get("maxLifetimeSeconds"):
        request["max_lifetime"] = spec["maxLifetimeSeconds"]
    if spec.get("arch"):
        request["arch"] = spec["arch"]
    return request


def capped_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    out, truncated = [], False
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) and len(content) > MESSAGE_CAP:
            message = {**message, "content": content[:MESSAGE_CAP] + " …[truncated]"}
            truncated = True
        out.append({k: v for k, v in message.items() if k in ("role", "content", "name")})
    return out, truncated


def _with(body: dict[str, Any], updates: list[dict[str, Any]], now: str, **fields: Any) -> dict[str, Any]:
    meta = body["metadata"]
    current = (body.get("status") or {}).get("conditions")
    return {
        **fields,
        "observedGeneration": meta.get("generation", 0),
        "conditions": c.merge(current, updates, meta.get("generation", 0), now),
    }


def created_status(body: dict[str, Any], instance: dict[str, Any], now: str) -> dict[str, Any]:
    messages, truncated = capped_messages(instance.get("state") or [])
    expires = c.now_iso(datetime.fromtimestamp(instance["expires_at"], UTC))
    ready = c.condition(c.READY, True, c.InstanceReady.CREATED, f"instance {instance['instance_id']} is live")
    placed = {"arch": instance["arch"]} if instance.get("arch") else {}
    return _with(
        body, [ready], now,
        instanceId=instance["instance_id"], messages=messages, messagesTruncated=truncated, expiresAt=expires,
        **placed,
    )  # fmt: skip


def failed_create_status(
    body: dict[str, Any], error: TrainboxError, adopted: dict[str, Any] | None, now: str
) -> dict[str, Any]:
    """The status after a create that failed with ``error``; ``adopted`` is what the service reports of the
    instance's id when the answer is ``ADOPT`` (None: that earlier create is still in flight)."""
    answer = create_answer(error)
    if answer is CreateAnswer.FAILED:
        return failed_status(body, str(error), now)
    if answer is CreateAnswer.RETRY:
        return waiting_status(body, c.InstanceReady.SERVICE_ERROR, str(error), now)
    if adopted is None:
        return waiting_status(body, c.InstanceReady.CREATING, "a create of this instance is in flight", now)
    return created_status(body, {"state": [], **adopted}, now)


def waiting_status(body: dict[str, Any], reason: c.InstanceReady, message: str, now: str) -> dict[str, Any]:
    return _with(body, [c.condition(c.READY, False, reason, message)], now)


def failed_status(body: dict[str, Any], message: str, now: str) -> dict[str, Any]:
    updates = [
        c.condition(c.READY, False, c.InstanceReady.FAILED, message),
        c.condition(c.FAILED, True, c.FailedReason.CREATE_FAILED, message),
    ]
    return _with(body, updates, now)


def synced_status(body: dict[str, Any], live: dict[str, Any]) -> dict[str, Any] | None:
    """What changed of a live instance as the service reports it: its last reward and its deadline."""
    status = body.get("status") or {}
    new: dict[str, Any] = {}
    if live.get("last_reward") is not None and live["last_reward"] != status.get("lastReward"):
        new["lastReward"] = live["last_reward"]
    expires = c.now_iso(datetime.fromtimestamp(live["expires_at"], UTC))
    if expires != status.get("expiresAt"):
        new["expiresAt"] = expires
    return new or None


def renewed_status(body: dict[str, Any], expires_at: float, now: str) -> dict[str, Any]:
    return _with(body, [], now, expiresAt=c.now_iso(datetime.fromtimestamp(expires_at, UTC)))


def expired_status(body: dict[str, Any], now: str, by_service: bool) -> dict[str, Any]:
    why = "released by the sandbox's service (idle TTL)" if by_service else "TTL passed; released"
    updates = [
        c.condition(c.READY, False, c.InstanceReady.EXPIRED, why),
        c.condition(c.EXPIRED, True, c.ExpiredReason.TTL_EXPIRED, why),
        c.condition(
            c.RELEASED, True, c.ReleasedReason.RELEASED_BY_SERVICE if by_service else c.ReleasedReason.TTL_EXPIRED, why
        ),
    ]
    return _with(body, updates, now)
