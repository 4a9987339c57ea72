"""Service configuration, read from ``TRAINBOX_*`` environment variables (all optional)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainbox_server.runtime.pool import FamilyConfig
from trainbox_server.service.bounds import InputLimits


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRAINBOX_{name}", default)


@dataclass
class ServiceConfig:
    """Everything the front needs. ``from_env()`` documents the variable for each field."""

    ray_address: str | None = None  # TRAINBOX_RAY_ADDRESS: join this Ray; unset: start a local one
    ray_num_cpus: int | None = None
    ray_namespace: str = "trainbox"  # TRAINBOX_RAY_NAMESPACE: services in other namespaces get other hosts
    ray_join_as_node: bool = False  # TRAINBOX_RAY_JOIN_AS_NODE: start a Ray node here first (the front's pod)
    hosts_per_node: int = 1  # TRAINBOX_HOSTS_PER_NODE
    idle_ttl: float = 300.0  # TRAINBOX_IDLE_TTL (s)
    max_lifetime: float = 3600.0  # TRAINBOX_MAX_LIFETIME (s)
    max_ttl: float = 86400.0  # TRAINBOX_MAX_TTL: ceiling for per-instance overrides
    max_live_per_host: int = 20000  # TRAINBOX_MAX_LIVE_PER_HOST
    max_live_total: int = 50000  # TRAINBOX_MAX_LIVE
    max_creates_in_flight: int = 256  # TRAINBOX_MAX_CREATES_IN_FLIGHT
    max_group: int = 64  # TRAINBOX_MAX_GROUP: the largest ``count`` of one create
    token: str | None = None  # TRAINBOX_TOKEN or TRAINBOX_TOKEN_FILE: bearer token; unset: no auth
    families: dict[str, dict[str, Any]] = field(default_factory=dict)  # TRAINBOX_FAMILIES (JSON)
    environments: tuple[str, ...] = ()  # TRAINBOX_ENVIRONMENTS: comma-separated families to serve (default: all)
    sweep_interval: float = 1.0
    # Input bounds (see service.bounds and the README's "Limits"):
    max_body_bytes: int = 4 * 1024 * 1024  # TRAINBOX_MAX_BODY_BYTES: a larger body is refused with 413
    max_json_depth: int = 64  # TRAINBOX_MAX_JSON_DEPTH (at most 200)
    max_string_chars: int = 1024 * 1024  # TRAINBOX_MAX_STRING_CHARS: the longest string in params/action
    max_int_digits: int = 18  # TRAINBOX_MAX_INT_DIGITS (at most 18: integers must fit in 64 bits)
    min_step_timeout: float = 1.0  # TRAINBOX_MIN_STEP_TIMEOUT: a client step timeout below it is refused
    host_call_margin: float = 30.0  # TRAINBOX_HOST_CALL_MARGIN: how long past a call's own timeout to wait
    # Transcripts (GET /v1/instances/{id}/trajectory, the /ui page), kept on each instance's host:
    trajectory_steps: int = 200  # TRAINBOX_TRAJECTORY_STEPS: steps kept per instance (the newest); 0: none
    trajectory_chars: int = 4000  # TRAINBOX_TRAJECTORY_CHARS: the longest string kept in a transcript
    trajectory_keep: int = 0  # TRAINBOX_TRAJECTORY_KEEP: finished episodes kept per host after release

    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_body_bytes=self.max_body_bytes,
            max_depth=self.max_json_depth,
            max_string_chars=self.max_string_chars,
            max_int_digits=self.max_int_digits,
            min_step_timeout=self.min_step_timeout,
        )

    def host_deadlines(self) -> dict[str, float]:
        """How long the front waits for each host method before answering ``host_timeout`` (504): the
        longest the host itself may take (the families' timeouts, see runtime.pool) plus a margin."""
        defaults = FamilyConfig("")
        step = max([defaults.step_timeout, *(float(f.get("step_timeout", 0)) for f in self.families.values())])
        create = max([defaults.create_timeout, *(float(f.get("create_timeout", 0)) for f in self.families.values())])
        margin = self.host_call_margin
        return {
            "margin": margin,
            "step": step + margin,
            "evaluate": 2 * step + margin,
            "info": step + margin,
            "release": step + margin,
            "create": 2 * create + margin,
            "task_ids": 2 * create + margin,
            "get": margin,
            "has": margin,
            "stats": 10.0,
            "default": 2 * create + margin,
        }

    @classmethod
    def from_env(cls) -> ServiceConfig:
        token = os.environ.get("TRAINBOX_TOKEN")
        token_file = os.environ.get("TRAINBOX_TOKEN_FILE")
        if not token and token_file:
            token = Path(token_file).read_text().strip()
        return cls(
            ray_address=os.environ.get("TRAINBOX_RAY_ADDRESS") or None,
            ray_namespace=_env("RAY_NAMESPACE", "trainbox"),
            ray_join_as_node=_env("RAY_JOIN_AS_NODE", "false").lower() in ("1", "true", "yes"),
            hosts_per_node=int(_env("HOSTS_PER_NODE", "1")),
            idle_ttl=float(_env("IDLE_TTL", "300")),
            max_lifetime=float(_env("MAX_LIFETIME", "3600")),
            max_ttl=float(_env("MAX_TTL", "86400")),
            max_live_per_host=int(_env("MAX_LIVE_PER_HOST", "20000")),
            max_live_total=int(_env("MAX_LIVE", "50000")),
            max_creates_in_flight=int(_env("MAX_CREATES_IN_FLIGHT", "256")),
            max_group=int(_env("MAX_GROUP", "64")),
            token=token or None,
            families=json.loads(_env("FAMILIES", "{}")),
            environments=tuple(e.strip() for e in _env("ENVIRONMENTS", "").split(",") if e.strip()),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(4 * 1024 * 1024))),
            max_json_depth=int(_env("MAX_JSON_DEPTH", "64")),
            max_string_chars=int(_env("MAX_STRING_CHARS", str(1024 * 1024))),
            max_int_digits=int(_env("MAX_INT_DIGITS", "18")),
            min_step_timeout=float(_env("MIN_STEP_TIMEOUT", "1")),
            host_call_margin=float(_env("HOST_CALL_MARGIN", "30")),
            trajectory_steps=int(_env("TRAJECTORY_STEPS", "200")),
            trajectory_chars=int(_env("TRAJECTORY_CHARS", "4000")),
            trajectory_keep=int(_env("TRAJECTORY_KEEP", "0")),
        )
