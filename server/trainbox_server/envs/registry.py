"""Every environment family, declared once: ``FAMILIES``. Whatever else names the families reads this table, or a
test checks it against this table (``tests/test_registry.py``: the CRDs, the chart, the operator's data volumes,
``make install``, the image builds, the Makefile).

Standard library only: the service, the hosts and every family's worker process (each with its family's own
interpreter) import it. A new family is a package under ``envs/`` with ``make_family()``, its requirements file,
one ``FamilyEntry`` here and its tests (README: "Where to change what").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainbox_server.envs.base import SPLITS


@dataclass(frozen=True)
class Pool:
    """A family's pool defaults (``runtime.FamilyConfig``; ``TRAINBOX_FAMILIES`` overrides them)."""

    warm: int  # idle processes kept started and warmed
    processes: int  # processes a many-instance family spreads its instances over
    memory_mb: int  # the address-space limit of one worker (RLIMIT_AS)


@dataclass(frozen=True)
class Data:
    """Where a family's data lives: on this machine, and on the worker pods of a TrainingSandbox."""

    variable: str  # the environment variable naming the data root
    default: str  # the data root when the variable is unset (``~`` expands)
    make_target: str  # the Makefile target that downloads the data
    spec_field: str  # the TrainingSandbox spec field that mounts it on the worker pods (the operator)
    pod_path: str  # where the worker pods see it

    def root(self, env: Mapping[str, str] | None = None) -> str:
        """The data root: ``env``'s variable, else this process's, else the default; absolute."""
        value = (env or {}).get(self.variable) or os.environ.get(self.variable) or self.default
        return os.path.abspath(os.path.expanduser(value))


@dataclass(frozen=True)
class FamilyEntry:
    """One environment family: what serves it, where it runs and how it is installed."""

    name: str
    module: str  # the adapter package: ``make_family()`` (``make_family(release)`` for a family with releases)
    pool: Pool
    requirements: tuple[str, ...]  # its venv's pins, under requirements/ (``.venvs/<name>``, ``make install``)
    image: str  # images/<image>/Dockerfile: the image that carries its engine
    description: str = ""  # one line, for OpenEnv's metadata (empty: the family's name)
    # Rewards come from this module's ``make_judge()``, run as a separate evaluator process (instances that
    # cannot see their answers).
    judge_module: str | None = None
    executes_code: bool = False  # it runs model code: its workers run in the sandbox (runtime.sandbox)
    # What a sandboxed worker (and its evaluator) may see of the data root: the module's ``binds(root, judge)``
    # and ``SANDBOX_ROOT`` (where the data appears inside the sandbox).
    data_view: str | None = None
    data: Data | None = None
    prestart: bool = False  # its pool starts with the host (else on first use)
    forks: bool = False  # workers fork from a warm server (runtime.forkserver): its preload() is fork-safe
    releases: tuple[str, ...] = ()  # served side by side, newest first (``envs.releases``); () for one release
    splits: tuple[str, ...] = SPLITS
    create_params: tuple[str, ...] = ()  # the params its ``create`` reads (its package docstring says what they do)


FAMILIES: dict[str, FamilyEntry] = {
    family.name: family
    for family in (
        FamilyEntry(
            "bfcl",
            "trainbox_server.envs.bfcl",
            Pool(warm=2, processes=2, memory_mb=4096),
            requirements=("requirements/bfcl.txt",),  # + requirements/bfcl-releases/<release>.txt
            image="server",
            description="BFCL v4 executable multi-turn and single-turn function-calling tasks, scored by BFCL's own "
            "checker",
            prestart=True,
            forks=True,
            releases=("2026.3.23", "2025.10.1"),
            create_params=("sparse", "on_invalid_action"),
        ),
        FamilyEntry(
            "appworld",
            "trainbox_server.envs.appworld",
            Pool(warm=2, processes=1, memory_mb=4096),
            requirements=("requirements/appworld.txt",),
            image="appworld",
            description="AppWorld: tasks over nine simulated apps solved by writing Python, scored by AppWorld's tests",
            judge_module="trainbox_server.envs.appworld.judge",
            executes_code=True,
            forks=True,
            data_view="trainbox_server.envs.appworld.view",
            data=Data("APPWORLD_ROOT", "~/.cache/trainbox/appworld", "appworld-data", "appworldData", "/data/appworld"),
            create_params=("sparse", "step_timeout", "max_interactions"),
        ),
        FamilyEntry(
            "webshop",
            "trainbox_server.envs.webshop",
            # The JVM reserves address space well beyond what it touches (the limit is RLIMIT_AS).
            Pool(warm=1, processes=2, memory_mb=8192),
            requirements=("requirements/webshop.txt", "requirements/webshop-nodeps.txt"),
            image="webshop",
            data=Data("WEBSHOP_ROOT", "~/.cache/trainbox/webshop", "webshop-data", "webshopData", "/data/webshop"),
            create_params=("sparse", "show_attrs"),
        ),
    )
}


def data_of(name: str) -> Data:
    """The data of a family that has some (``LookupError`` otherwise: a programming mistake)."""
    data = FAMILIES[name].data
    if data is None:
        raise LookupError(f"the {name} family declares no data")
    return data
