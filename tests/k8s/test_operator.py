"""The operator against the real control plane (apiserver, etcd, scheduler, controller-manager, KWOK nodes of
both architectures, the real KubeRay operator) and, for instances, a real trainbox service on 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.servicekit import Service

from . import kube
from .cluster import Cluster
from .operator_kit import (
    GROUP,
    VERSION,
    condition,
    custom,
    get_cr,
    instance_manifest,
    our_crds,
    sandbox_manifest,
    start_operator,
)

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="session")
def operator(k8s_cluster: Cluster, kube_api: k8s.ApiClient) -> Iterator[Path]:
    crds = our_crds()
    kube.install_crds(kube_api, crds)
    kube.wait_until("trainbox CRDs established", lambda: kube.crds_established(kube_api, crds), timeout=60)
    log = k8s_cluster.logs / "trainbox-operator.log"
    proc = start_operator(k8s_cluster.kubeconfig, log)
    yield log
    from tests.servicekit import stop_group

    stop_group(proc)


def create(api: k8s.ApiClient, namespace: str, plural: str, body: dict) -> dict:
    created: dict = custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    return created


def pods_by_group(api: k8s.ApiClient, namespace: str, cluster: str) -> dict[str, list]:
    listed = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"ray.io/cluster={cluster}")
    groups: dict[str, list] = {}
    for pod in listed.items:
        groups.setdefault(pod.metadata.labels.get("ray.io/group", "?"), []).append(pod)
    return groups


def node_arch(api: k8s.ApiClient, node: str) -> str:
    return k8s.CoreV1Api(api).read_node(node).metadata.labels["kubernetes.io/arch"]


def wait_ready(api: k8s.ApiClient, namespace: str, plural: str, name: str, timeout: float = 90) -> dict:
    return kube.wait_until(
        f"{plural}/{name} Ready",
        lambda: (obj := get_cr(api, namespace, plural, name))
        and condition(obj, "Ready").get("status") == "True"
        and obj,
        timeout=timeout,
    )


def test_sandbox_multi_arch_ready_scale_image_and_cascade(
    operator: Path, kube_api: k8s.ApiClient, namespace: str
) -> None:
    create(kube_api, namespace, "trainingsandboxes", sandbox_manifest("sb"))
    sandbox = wait_ready(kube_api, namespace, "trainingsandboxes", "sb", timeout=120)
    assert sandbox["status"]["readyWorkers"] == {"amd64": 2, "arm64": 2}
    assert sandbox["status"]["observedGeneration"] == sandbox["metadata"]["generation"]
    assert sandbox["status"]["endpoint"] == f"http://sb.{namespace}.svc.cluster.local:8080"
    groups = pods_by_group(kube_api, namespace, "sb-ray")
    for arch in ("amd64", "arm64"):  # KubeRay made the pods; the scheduler bound them by architecture
        pods = groups[f"workers-{arch}"]
        assert len(pods) == 2 and {node_arch(kube_api, p.spec.node_name) for p in pods} == {arch}
    assert len(groups["headgroup"]) == 1
    raycluster = custom(kube_api).get_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters", "sb-ray")
    assert raycluster["metadata"]["ownerReferences"][0]["name"] == "sb"

    # scale amd64 to 3 and change the image: both roll out
    patch = {
        "spec": {
            "image": "trainbox/server:v2",
            "workerGroups": [{"arch": "amd64", "replicas": 3}, {"arch": "arm64", "replicas": 2}],
        }
    }
    custom(kube_api).patch_namespaced_custom_object(GROUP, VERSION, namespace, "trainingsandboxes", "sb", patch)
    kube.wait_until(
        "3 ready amd64 workers",
        lambda: (get_cr(kube_api, namespace, "trainingsandboxes", "sb") or {})
        .get("status", {})
        .get("readyWorkers", {})
        .get("amd64")
        == 3,
        timeout=90,
    )
    apps = k8s.AppsV1Api(kube_api)
    kube.wait_until(
        "front rolled to the new image",
        lambda: apps.read_namespaced_deployment("sb-front", namespace).spec.template.spec.containers[0].image
        == "trainbox/server:v2",
        timeout=30,
    )
    raycluster = custom(kube_api).get_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters", "sb-ray")
    images = {c["image"] for g in raycluster["spec"]["workerGroupSpecs"] for c in g["template"]["spec"]["containers"]}
    assert images == {"trainbox/server:v2"}

    # deleting the sandbox cascades through garbage collection
    custom(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "trainingsandboxes", "sb")

    def children_gone() -> bool:
        rcs = custom(kube_api).list_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters")["items"]
        deps = apps.list_namespaced_deployment(namespace).items
        svcs = [s for s in k8s.CoreV1Api(kube_api).list_namespaced_service(namespace).items if s.metadata.name == "sb"]
        return not rcs and not deps and not svcs

    kube.wait_until("children garbage-collected", children_gone, timeout=60)


def test_invalid_manifests(
    operator: Path, k8s_cluster: Cluster, kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    bad = sandbox_manifest("bad", workerGroups=[{"arch": "amd64", "replicas": 5, "maxReplicas": 2}])
    import yaml

    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(bad))
    applied = subprocess.run(
        ["kubectl", "--kubeconfig", str(k8s_cluster.kubeconfig), "-n", namespace, "apply", "-f", str(manifest)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert applied.returncode != 0 and "replicas must lie between minReplicas and maxReplicas" in applied.stderr
    wrong_arch = sandbox_manifest("odd", workerGroups=[{"arch": "sparc"}])
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        create(kube_api, namespace, "trainingsandboxes", wrong_arch)
    assert refused.value.status == 422 and "sparc" in refused.value.body
    # an instance names a family (webshop included), or a family pinned to a release; anything else is refused
    create(kube_api, namespace, "traininginstances", instance_manifest("pinned", "none", envType="bfcl@2025.10.1"))
    create(kube_api, namespace, "traininginstances", instance_manifest("shop", "none", envType="webshop"))
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        create(kube_api, namespace, "traininginstances", instance_manifest("nope", "none", envType="alfworld"))
    assert refused.value.status == 422 and "envType" in refused.value.body

    # schema-valid but unreconcilable: reported through a condition, not retried in a loop
    create(
        kube_api,
        namespace,
        "trainingsandboxes",
        sandbox_manifest("odd", imagesByArch={"arm64": "x"}, workerGroups=[{"arch": "amd64"}]),
    )
    found = kube.wait_until(
        "InvalidSpec condition",
        lambda: condition(get_cr(kube_api, namespace, "trainingsandboxes", "odd"), "Ready").get("reason")
        == "InvalidSpec"
        and get_cr(kube_api, namespace, "trainingsandboxes", "odd"),
        timeout=30,
    )
    assert "imagesByArch" in condition(found, "Ready")["message"]
    assert not custom(kube_api).list_namespaced_custom_object("ray.io", "v1", namespace, "rayclusters")["items"]


def test_instances_create_ttl_and_delete(
    operator: Path, kube_api: k8s.ApiClient, namespace: str, service: Service
) -> None:
    # an instance whose sandbox does not exist yet waits with a reason, then proceeds
    create(kube_api, namespace, "traininginstances", instance_manifest("early", "sb", ttlSeconds=600))
    kube.wait_until(
        "SandboxNotReady",
        lambda: condition(get_cr(kube_api, namespace, "traininginstances", "early"), "Ready").get("reason")
        == "SandboxNotReady",
        timeout=30,
    )
    create(kube_api, namespace, "trainingsandboxes", sandbox_manifest("sb", endpoint=service.url))
    wait_ready(kube_api, namespace, "trainingsandboxes", "sb", timeout=120)
    early = wait_ready(kube_api, namespace, "traininginstances", "early", timeout=30)
    instance_id = early["status"]["instanceId"]
    assert [m["role"] for m in early["status"]["messages"]][:2] == ["system", "user"]
    with service.client() as client:
        assert client.get(f"/v1/instances/{instance_id}").status_code == 200  # the service confirms

        # deleting the resource releases the instance (finalizer)
        custom(kube_api).delete_namespaced_custom_object(GROUP, VERSION, namespace, "traininginstances", "early")
        kube.wait_until(
            "resource gone", lambda: get_cr(kube_api, namespace, "traininginstances", "early") is None, timeout=30
        )
        assert client.get(f"/v1/instances/{instance_id}").status_code == 404

        # TTL: released within a few seconds of expiry, resource deleted (policy Delete)...
        create(kube_api, namespace, "traininginstances", instance_manifest("short", "sb", ttlSeconds=3))
        short_id = wait_ready(kube_api, namespace, "traininginstances", "short")["status"]["instanceId"]
        kube.wait_until(
            "expired and deleted",
            lambda: get_cr(kube_api, namespace, "traininginstances", "short") is None,
            timeout=3 + 10,
        )
        assert client.get(f"/v1/instances/{short_id}").status_code == 404

        # ...or kept with Expired=True (policy Retain)
        create(
            kube_api,
            namespace,
            "traininginstances",
            instance_manifest("kept", "sb", ttlSeconds=3, expiryPolicy="Retain"),
        )
        kept_id = wait_ready(kube_api, namespace, "traininginstances", "kept")["status"]["instanceId"]
        kept = kube.wait_until(
            "Expired=True",
            lambda: condition(get_cr(kube_api, namespace, "traininginstances", "kept"), "Expired").get("status")
            == "True"
            and get_cr(kube_api, namespace, "traininginstances", "kept"),
            timeout=3 + 10,
        )
        assert condition(kept, "Released")["status"] == "True" and condition(kept, "Ready")["status"] == "False"
        assert client.get(f"/v1/instances/{kept_id}").status_code == 404

        # a task the service refuses is Failed with the service's reason, not retried
        create(kube_api, namespace, "traininginstances", instance_manifest("nosuch", "sb", taskId="no_such_task"))
        failed = kube.wait_until(
            "Failed",
            lambda: condition(get_cr(kube_api, namespace, "traininginstances", "nosuch"), "Failed").get("status")
            == "True"
            and get_cr(kube_api, namespace, "traininginstances", "nosuch"),
            timeout=30,
        )
        assert "no_such_task" in condition(failed, "Failed")["message"]
