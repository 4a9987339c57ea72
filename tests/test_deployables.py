"""The deployables agree with their single sources: the chart's CRDs and RBAC match crds/, and helm lints."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.k8s.components import Tools

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "trainbox"


@pytest.mark.parametrize("crd", sorted(p.name for p in (REPO / "crds").glob("*.yaml")))
def test_chart_crds_do_not_drift(crd: str) -> None:
    assert (CHART / "crds" / crd).read_text() == (REPO / "crds" / crd).read_text(), (
        f"charts/trainbox/crds/{crd} differs from crds/{crd}: copy crds/*.yaml into the chart"
    )


def _rules(docs: list[dict]) -> list[dict]:
    (role,) = [d for d in docs if d and d.get("kind") == "ClusterRole"]
    return role["rules"]


def test_chart_rbac_matches_the_manifest() -> None:
    manifest = list(yaml.safe_load_all((REPO / "crds" / "deploy" / "rbac.yaml").read_text()))
    rendered = subprocess.run(
        [str(Tools.locate().bin("helm")), "template", "t", str(CHART)], capture_output=True, text=True, check=True
    ).stdout
    assert _rules(list(yaml.safe_load_all(rendered))) == _rules(manifest)


def test_helm_lint_and_template_with_a_sandbox() -> None:
    helm = str(Tools.locate().bin("helm"))
    subprocess.run([helm, "lint", "--strict", str(CHART)], check=True, capture_output=True)
    rendered = subprocess.run(
        [helm, "template", "t", str(CHART), "--set", "sandbox.enabled=true"], capture_output=True, text=True, check=True
    ).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    assert kinds.count("TrainingSandbox") == 1 and "Deployment" in kinds
