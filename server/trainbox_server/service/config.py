"""Service configuration, read from ``TRAINBOX_*`` environment variables (all optional)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRAINBOX_{name}", default)


@dataclass
class ServiceConfig:
    """Everything the front needs. ``from_env()`` documents the variable for each field."""

    ray_address: str | None = None  # TRAINBOX_RAY_ADDRESS: join this Ray; unset: start a local one
    ray_num_cpus: int | None = None
    ray_namespace: str = "trainbox"  # TRAINBOX_RAY_NAMESPACE: services in other namespaces get other hosts
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
    sweep_interval: float = 1.0

    @classmethod
    def from_env(cls) -> ServiceConfig:
        token = os.environ.get("TRAINBOX_TOKEN")
        token_file = os.environ.get("TRAINBOX_TOKEN_FILE")
        if not token and token_file:
            token = Path(token_file).read_text().strip()
        return cls(
            ray_address=os.environ.get("TRAINBOX_RAY_ADDRESS") or None,
            ray_namespace=_env("RAY_NAMESPACE", "trainbox"),
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
        )
