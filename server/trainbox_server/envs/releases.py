"""Environment names with a release: ``bfcl@2025.10.1`` is BFCL as ``bfcl-eval==2025.10.1`` ships it.

Pure and standard-library only (the front, the hosts and the workers all read it). A family listed in
``RELEASES`` is served in each of its releases side by side, every release in its own interpreter
(``.venvs/<family>-<release>``, installed from ``requirements/<family>-releases/<release>.txt``). Names:

* ``bfcl@<release>`` — that release (the *canonical* name: what leases, snapshots and pools carry);
* ``bfcl`` — the family's current release, the first of ``RELEASES["bfcl"]``;
* a create (or ``get_env_profile``) param ``version`` folds into the name: ``("bfcl", {"version": "2025.10.1"})``
  is ``bfcl@2025.10.1`` — a shape a trainer config that only carries ``env_type`` and ``params`` can pin.

Families without releases (AppWorld) keep their plain name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trainbox_server.envs.registry import FAMILIES
from trainbox_server.errors import InvalidRequest

SEPARATOR = "@"
# Newest first (as the registry lists them): the first release is what the plain family name serves.
RELEASES: dict[str, tuple[str, ...]] = {family.name: family.releases for family in FAMILIES.values() if family.releases}


def split_name(name: str) -> tuple[str, str | None]:
    """``"bfcl@2025.10.1"`` → ``("bfcl", "2025.10.1")``; ``"bfcl"`` → ``("bfcl", None)``."""
    family, _, release = name.partition(SEPARATOR)
    return family, (release or None)


def family_of(name: str) -> str:
    return split_name(name)[0]


def canonical(name: str) -> str:
    """The name a pool, a lease and a snapshot carry: a released family's plain name gets its current release."""
    family, release = split_name(name)
    releases = RELEASES.get(family)
    if releases and release is None:
        return f"{family}{SEPARATOR}{releases[0]}"
    return name


def with_version(name: Any, params: Any) -> Any:
    """Fold a ``version`` param into the environment name (names that are not strings pass through: the
    caller's own check refuses them)."""
    version = params.get("version") if isinstance(params, dict) else None
    if version is None or not isinstance(name, str):
        return name
    family, release = split_name(name)
    if not isinstance(version, str) or family not in RELEASES:
        served = list(RELEASES.get(family, ()))
        raise InvalidRequest(
            f"params.version {version!r} cannot select a release of {family!r}; "
            + (f"its releases are {served}" if served else "it is served in one release only: leave version out")
        )
    if release is not None and release != version:
        raise InvalidRequest(f"{name!r} and params.version {version!r} name different releases; give one of them")
    return f"{family}{SEPARATOR}{version}"


def served_names(configured: Iterable[str]) -> list[str]:
    """Every name that reaches a configured family: a released family configured by its plain name serves
    the plain name and each release; one configured by release names serves those (and the plain name when
    its current release is among them)."""
    names: set[str] = set()
    for name in configured:
        family, release = split_name(name)
        releases = RELEASES.get(family, ())
        if release is None and releases:
            names.update([family, *(f"{family}{SEPARATOR}{r}" for r in releases)])
        elif release is None or release in releases:
            names.add(name)
            if releases and release == releases[0]:
                names.add(family)
    return sorted(names)


def describe(name: str) -> dict[str, Any]:
    """What ``GET /v1/environments`` says of a served name besides its splits."""
    family, release = split_name(canonical(name))
    entry: dict[str, Any] = {"name": name, "family": family, "release": release}
    if family in RELEASES and SEPARATOR not in name:
        entry["releases"] = list(RELEASES[family])
    return entry


def venv_name(name: str) -> str:
    """The directory (under ``.venvs``) of a name's interpreter: ``bfcl-2025.10.1``, ``appworld``."""
    family, release = split_name(canonical(name))
    return f"{family}-{release}" if release else family


def env_suffix(name: str) -> str:
    """The suffix of its ``TRAINBOX_PYTHON_<SUFFIX>`` variable: ``BFCL_2025_10_1``, ``APPWORLD``."""
    return "".join(c if c.isalnum() else "_" for c in venv_name(name)).upper()
