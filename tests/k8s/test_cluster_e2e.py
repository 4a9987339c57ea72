"""The cluster story on the test bed's real nodes, installed as a user would.

`helm install` of charts/trainbox (the operator as a real pod from its image, with the chart's ServiceAccount
and RBAC) with a TrainingSandbox: its RayCluster's head and workers and its front run as real pods; the SDK,
from outside the cluster, reaches the front through its NodePort and runs the reference's example, BFCL
ground-truth episodes and an AppWorld task whose data comes from a hostPath volume built by the project's
dataset builder; TrainingInstances against the sandbox carry the instance's id, messages, architecture and
last reward, and are released on deletion. Faults, scaling and roll-out on the same pods; the roll-out moves the
sandbox to the WebShop image, whose oracle then scores 1.0 from a `webshopData` hostPath.

One install serves the module (a sandbox takes minutes to come up on this machine).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from trainbox import InstanceLost, TrainboxError, TrainingSandbox, UnknownEnvironment

from tests import datasets
from tests.bfcl_replay import multi_turn_steps
from tests.webshop_oracle import first_test_goal, oracle_actions

from .cluster import Cluster
from .images import published
from .kube import wait_until
from .nodeset import NodeSet
from .operator_kit import GROUP, REPO, VERSION, condition, get_cr

# the module's install (Ready, AppWorld's pool warm) is part of its first test's time
pytestmark = [pytest.mark.k8s, pytest.mark.timeout(1800)]

CHART = REPO / "charts" / "trainbox"
RELEASE = "trainbox"
SANDBOX = "trainbox"
READY_TIMEOUT = 900.0  # images pulled, Ray started, AppWorld's pool warmed: minutes on 2 cores


@dataclass
class Installed:
    namespace: str
    endpoint: str  # the front's NodePort on the amd64 node's address, from outside the cluster
    appworld_root: Path
    ready_seconds: float


def helm(cluster: Cluster, home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}}  # fmt: skip
    result = subprocess.run(
        [str(cluster.tools.bin("helm")), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def build_appworld_data(root: Path) -> None:
    """AppWorld's data in its own format, by the project's dataset builder, readable by the pods' user."""
    datasets.dataset("appworld", "trainbox_server.envs.appworld.dataset", root)
    readable_by_pods(root)


def readable_by_pods(root: Path) -> None:
    """A hostPath the pods' unprivileged user can read: its files, and every directory on the way to it."""
    subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
    for parent in [root, *root.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)


def sandbox_status(api: k8s.ApiClient, namespace: str) -> dict[str, Any]:
    return (get_cr(api, namespace, "trainingsandboxes", SANDBOX) or {}).get("status") or {}


@pytest.fixture(scope="module")
def installed(
    request: pytest.FixtureRequest,
    k8s_cluster: Cluster,
    kube_api: k8s.ApiClient,
    real_nodes: NodeSet,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installed]:
    core = k8s.CoreV1Api(kube_api)
    namespace = f"e2e-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"trainbox.dev/test": "true"}}})
    work = tmp_path_factory.mktemp("e2e")
    appworld_root = work / "appworld"
    build_appworld_data(appworld_root)
    images = published()
    workers = [{"arch": "amd64", "replicas": 1, "minReplicas": 1, "maxReplicas": 2}]
    began = time.monotonic()
    helm(k8s_cluster, work, "install", RELEASE, str(CHART), "--namespace", namespace,
         "--set", f"operator.image={images['operator']['ref']}",
         "--set", "operator.clusterWide=false",  # other tests' sandboxes are not this operator's business
         # The operator image has both architectures; here it stays on the native node, where the module's
         # restarts of it are quick (test_chart_defaults.py lets the scheduler choose).
         "--set-json", 'operator.nodeSelector={"kubernetes.io/arch":"amd64"}',
         "--set", "sandbox.enabled=true",
         "--set", f"sandbox.image={images['appworld']['ref']}",
         "--set-json", f"sandbox.workerGroups={json.dumps(workers)}",
         "--set-json", 'sandbox.environments=["bfcl","appworld"]',
         "--set", f"sandbox.appworldData.hostPath={appworld_root}")  # fmt: skip
    try:
        wait_until(
            "the sandbox is Ready",
            lambda: condition(get_cr(kube_api, namespace, "trainingsandboxes", SANDBOX), "Ready").get("status")
            == "True",
            timeout=READY_TIMEOUT,
        )
        ready_seconds = time.monotonic() - began
        service = core.read_namespaced_service(SANDBOX, namespace)
        node_port = service.spec.ports[0].node_port
        endpoint = f"http://{real_nodes.nodes[0].net.node_ip}:{node_port}"
        print(f"\nsandbox Ready on real pods in {ready_seconds:.0f}s; endpoint {endpoint}")
        failed_before = request.session.testsfailed
        yield Installed(namespace, endpoint, appworld_root, ready_seconds)
        if request.session.testsfailed > failed_before:
            _dump(kube_api, namespace)
    except BaseException:
        _dump(kube_api, namespace)
        raise
    finally:
        uninstall(k8s_cluster, core, namespace)


def uninstall(cluster: Cluster, core: k8s.CoreV1Api, namespace: str) -> None:
    """The release and its namespace gone (best effort: a teardown never fails the test)."""
    subprocess.run([str(cluster.tools.bin("helm")), "uninstall", RELEASE, "--namespace", namespace,
                    "--wait", "--timeout=120s"], env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
                   capture_output=True, check=False, timeout=180)  # fmt: skip
    core.delete_namespace(namespace)


def _dump(api: k8s.ApiClient, namespace: str) -> None:
    """What a failed install looked like: the sandbox's status, the namespace's events (who created or deleted
    which pod, when) and each pod's state and last log lines."""
    core = k8s.CoreV1Api(api)
    print(json.dumps(sandbox_status(api, namespace), indent=1))
    events = core.list_namespaced_event(namespace).items
    for event in sorted(events, key=lambda e: str(e.last_timestamp or e.event_time or "")):
        when = event.last_timestamp or event.event_time
        print(f"{when} {event.reason} {event.involved_object.kind}/{event.involved_object.name}: {event.message}")
    for pod in core.list_namespaced_pod(namespace).items:
        print(f"--- pod {pod.metadata.name} on {pod.spec.node_name}: {pod.status.phase}")
        for cs in pod.status.container_statuses or []:
            print(f"    {cs.name}: ready={cs.ready} restarts={cs.restart_count} state={cs.state}")
            print(f"    last state: {cs.last_state}")
            for previous in (True, False) if cs.restart_count else (False,):
                try:
                    log = core.read_namespaced_pod_log(
                        pod.metadata.name, namespace, container=cs.name, tail_lines=30, previous=previous
                    )
                    print(f"    --- log{' (previous)' if previous else ''}:\n{log}")
                except ApiException as exc:
                    print(f"    (no log: {exc.status})")


def _pods(api: k8s.ApiClient, namespace: str, selector: str) -> list[k8s.V1Pod]:
    return list(k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items)


def _node_arch(api: k8s.ApiClient, node: str) -> str:
    return str(k8s.CoreV1Api(api).read_node(node).metadata.labels["kubernetes.io/arch"])


# -- 1. installed as a user would --------------------------------------------------------------------------


def test_the_operator_runs_as_a_real_pod(installed: Installed, kube_api: k8s.ApiClient, real_nodes: NodeSet) -> None:
    pods = _pods(kube_api, installed.namespace, "app.kubernetes.io/name=trainbox-operator")
    assert len(pods) == 1
    pod = pods[0]
    assert pod.status.phase == "Running" and pod.spec.node_name in {n.spec.name for n in real_nodes.nodes}
    assert pod.spec.service_account_name == f"{RELEASE}-operator"
    assert pod.spec.containers[0].image == published()["operator"]["ref"]


def _can(
    api: k8s.ApiClient, user: str, verb: str, resource: str, namespace: str | None = None, group: str = ""
) -> bool:
    attributes: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    review = {"spec": {"user": user, "resourceAttributes": attributes}}
    answer = k8s.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(answer.status.allowed)


def test_the_operator_has_least_privilege(installed: Installed, kube_api: k8s.ApiClient) -> None:
    user = f"system:serviceaccount:{installed.namespace}:{RELEASE}-operator"
    assert _can(kube_api, user, "get", "secrets", installed.namespace)  # its sandboxes' auth tokens
    assert not _can(kube_api, user, "get", "secrets", "kube-system")
    assert not _can(kube_api, user, "list", "secrets", installed.namespace)
    assert not _can(kube_api, user, "delete", "nodes")
    assert not _can(kube_api, user, "create", "pods", installed.namespace)  # KubeRay makes the Ray pods
    assert not _can(kube_api, user, "create", "clusterrolebindings", group="rbac.authorization.k8s.io")
    assert _can(kube_api, user, "create", "rayclusters", installed.namespace, group="ray.io")  # what it needs
    assert _can(kube_api, user, "patch", "deployments", installed.namespace, group="apps")


# -- 2. a sandbox on real pods -----------------------------------------------------------------------------


def test_the_sandbox_runs_on_real_pods(installed: Installed, kube_api: k8s.ApiClient) -> None:
    status = sandbox_status(kube_api, installed.namespace)
    assert status["endpoint"] == f"http://{SANDBOX}.{installed.namespace}.svc.cluster.local:8080"
    assert status["readyWorkers"]["amd64"] == 1
    assert all(c["observedGeneration"] == status["observedGeneration"] for c in status["conditions"])
    ray = _pods(kube_api, installed.namespace, f"ray.io/cluster={SANDBOX}-ray")
    kinds = sorted(p.metadata.labels["ray.io/node-type"] for p in ray)
    assert kinds == ["head", "worker"]
    for pod in ray:
        assert pod.status.phase == "Running"
        assert _node_arch(kube_api, pod.spec.node_name) == pod.spec.node_selector["kubernetes.io/arch"]
    fronts = _pods(kube_api, installed.namespace, f"trainbox.dev/sandbox={SANDBOX},app.kubernetes.io/component=front")
    assert len(fronts) == 1
    probe = fronts[0].spec.containers[0].readiness_probe.http_get
    assert probe.path == "/readyz"
    assert all(c.ready for c in fronts[0].status.container_statuses)
    # what `kubectl get tsb` shows: the Envs column reads spec.environments
    crd = k8s.ApiextensionsV1Api(kube_api).read_custom_resource_definition(f"trainingsandboxes.{GROUP}")
    columns = {c.name: c.json_path for c in crd.spec.versions[0].additional_printer_columns}
    assert columns["Envs"] == ".spec.environments"


# -- 3. a trainer against the cluster endpoint -------------------------------------------------------------


def test_the_reference_example_through_the_node_port(installed: Installed) -> None:
    with TrainingSandbox(base_url=installed.endpoint) as box:
        profile_list = box.get_env_profile(env_type="bfcl", split="train")
        init_response = box.create_instance(env_type="bfcl", task_id=profile_list[0])
        instance_id = init_response["info"]["instance_id"]
        query = init_response["state"]
        action = {"role": "assistant", "content": "[ls()]"}
        result = box.step(instance_id=instance_id, action=action)
        reward = box.evaluate(instance_id, params={"sparse": True})
        assert box.release_instance(instance_id)
    assert [m["role"] for m in query] == ["system", "user"]
    assert result["is_terminated"] is False and reward == 0.0


def _holding_host(endpoint: str) -> dict[str, Any]:
    """The one host that holds a live instance right now (the test holds exactly one)."""
    hosts = httpx.get(f"{endpoint}/v1/hosts", timeout=30).json()["hosts"]
    (host,) = [h for h in hosts if h.get("live")]
    return dict(host)


def test_bfcl_ground_truth_scores_one_on_the_amd64_worker_pod(installed: Installed, kube_api: k8s.ApiClient) -> None:
    with TrainingSandbox(base_url=installed.endpoint) as box:
        task_ids = box.get_env_profile("bfcl", "train")[:3]
        for task_id in task_ids:
            created = box.create_instance("bfcl", task_id, arch="amd64")
            instance_id = created["info"]["instance_id"]
            steps = [m for turn in multi_turn_steps(task_id) for m in turn]
            results = [box.step(instance_id, m) for m in steps]
            assert results[-1]["is_terminated"] and results[-1]["reward"] == 1.0, task_id
            assert box.evaluate(instance_id, params={"sparse": True}) == 1.0
            host = _holding_host(installed.endpoint)
            box.release_instance(instance_id)
    # the host's pod is the amd64 worker, and the node under it is amd64 (not just the label we wrote)
    pod = next(p for p in _pods(kube_api, installed.namespace, "ray.io/node-type=worker")
               if p.status.pod_ip == host["node_ip"])  # fmt: skip
    assert pod.metadata.labels["ray.io/group"] == "workers-amd64"
    assert _node_arch(kube_api, pod.spec.node_name) == "amd64" and host["machine"] == "x86_64"


def test_appworld_runs_from_the_data_volume(installed: Installed) -> None:
    with TrainingSandbox(base_url=installed.endpoint, timeout=600) as box:
        task_id = box.get_env_profile("appworld", "train")[0]
        instance_id = box.create_instance("appworld", task_id)["info"]["instance_id"]
        answer = (installed.appworld_root / "data" / "tasks" / task_id / "ground_truth" / "answer.json").read_text()
        code = f"```python\napis.supervisor.complete_task(answer={answer.strip()})\n```"
        result = box.step(instance_id, {"role": "assistant", "content": code})
        assert result["is_terminated"] and result["reward"] == 1.0
        box.release_instance(instance_id)


def test_spec_environments_choose_the_families(installed: Installed) -> None:
    environments = httpx.get(f"{installed.endpoint}/v1/environments", timeout=30).json()["environments"]
    families = {e["name"].split("@")[0] for e in environments}  # bfcl is listed with its releases
    assert families == {"appworld", "bfcl"}
    with TrainingSandbox(base_url=installed.endpoint) as box, pytest.raises(UnknownEnvironment):
        box.create_instance("webshop", "any")


# -- 4. instances as resources -----------------------------------------------------------------------------


def _instance(name: str, **spec: Any) -> dict[str, Any]:
    base = {"sandboxRef": {"name": SANDBOX}, "envType": "bfcl", "taskId": "multi_turn_base_0"}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingInstance", "metadata": {"name": name},
            "spec": {**base, **spec}}  # fmt: skip


def test_a_training_instance_carries_its_state_and_reward(installed: Installed, kube_api: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(kube_api)
    ns = installed.namespace
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "traininginstances", _instance("tin-a", arch="amd64"))

    def live() -> dict[str, Any] | None:
        found = get_cr(kube_api, ns, "traininginstances", "tin-a")
        return found if condition(found, "Ready").get("status") == "True" else None

    found = wait_until("the TrainingInstance is Ready", live, timeout=120)
    status = found["status"]
    instance_id = status["instanceId"]
    assert status["arch"] == "amd64"
    assert [m["role"] for m in status["messages"]] == ["system", "user"]
    with TrainingSandbox(base_url=installed.endpoint) as box:
        for message in [m for turn in multi_turn_steps("multi_turn_base_0") for m in turn]:
            box.step(instance_id, message)
        assert box.evaluate(instance_id, params={"sparse": True}) == 1.0
        wait_until(
            "lastReward is written",
            lambda: (get_cr(kube_api, ns, "traininginstances", "tin-a") or {}).get("status", {}).get("lastReward")
            == 1.0,
            timeout=60,
        )
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "traininginstances", "tin-a")
        wait_until("the resource is gone", lambda: get_cr(kube_api, ns, "traininginstances", "tin-a") is None, 60)
    # released by the finalizer before the resource went
    assert httpx.get(f"{installed.endpoint}/v1/instances/{instance_id}", timeout=30).status_code == 404


def test_idle_ttl_releases_with_delete_and_retain(installed: Installed, kube_api: k8s.ApiClient) -> None:
    custom = k8s.CustomObjectsApi(kube_api)
    ns = installed.namespace
    for name, policy in (("tin-del", "Delete"), ("tin-ret", "Retain")):
        body = _instance(name, ttlSeconds=5, expiryPolicy=policy)
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "traininginstances", body)
    wait_until("Delete: the resource goes", lambda: get_cr(kube_api, ns, "traininginstances", "tin-del") is None, 120)
    wait_until(
        "Retain: Expired=True",
        lambda: condition(get_cr(kube_api, ns, "traininginstances", "tin-ret"), "Expired").get("status") == "True",
        timeout=120,
    )
    retained = get_cr(kube_api, ns, "traininginstances", "tin-ret")
    assert condition(retained, "Released")["status"] == "True"
    response = httpx.get(f"{installed.endpoint}/v1/instances/{retained['status']['instanceId']}", timeout=30)
    assert response.status_code in (404, 410)


# -- 5. faults on real pods --------------------------------------------------------------------------------


def _kill(api: k8s.ApiClient, namespace: str, selector: str) -> str:
    (pod,) = _pods(api, namespace, selector)
    k8s.CoreV1Api(api).delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    return str(pod.metadata.name)


def _replaced(api: k8s.ApiClient, namespace: str, selector: str, old: str) -> k8s.V1Pod | None:
    """The pod that replaced ``old``, once it is Running and Ready."""
    for pod in _pods(api, namespace, selector):
        ready = pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or [])
        if pod.metadata.name != old and not pod.metadata.deletion_timestamp and ready:
            return pod
    return None


def _condition_history(api: k8s.ApiClient, namespace: str, kind: str, seen: list[str]) -> bool:
    seen.append(condition(get_cr(api, namespace, "trainingsandboxes", SANDBOX), kind).get("status", "?"))
    return "False" in seen and seen[-1] == "True"


def test_a_killed_worker_pod_loses_only_its_instances_and_the_sandbox_recovers(
    installed: Installed, kube_api: k8s.ApiClient
) -> None:
    ns, worker = installed.namespace, "ray.io/node-type=worker"
    with TrainingSandbox(base_url=installed.endpoint) as box:
        instance_id = box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"]
        box.step(instance_id, {"role": "assistant", "content": "[ls()]"})
        old = _kill(kube_api, ns, worker)
        seen: list[str] = []
        # the sandbox shows the dip, then the recovery (KubeRay replaces the pod)
        wait_until(
            "WorkersReady dips and recovers", lambda: _condition_history(kube_api, ns, "WorkersReady", seen), 600
        )
        with pytest.raises(InstanceLost):
            box.step(instance_id, {"role": "assistant", "content": "[pwd()]"})
        new = wait_until("the new worker pod is Ready", lambda: _replaced(kube_api, ns, worker, old), 300)
        # the service places new instances on the new pod
        created = wait_until("a create succeeds", lambda: _try_create(box), 300)
        host = _holding_host(installed.endpoint)
        assert host["node_ip"] == new.status.pod_ip
        box.release_instance(created)


def _try_create(box: TrainingSandbox) -> str | None:
    try:
        return str(box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"])
    except TrainboxError:
        return None


def test_a_killed_front_pod_is_replaced_and_live_instances_stay_reachable(
    installed: Installed, kube_api: k8s.ApiClient
) -> None:
    ns, front = installed.namespace, f"trainbox.dev/sandbox={SANDBOX},app.kubernetes.io/component=front"
    with TrainingSandbox(base_url=installed.endpoint) as box:
        task_id = "multi_turn_base_1"
        instance_id = box.create_instance("bfcl", task_id)["info"]["instance_id"]
        steps = [m for turn in multi_turn_steps(task_id) for m in turn]
        half = len(steps) // 2
        for message in steps[:half]:
            box.step(instance_id, message)
        old = _kill(kube_api, ns, front)
        wait_until("a new front pod is Ready", lambda: _replaced(kube_api, ns, front, old), 300)
        wait_until("the endpoint answers again", lambda: _answers(installed.endpoint), 120)
        for message in steps[half:]:  # the same episode goes on where it was, through the new front
            result = box.step(instance_id, message)
        assert result["is_terminated"] and result["reward"] == 1.0
        box.release_instance(instance_id)


def _answers(endpoint: str) -> bool:
    try:
        return httpx.get(f"{endpoint}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_operator_pod_resumes_without_doubles_or_leaks(installed: Installed, kube_api: k8s.ApiClient) -> None:
    ns, selector = installed.namespace, "app.kubernetes.io/name=trainbox-operator"
    custom = k8s.CustomObjectsApi(kube_api)
    before = _live(installed.endpoint)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "traininginstances", _instance("tin-op"))
    wait_until(
        "tin-op is Ready",
        lambda: condition(get_cr(kube_api, ns, "traininginstances", "tin-op"), "Ready").get("status") == "True",
        timeout=120,
    )
    old = _kill(kube_api, ns, selector)
    wait_until("a new operator pod runs", lambda: _replaced(kube_api, ns, selector, old), 300)
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "traininginstances", _instance("tin-op2"))
    wait_until(
        "tin-op2 is Ready (the new operator works)",
        lambda: condition(get_cr(kube_api, ns, "traininginstances", "tin-op2"), "Ready").get("status") == "True",
        timeout=180,
    )
    # nothing made twice: one RayCluster, one front Deployment, and the service holds exactly the two instances
    rayclusters = custom.list_namespaced_custom_object("ray.io", "v1", ns, "rayclusters")["items"]
    assert len(rayclusters) == 1
    assert len(k8s.AppsV1Api(kube_api).list_namespaced_deployment(ns, label_selector="trainbox.dev/sandbox").items) == 1
    ids = {get_cr(kube_api, ns, "traininginstances", n)["status"]["instanceId"] for n in ("tin-op", "tin-op2")}
    assert len(ids) == 2 and _live(installed.endpoint) == before + 2
    for name in ("tin-op", "tin-op2"):  # and nothing leaks: deleting them releases both
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "traininginstances", name)
    wait_until("both released", lambda: _live(installed.endpoint) == before, 120)


def _live(endpoint: str) -> int:
    return sum(h.get("live", 0) for h in httpx.get(f"{endpoint}/v1/hosts", timeout=30).json()["hosts"])


# -- 6. scale and roll-out ---------------------------------------------------------------------------------


def _patch_sandbox(api: k8s.ApiClient, namespace: str, spec: dict[str, Any]) -> None:
    k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "trainingsandboxes", SANDBOX, {"spec": spec}
    )


def _ready_workers_and_hosts(api: k8s.ApiClient, installed: Installed, count: int) -> bool:
    pods = [p for p in _pods(api, installed.namespace, "ray.io/node-type=worker") if not p.metadata.deletion_timestamp]
    ready = [p for p in pods if all(c.ready for c in p.status.container_statuses or [])]
    try:
        hosts = httpx.get(f"{installed.endpoint}/v1/hosts", timeout=10).json()["hosts"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return len(pods) == len(ready) == count and len([h for h in hosts if h.get("alive")]) == count


def test_worker_replicas_add_and_remove_real_pods_and_hosts(installed: Installed, kube_api: k8s.ApiClient) -> None:
    workers = [{"arch": "amd64", "replicas": 2, "minReplicas": 1, "maxReplicas": 2}]
    _patch_sandbox(kube_api, installed.namespace, {"workerGroups": workers})
    wait_until("2 worker pods and 2 hosts", lambda: _ready_workers_and_hosts(kube_api, installed, 2), 600)
    workers[0]["replicas"] = 1
    _patch_sandbox(kube_api, installed.namespace, {"workerGroups": workers})
    wait_until("1 worker pod and 1 host", lambda: _ready_workers_and_hosts(kube_api, installed, 1), 600)


def test_the_autoscaler_follows_the_load_within_bounds(installed: Installed, kube_api: k8s.ApiClient) -> None:
    ns = installed.namespace
    _patch_sandbox(
        kube_api, ns, {"autoscaling": {"enabled": True, "targetInstancesPerWorker": 2, "scaleDownDelaySeconds": 5}}
    )
    try:
        with TrainingSandbox(base_url=installed.endpoint) as box:
            made = [box.create_instance("bfcl", "multi_turn_base_0")["info"]["instance_id"] for _ in range(5)]
            # 5 live instances at 2 per worker ask for 3 workers: the group's maxReplicas (2) caps it
            wait_until("load raises the workers to 2", lambda: _ready_workers_and_hosts(kube_api, installed, 2), 600)
            status = sandbox_status(kube_api, ns)
            assert status["autoscaling"]["amd64"]["replicas"] == 2
            for instance_id in made:
                box.release_instance(instance_id)
        # idle: back to minReplicas (1), the least loaded pod removed
        wait_until("idleness lowers the workers to 1", lambda: _ready_workers_and_hosts(kube_api, installed, 1), 600)
    finally:
        _patch_sandbox(kube_api, ns, {"autoscaling": {"enabled": False}})


def test_changing_the_image_rolls_the_front_and_the_ray_pods(
    installed: Installed, kube_api: k8s.ApiClient, webshop_data: Path
) -> None:
    """The sandbox moves from the AppWorld image to the WebShop one (`spec.environments` bfcl + webshop, WebShop's
    generated catalogue from a hostPath through `spec.webshopData`): every pod rolls, WebShop's oracle scores 1.0
    on the new pods, and AppWorld is no longer served."""
    ns = installed.namespace
    server = published()["webshop"]["ref"]  # the server's code with WebShop's engine instead of AppWorld's
    readable_by_pods(webshop_data)
    before = {p.metadata.name for p in _pods(kube_api, ns, f"trainbox.dev/sandbox={SANDBOX}")}
    before |= {p.metadata.name for p in _pods(kube_api, ns, f"ray.io/cluster={SANDBOX}-ray")}
    _patch_sandbox(kube_api, ns, {"image": server, "environments": ["bfcl", "webshop"], "appworldData": None,
                                  "webshopData": {"hostPath": str(webshop_data)}})  # fmt: skip

    def rolled() -> bool:
        pods = _pods(kube_api, ns, f"ray.io/cluster={SANDBOX}-ray") + _pods(
            kube_api, ns, f"trainbox.dev/sandbox={SANDBOX},app.kubernetes.io/component=front"
        )
        live = [p for p in pods if not p.metadata.deletion_timestamp]
        return bool(live) and all(
            p.metadata.name not in before
            and p.spec.containers[0].image == server
            and all(c.ready for c in p.status.container_statuses or [])
            for p in live
        )

    wait_until("every Ray pod and the front run the new image", rolled, 900)
    wait_until("the sandbox is Ready again",
               lambda: condition(get_cr(kube_api, ns, "trainingsandboxes", SANDBOX), "Ready").get("status") == "True",
               timeout=600)  # fmt: skip
    wait_until("the endpoint serves", lambda: _answers(installed.endpoint), 300)
    with TrainingSandbox(base_url=installed.endpoint) as box:
        task_id = "multi_turn_base_2"
        instance_id = box.create_instance("bfcl", task_id)["info"]["instance_id"]
        for message in [m for turn in multi_turn_steps(task_id) for m in turn]:
            result = box.step(instance_id, message)
        assert result["reward"] == 1.0
        task_id, goal = first_test_goal(webshop_data)
        instance_id = box.create_instance("webshop", task_id)["info"]["instance_id"]
        for action in oracle_actions(goal):
            result = box.step(instance_id, {"role": "assistant", "content": action})
        assert result["is_terminated"] and result["reward"] == 1.0
        with pytest.raises(UnknownEnvironment):  # spec.environments now says bfcl and webshop
            box.create_instance("appworld", "any")
