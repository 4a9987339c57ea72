"""Pure lifecycle decisions: instance ids that name their host, TTL deadlines, release reasons, placement.

No I/O here: the host actor and the front call these and act on the answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

ID_SEPARATOR = "--"
HOST_PREFIX = "host-"  # every host name starts with it; caller-chosen ids may not (see caller_id_problem)
RELEASE_REASONS = ("explicit", "idle", "lifetime", "lost")
MAX_ID_CHARS = 200
# Default TTLs and limits (seconds / instances): the service's settings default to these (service.config).
IDLE_TTL = 300.0
MAX_LIFETIME = 3600.0
MAX_TTL = 86400.0  # the ceiling of per-instance overrides
MAX_LIVE_PER_HOST = 20000
CALLER_ID = re.compile(r"[A-Za-z0-9._:-]+")
GENERATED_ID = re.compile(rf"{HOST_PREFIX}[A-Za-z0-9._:-]+?{ID_SEPARATOR}[0-9a-f]{{32}}")


def new_instance_id(host: str) -> str:
    """A fresh id that names its host, so any front can route it without shared state."""
    return f"{host}{ID_SEPARATOR}{uuid.uuid4().hex}"


def is_generated_id(instance_id: str) -> bool:
    """Whether an id has the generated format (``host-...--<32 hex>``): it names the host that made it."""
    return GENERATED_ID.fullmatch(instance_id) is not None


def caller_id_problem(instance_id: object) -> str | None:
    """What is wrong with a caller-chosen instance id (None: acceptable).

    Accepted: a string of 1-200 characters from ``A-Z a-z 0-9 . _ : -`` not starting with ``host-`` (that
    prefix is the generated ids', which name their host: a caller must not be able to take one).
    """
    if not isinstance(instance_id, str):
        return f"must be a string, got {type(instance_id).__name__}"
    if not 1 <= len(instance_id) <= MAX_ID_CHARS:
        return f"must have 1 to {MAX_ID_CHARS} characters, got {len(instance_id)}"
    if CALLER_ID.fullmatch(instance_id) is None:
        return "may only contain letters, digits and . _ : -"
    if instance_id.startswith(HOST_PREFIX):
        return f"may not start with {HOST_PREFIX!r} (reserved for generated ids)"
    return None


def could_exist(instance_id: str) -> bool:
    """Whether an id could name an instance at all (generated or caller-chosen): others need no lookup."""
    return is_generated_id(instance_id) or caller_id_problem(instance_id) is None


def host_of(instance_id: str, hosts: list[str]) -> str | None:
    """The host an id names (generated ids), else None: the caller must look it up."""
    host, sep, _ = instance_id.partition(ID_SEPARATOR)
    return host if sep and host in hosts else None


def host_for_custom_id(instance_id: str, hosts: list[str]) -> str:
    """Deterministic home of a caller-chosen id, so a duplicate always meets its twin on one host."""
    digest = int.from_bytes(hashlib.blake2b(instance_id.encode(), digest_size=8).digest(), "big")
    return sorted(hosts)[digest % len(hosts)]


@dataclass
class Lease:
    """When an instance was made and used, and how long it may live."""

    created_at: float
    idle_ttl: float
    max_lifetime: float
    last_used_at: float = 0.0

    def __post_init__(self) -> None:
        self.last_used_at = self.last_used_at or self.created_at

    def touch(self, now: float) -> None:
        self.last_used_at = now

    def expires_at(self) -> float:
        return min(self.last_used_at + self.idle_ttl, self.created_at + self.max_lifetime)

    def expiry_reason(self, now: float) -> str | None:
        """'lifetime' or 'idle' once a limit has passed, else None (lifetime wins when both have)."""
        if now >= self.created_at + self.max_lifetime:
            return "lifetime"
        if now >= self.last_used_at + self.idle_ttl:
            return "idle"
        return None


@dataclass
class HostLoad:
    name: str
    arch: str
    live: int
    capacity: int
    alive: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    fresh: bool = True  # False: the host missed this report (slow, still alive); these are its last counts


def missed_report(name: str, arch: str, last: HostLoad | None, answers_ping: bool) -> HostLoad:
    """A host's load when it did not report its counts: one that still answers Ray's ping is slow, not
    gone, and keeps serving on its last report (not ``fresh``: the ledger must not take it as new); one
    that does not, or never reported, is not alive for now."""
    if answers_ping and last is not None:
        return dataclasses.replace(last, fresh=False)
    return HostLoad(name, arch, 0, 0, alive=False)


def serves(host: HostLoad, env_type: str | None) -> bool:
    """Whether a host can run ``env_type``: its image has the family installed (hosts that do not say what
    they have installed are taken to have everything, as before hosts said so)."""
    installed = host.extra.get("installed")
    return env_type is None or installed is None or env_type in installed


def choose_host(loads: list[HostLoad], arch: str | None, env_type: str | None = None) -> HostLoad | None:
    """The least-loaded live host with room that runs ``env_type``, of the requested architecture if one is
    asked for."""
    candidates = [
        h for h in loads if h.alive and h.live < h.capacity and (arch is None or h.arch == arch) and serves(h, env_type)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda h: (h.live / max(h.capacity, 1), h.name))


def validate_ttl(value: float | None, default: float, name: str, upper: float) -> float:
    """A per-instance override of a TTL: a finite number, positive and at most the service's ceiling."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= upper:
        raise ValueError(f"{name} must be in (0, {upper:g}] seconds, got {value!r}")
    return float(value)
