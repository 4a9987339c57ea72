"""The deployables agree with their single sources: the chart's CRDs match crds/, the raw manifests are the
chart's render, and helm lints."""

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


@pytest.mark.k8s  # helm, from make k8s-tools
def test_raw_manifests_are_the_rendered_chart() -> None:
    """`kubectl apply -f crds/deploy/` installs what the chart installs: the file is a render of the chart."""
    rendered = subprocess.run(
        [str(Tools.locate().bin("helm")), "template", "trainbox", str(CHART), "--namespace", "trainbox-system"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    committed = (REPO / "crds" / "deploy" / "operator.yaml").read_text()
    assert list(yaml.safe_load_all(committed)) == list(yaml.safe_load_all(rendered)), (
        "crds/deploy/operator.yaml is not the chart's render: run scripts/render-deploy.sh"
    )


@pytest.mark.k8s  # helm, from make k8s-tools
def test_secrets_are_read_only_in_named_namespaces() -> None:
    """The ClusterRole grants no Secrets; a Role per named namespace (the release's by default) does."""
    helm = str(Tools.locate().bin("helm"))
    rendered = subprocess.run(
        [helm, "template", "t", str(CHART), "-n", "rel", "--set-json", 'operator.secretNamespaces=["a","rel"]'],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert not [r for r in cluster_role["rules"] if "secrets" in r["resources"]]
    roles = {d["metadata"]["namespace"]: d["rules"] for d in docs if d["kind"] == "Role"}
    assert roles == {ns: [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}] for ns in ("rel", "a")}


@pytest.mark.k8s  # helm, from make k8s-tools
def test_helm_lint_and_template_with_a_sandbox() -> None:
    helm = str(Tools.locate().bin("helm"))
    subprocess.run([helm, "lint", "--strict", str(CHART)], check=True, capture_output=True)
    rendered = subprocess.run(
        [helm, "template", "t", str(CHART), "--set", "sandbox.enabled=true"], capture_output=True, text=True, check=True
    ).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    assert kinds.count("TrainingSandbox") == 1 and "Deployment" in kinds
