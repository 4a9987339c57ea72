"""The family registry (``envs.registry.FAMILIES``) is the one list of families: every module it names exists, and
every other place that lists the families — the CRDs, the chart, the operator's data volumes, ``make install``,
the image builds, the Makefile — agrees with it. (What reads the registry directly needs no check here: the
runtime's pool defaults, the worker's and the pools' module choices, the settings, the hosts' prestart.)"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from trainbox_operator.desired import DATA_VOLUMES
from trainbox_server.envs.base import SPLITS
from trainbox_server.envs.registry import FAMILIES, FamilyEntry
from trainbox_server.runtime.runtime import default_families

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = REPO / "server" / "trainbox_server" / "envs"
WITH_DATA = [family for family in FAMILIES.values() if family.data is not None]


def _crd_spec(name: str) -> dict:
    crd = yaml.safe_load((REPO / "crds" / f"trainbox.dev_{name}.yaml").read_text())
    spec: dict = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return spec


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_every_module_named_exists_with_its_entry_point(family: FamilyEntry) -> None:
    assert family.module.rsplit(".", 1)[1] == family.name
    assert callable(importlib.import_module(family.module).make_family)
    if family.judge_module is not None:
        assert callable(importlib.import_module(family.judge_module).make_judge)
    if family.data_view is not None:
        view = importlib.import_module(family.data_view)
        assert callable(view.binds) and view.SANDBOX_ROOT.startswith("/") and family.data is not None
    assert family.splits == SPLITS


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_the_create_params_are_the_ones_the_adapter_reads_and_documents(family: FamilyEntry) -> None:
    sources = "".join(p.read_text() for p in (ADAPTERS / family.name).glob("*.py"))
    read = set(re.findall(r'(?:params\.get\(|_param\(params, )"(\w+)"', sources))
    assert read == set(family.create_params)
    docstring = importlib.import_module(family.module).__doc__ or ""
    assert all(f"``{param}``" in docstring for param in family.create_params)


def test_pool_defaults_come_from_the_registry() -> None:
    configs = default_families()
    assert list(configs) == list(FAMILIES)
    assert all((c.warm, c.processes, c.memory_mb) == tuple(vars(FAMILIES[n].pool).values()) for n, c in configs.items())


def test_crds_list_every_family() -> None:
    """The CRDs (and their chart copies, see test_deployables) accept exactly the families of the registry, and the
    sandbox has the data field of each family with data."""
    sandbox, instance = _crd_spec("trainingsandboxes"), _crd_spec("traininginstances")
    assert sorted(sandbox["environments"]["items"]["enum"]) == sorted(FAMILIES)
    pattern = instance["envType"]["pattern"]
    assert sorted(pattern.split("(", 2)[1].split(")")[0].split("|")) == sorted(FAMILIES)
    for family in WITH_DATA:
        assert family.data is not None and family.data.spec_field in sandbox


def test_the_operator_mounts_each_familys_data_where_the_registry_says() -> None:
    """The operator is its own distribution (it does not import the server): its table is checked here."""
    expected = {f.name: (f.data.spec_field, f.data.pod_path, f.data.variable) for f in WITH_DATA if f.data}
    assert expected == DATA_VOLUMES


def test_the_chart_passes_each_familys_data_on() -> None:
    values = yaml.safe_load((REPO / "charts/trainbox/values.yaml").read_text())["sandbox"]
    template = (REPO / "charts/trainbox/templates/sandbox.yaml").read_text()
    for family in WITH_DATA:
        assert family.data is not None
        assert family.data.spec_field in values and f".Values.sandbox.{family.data.spec_field}" in template


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_make_install_and_the_images_install_each_family(family: FamilyEntry) -> None:
    install = (REPO / "scripts/install.sh").read_text()
    dockerfile = (REPO / "images" / family.image / "Dockerfile").read_text()
    assert re.search(rf"^(?:if )?want {family.name}\b", install, re.MULTILINE), f"install.sh: want {family.name}"
    for requirements in family.requirements:
        assert (REPO / requirements).is_file()
        assert requirements in install and requirements in dockerfile
    if family.releases:
        releases_dir = f"requirements/{family.name}-releases"
        assert {p.stem for p in (REPO / releases_dir).glob("*.txt")} == set(family.releases)
        assert f"{releases_dir}/*.txt" in install and f"{releases_dir}/*.txt" in dockerfile
    build = (REPO / "scripts/images/build.sh").read_text()
    default_set = re.search(r"^SET=\$\{TRAINBOX_IMAGES:-(.*)\}$", build, re.MULTILINE)
    tested_set = re.search(r"^IMAGES_FOR_TESTS := (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert default_set and f"{family.image}=" in default_set.group(1)
    assert tested_set and f"{family.image}=" in tested_set.group(1)


@pytest.mark.parametrize("family", WITH_DATA, ids=[f.name for f in WITH_DATA])
def test_the_makefile_downloads_each_familys_data_to_its_default_root(family: FamilyEntry) -> None:
    assert family.data is not None and family.data.default.startswith("~/")
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(rf"^{family.data.make_target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, f"no `{family.data.make_target}` target in the Makefile"
    assert f"$${{{family.data.variable}:-$$HOME/{family.data.default[2:]}}}" in recipe.group(1)
