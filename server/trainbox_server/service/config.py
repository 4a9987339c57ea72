"""Service settings, typed: one field per ``TRAINBOX_<FIELD>`` environment variable (all optional).

``ServiceConfig(...)`` takes values as given (tests, embedding); ``ServiceConfig.from_env()`` reads the
environment through pydantic-settings. A bad value is refused at start with a ``SettingsError`` that names
the variable and says what it accepts (the field's description), never a ``TypeError`` deep in a host.

The defaults here (and the TTLs of ``hosts.lifecycle`` they come from) are the data plane's only ones; the
CRDs, the chart and the operator repeat them in YAML and Kopf code, and ``tests/test_settings_pure.py``
checks that they agree.
"""

from __future__ import annotations

import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from trainbox_server.envs.registry import FAMILIES
from trainbox_server.envs.releases import family_of
from trainbox_server.hosts.host import HostSettings
from trainbox_server.hosts.lifecycle import IDLE_TTL, MAX_LIFETIME, MAX_LIVE_PER_HOST, MAX_TTL
from trainbox_server.runtime.pool import FamilyConfig
from trainbox_server.service.bounds import InputLimits

PREFIX = "TRAINBOX_"
_FAMILY_HINTS = typing.get_type_hints(FamilyConfig)
# What TRAINBOX_FAMILIES may say about one family: FamilyConfig's own fields (but its name), each optional.
FamilyOverrides = create_model(  # type: ignore[call-overload]
    "FamilyOverrides",
    __config__=ConfigDict(extra="forbid"),
    **{f.name: (_FAMILY_HINTS[f.name] | None, None) for f in fields(FamilyConfig) if f.name != "name"},
)


class SettingsError(ValueError):
    """A ``TRAINBOX_*`` variable has a value the service cannot use; the message names it and what is accepted."""


def variable(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


def _positive(default: float, description: str) -> Any:
    return Field(default, gt=0, description=description)


class ServiceConfig(BaseModel):
    """Everything the front needs; each field is read from ``TRAINBOX_<FIELD>`` by ``from_env()``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    ray_address: str | None = Field(None, description="host:port of a Ray to join; unset: start a local one")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray; unset: the machine's")
    ray_namespace: str = Field("trainbox", min_length=1, description="Ray namespace; others get other hosts")
    ray_join_as_node: bool = Field(False, description="true/false: start a Ray node here first (the front's pod)")
    hosts_per_node: int = Field(1, ge=1, description="an integer >= 1")
    idle_ttl: float = _positive(IDLE_TTL, "seconds after its last use an instance is released, a number > 0")
    max_lifetime: float = _positive(MAX_LIFETIME, "seconds an instance may live at most, a number > 0")
    max_ttl: float = _positive(MAX_TTL, "seconds: the ceiling of per-instance TTL overrides, a number > 0")
    max_live_per_host: int = Field(MAX_LIVE_PER_HOST, ge=1, description="an integer >= 1")
    max_live: int = Field(50000, ge=1, description="live instances of the whole service, an integer >= 1")
    max_creates_in_flight: int = Field(256, ge=1, description="an integer >= 1")
    max_group: int = Field(64, ge=1, description="the largest count of one create, an integer >= 1")
    token: str | None = Field(None, description="the bearer token clients must send; unset: no auth")
    token_file: Path | None = Field(None, description="a readable file holding the token (when TOKEN is unset)")
    families: Annotated[dict[str, FamilyOverrides], NoDecode] = Field(
        default_factory=dict,
        description='a JSON object {family: {setting: value}}, e.g. {"appworld": {"warm": 4}}; families: '
        f"{sorted(FAMILIES)} (or family@release); settings: "
        f"{[f.name for f in fields(FamilyConfig) if f.name != 'name']}",
    )
    environments: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description=f"comma-separated families to serve, of {sorted(FAMILIES)}; unset: all"
    )
    sweep_interval: float = _positive(1.0, "seconds between TTL sweeps on a host, a number > 0")
    # Input bounds (see service.bounds and the README's "Limits"); depth and digits are clamped to what the
    # channel carries (service.bounds.InputLimits).
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1, description="bytes; a larger body is refused with 413")
    max_json_depth: int = Field(64, ge=1, description="levels of nesting, an integer >= 1 (at most 200 apply)")
    max_string_chars: int = Field(1024 * 1024, ge=1, description="the longest string in params/action, >= 1")
    max_int_digits: int = Field(18, ge=1, description="digits of an integer, >= 1 (at most 18 apply)")
    min_step_timeout: float = _positive(1.0, "seconds: a client step timeout below it is refused, a number > 0")
    host_call_margin: float = _positive(30.0, "seconds the front waits past a call's own timeout, a number > 0")
    keep_alive: int = Field(75, ge=1, description="seconds an idle HTTP connection stays open, an integer >= 1")
    # Transcripts (GET /v1/instances/{id}/trajectory, the /ui page), kept on each instance's host:
    trajectory_steps: int = Field(200, ge=0, description="steps kept per instance (the newest), >= 0; 0: none")
    trajectory_chars: int = Field(4000, ge=1, description="the longest string kept in a transcript, >= 1")
    trajectory_keep: int = Field(0, ge=0, description="finished episodes kept per host after release, >= 0")
    trajectory_bytes: int = Field(
        256 * 1024, ge=1024, description="the most one transcript's steps take, in JSON bytes, >= 1024"
    )

    @field_validator("families", mode="before")
    @classmethod
    def _families_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value or "{}")
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
        if isinstance(value, dict):
            unknown = sorted(name for name in value if family_of(name) not in FAMILIES)
            if unknown:
                raise ValueError(f"unknown families {unknown}")
        return value

    @field_validator("environments", mode="before")
    @classmethod
    def _environments_list(cls, value: Any) -> Any:
        names = value.split(",") if isinstance(value, str) else value
        names = tuple(name.strip() for name in names if name.strip())
        unknown = sorted(set(names) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}")
        return names

    @model_validator(mode="after")
    def _token_from_file(self) -> ServiceConfig:
        if not self.token and self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"{variable('token_file')}: cannot read {self.token_file}: {exc.strerror}") from None
            object.__setattr__(self, "token", token or None)
        return self

    def family_overrides(self) -> dict[str, dict[str, Any]]:
        """``families`` as plain dicts of the settings given (what hosts pass to ``FamilyConfig``)."""
        return {name: o.model_dump(exclude_unset=True) for name, o in self.families.items()}

    def host_settings(self) -> HostSettings:
        """What every host is started with (its name, architecture and address are the host group's)."""
        return HostSettings(
            name="",
            idle_ttl=self.idle_ttl,
            max_lifetime=self.max_lifetime,
            max_ttl=self.max_ttl,
            max_live=self.max_live_per_host,
            sweep_interval=self.sweep_interval,
            families=self.family_overrides(),
            environments=self.environments,
            trajectory_steps=self.trajectory_steps,
            trajectory_chars=self.trajectory_chars,
            trajectory_keep=self.trajectory_keep,
            trajectory_bytes=self.trajectory_bytes,
        )

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
        overrides = self.family_overrides().values()
        step = max([defaults.step_timeout, *(float(f.get("step_timeout", 0)) for f in overrides)])
        create = max([defaults.create_timeout, *(float(f.get("create_timeout", 0)) for f in overrides)])
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
        """The settings the ``TRAINBOX_*`` variables give; ``SettingsError`` names each bad one."""
        try:
            return _FromEnvironment()
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None


class _FromEnvironment(ServiceConfig, BaseSettings):
    # an empty variable counts as unset (TRAINBOX_RAY_ADDRESS= starts a local Ray, as it always did)
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, extra="forbid", validate_assignment=True
    )


def describe_errors(exc: ValidationError) -> str:
    """One line per bad variable: its name, what was wrong, and what it accepts."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        field = loc[0] if loc else ""
        info = ServiceConfig.model_fields.get(field)
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not field:  # a check across fields: its message names the variables
            lines.append(message)
            continue
        where = variable(field) + (f" ({'.'.join(loc[1:])})" if loc[1:] else "")
        accepted = f"; accepted: {info.description}" if info is not None and info.description else ""
        lines.append(f"{where}: {message}{accepted}")
    return "bad settings: " + " | ".join(lines)
