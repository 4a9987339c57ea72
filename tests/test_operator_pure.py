"""Table-driven tests of the operator's pure decisions: desired children, status, instance lifecycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trainbox
from trainbox_operator import conditions as c
from trainbox_operator import desired, instances, status
from trainbox_operator.errors import InvalidSpec


def sandbox(**spec: Any) -> dict[str, Any]:
    base = {
        "image": "trainbox/server:t",
        "workerGroups": [{"arch": "amd64", "replicas": 2}, {"arch": "arm64", "replicas": 1}],
        "service": {"replicas": 1, "port": 8080},
    }
    return {
        "apiVersion": "trainbox.dev/v1alpha1",
        "kind": "TrainingSandbox",
        "metadata": {"name": "sb", "namespace": "ns", "uid": "u-1", "generation": 3},
        "spec": {**base, **spec},
        "status": {},
    }


def test_children_are_owned_and_labelled() -> None:
    body = sandbox()
    kinds = [(child["kind"], child["metadata"]["name"]) for child in desired.children(body)]
    assert kinds == [("RayCluster", "sb-ray"), ("Deployment", "sb-front"), ("Service", "sb")]
    for child in desired.children(body):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == "u-1" and owner["controller"] is True
        assert child["metadata"]["labels"][desired.SANDBOX_LABEL] == "sb"


def test_worker_groups_are_pinned_to_their_architecture() -> None:
    body = sandbox(imagesByArch={"arm64": "trainbox/server:arm"})
    groups = {g["groupName"]: g for g in desired.raycluster(body)["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"workers-amd64", "workers-arm64"}
    for arch in ("amd64", "arm64"):
        group = groups[f"workers-{arch}"]
        assert group["template"]["spec"]["nodeSelector"] == {"kubernetes.io/arch": arch}
        assert group["labels"] == {"trainbox.dev/arch": arch}
    assert groups["workers-arm64"]["template"]["spec"]["containers"][0]["image"] == "trainbox/server:arm"
    assert groups["workers-amd64"]["replicas"] == 2


def test_worker_pods_can_sandbox_model_code_without_privileges() -> None:
    for group in desired.raycluster(sandbox())["spec"]["workerGroupSpecs"]:
        security = group["template"]["spec"]["containers"][0]["securityContext"]
        assert security["runAsNonRoot"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "Unconfined"}  # user namespaces for bubblewrap


def test_front_gets_ttl_defaults_and_auth() -> None:
    body = sandbox(instanceDefaults={"idleTTLSeconds": 60}, authSecretRef={"name": "tok"})
    env = {e["name"]: e for e in desired.front_deployment(body)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRAINBOX_IDLE_TTL"]["value"] == "60"
    assert env["TRAINBOX_RAY_ADDRESS"]["value"] == "sb-ray-head-svc.ns.svc.cluster.local:6379"
    assert env["TRAINBOX_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "tok", "key": "token"}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"imagesByArch": {"arm64": "x"}, "workerGroups": [{"arch": "amd64"}]}, "imagesByArch"),
        ({"service": {"replicas": 0}}, "nothing would serve"),
    ],
)
def test_invalid_specs(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidSpec, match=says):
        desired.children(sandbox(**spec))


def test_endpoint_override() -> None:
    assert desired.endpoint(sandbox()) == "http://sb.ns.svc.cluster.local:8080"
    assert desired.endpoint(sandbox(service={"endpointOverride": "http://127.0.0.1:9/"})) == "http://127.0.0.1:9"


def pod(group: str, ready: bool, phase: str = "Running") -> dict[str, Any]:
    cond = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": {"labels": {"ray.io/group": group}}, "status": {"phase": phase, "conditions": cond}}


READY_RAY = {"status": {"state": "ready"}}
READY_DEPLOY = {"status": {"readyReplicas": 1}}


@pytest.mark.parametrize(
    ("observed", "ready", "reason"),
    [
        (status.Observed(None, READY_DEPLOY, []), False, "RayClusterMissing"),
        (status.Observed({"status": {"state": "suspended"}}, READY_DEPLOY, []), False, "RayClusterPending"),
        (
            status.Observed(READY_RAY, READY_DEPLOY, [pod("workers-amd64", True), pod("workers-arm64", True)]),
            False,
            "WorkersPending",
        ),
        (
            status.Observed(READY_RAY, {"status": {}}, [pod("workers-amd64", True)] * 2 + [pod("workers-arm64", True)]),
            False,
            "FrontPending",
        ),
        (
            status.Observed(READY_RAY, READY_DEPLOY, [pod("workers-amd64", True)] * 2 + [pod("workers-arm64", True)]),
            True,
            "AllReady",
        ),
    ],
)
def test_sandbox_status(observed: status.Observed, ready: bool, reason: str) -> None:
    computed = status.sandbox_status(sandbox(), observed, "http://x", "2026-01-01T00:00:00Z")
    condition = c.get(computed["conditions"], c.READY)
    assert condition is not None
    assert (condition["status"] == "True", condition["reason"]) == (ready, reason)
    assert computed["observedGeneration"] == 3


def test_ready_workers_counts_only_ready_pods_of_each_group() -> None:
    pods = [pod("workers-amd64", True), pod("workers-amd64", False), pod("workers-arm64", True, phase="Pending")]
    assert status.ready_workers(sandbox()["spec"], pods) == {"amd64": 1, "arm64": 0}


def test_condition_transition_time_moves_only_on_flips() -> None:
    first = c.merge(None, [c.condition("Ready", False, "A")], 1, "t1")
    same = c.merge(first, [c.condition("Ready", False, "B")], 2, "t2")
    flipped = c.merge(same, [c.condition("Ready", True, "C")], 2, "t3")
    assert [x["lastTransitionTime"] for x in (first[0], same[0], flipped[0])] == ["t1", "t1", "t3"]
    assert same[0]["reason"] == "B" and same[0]["observedGeneration"] == 2


NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stat", "action"),
    [
        ({}, instances.Action.CREATE),
        ({"instanceId": "i", "expiresAt": c.now_iso(NOW + timedelta(seconds=5))}, instances.Action.WAIT),
        ({"instanceId": "i", "expiresAt": c.now_iso(NOW)}, instances.Action.CHECK_EXPIRY),
        ({"instanceId": "i", "conditions": [c.condition("Released", True, "TTLExpired")]}, instances.Action.DONE),
        ({"conditions": [c.condition("Failed", True, "CreateFailed")]}, instances.Action.DONE),
    ],
)
def test_instance_next_action(stat: dict[str, Any], action: instances.Action) -> None:
    assert instances.next_action(stat, NOW) is action


def test_instance_create_request_is_deterministic() -> None:
    body = {"metadata": {"uid": "abc"}, "spec": {"envType": "bfcl", "taskId": "t", "ttlSeconds": 9, "arch": "arm64"}}
    request = instances.create_request(body)
    assert request["instance_id"] == "tin-abc" and request["idle_ttl"] == 9 and request["arch"] == "arm64"


def test_messages_are_capped() -> None:
    messages, truncated = instances.capped_messages([{"role": "system", "content": "x" * 10_000, "extra": 1}])
    assert truncated and len(messages[0]["content"]) < 4200 and "extra" not in messages[0]
    assert instances.capped_messages([{"role": "user", "content": "hi"}]) == (
        [{"role": "user", "content": "hi"}],
        False,
    )


def test_ray_pods_get_tcp_probes_so_kuberay_injects_none() -> None:
    spec = desired.raycluster(sandbox())["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["readinessProbe"]["tcpSocket"] == {"port": 6379}
    for group in spec["workerGroupSpecs"]:
        worker = group["template"]["spec"]["containers"][0]
        assert worker["readinessProbe"]["tcpSocket"] == {"port": desired.RAYLET_PORT}
        assert group["rayStartParams"]["node-manager-port"] == str(desired.RAYLET_PORT)
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_ray_pods_do_not_sit_out_the_default_grace_period() -> None:
    """`ray start --block` drains on SIGTERM and was still running 5 s later on real pods: without a short grace
    a deleted Ray pod may hold its place for Kubernetes' default 30 s. The front keeps the default."""
    spec = desired.raycluster(sandbox())["spec"]
    pods = [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]
    assert [pod["terminationGracePeriodSeconds"] for pod in pods] == [desired.RAY_POD_GRACE_SECONDS] * len(pods)
    assert desired.RAY_POD_GRACE_SECONDS <= 10
    front = desired.front_deployment(sandbox())["spec"]["template"]["spec"]
    assert "terminationGracePeriodSeconds" not in front


@pytest.mark.parametrize(
    ("data", "source"),
    [
        ({"hostPath": "/srv/aw"}, {"hostPath": {"path": "/srv/aw", "type": "Directory"}}),
        ({"claimName": "aw"}, {"persistentVolumeClaim": {"claimName": "aw", "readOnly": True}}),
    ],
)
def test_appworld_data_reaches_the_workers_and_the_front_says_where(data: dict, source: dict) -> None:
    body = sandbox(appworldData=data, environments=["bfcl", "appworld"])
    for group in desired.raycluster(body)["spec"]["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        assert pod["volumes"] == [{"name": "appworld-data", **source}]
        mount = pod["containers"][0]["volumeMounts"][0]
        assert mount == {"name": "appworld-data", "mountPath": "/data/appworld", "readOnly": True}
    env = {
        e["name"]: e.get("value")
        for e in desired.front_deployment(body)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TRAINBOX_ENVIRONMENTS"] == "bfcl,appworld"
    assert env["TRAINBOX_RAY_JOIN_AS_NODE"] == "true"
    assert json.loads(env["TRAINBOX_FAMILIES"]) == {"appworld": {"env": {"APPWORLD_ROOT": "/data/appworld"}}}


def test_webshop_data_beside_appworld_data() -> None:
    body = sandbox(appworldData={"claimName": "aw"}, webshopData={"hostPath": "/srv/ws"})
    pod = desired.raycluster(body)["spec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["appworld-data", "webshop-data"]
    assert pod["volumes"][1]["hostPath"] == {"path": "/srv/ws", "type": "Directory"}
    assert pod["containers"][0]["volumeMounts"][1] == {
        "name": "webshop-data",
        "mountPath": "/data/webshop",
        "readOnly": True,
    }
    env = {
        e["name"]: e.get("value")
        for e in desired.front_deployment(body)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env["TRAINBOX_FAMILIES"]) == {
        "appworld": {"env": {"APPWORLD_ROOT": "/data/appworld"}},
        "webshop": {"env": {"WEBSHOP_ROOT": "/data/webshop"}},
    }


def test_no_appworld_data_no_volume() -> None:
    body = sandbox()
    pod = desired.raycluster(body)["spec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert "volumes" not in pod
    env = {
        e["name"]: e.get("value")
        for e in desired.front_deployment(body)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert "TRAINBOX_FAMILIES" not in env and env["TRAINBOX_ENVIRONMENTS"] == "bfcl"


@pytest.mark.parametrize(
    ("override", "ready", "answers", "expected"),
    [
        (None, 0, None, ("False", "FrontPending")),
        (None, 1, None, ("True", "FrontReady")),  # out of cluster: replicas decide
        (None, 1, False, ("False", "EndpointUnreachable")),  # in cluster: the endpoint must answer too
        (None, 1, True, ("True", "FrontReady")),
        (None, 0, True, ("False", "FrontPending")),
        ("http://x:1", 0, True, ("True", "FrontReady")),
        ("http://x:1", 0, False, ("False", "EndpointUnreachable")),
    ],
)
def test_front_condition(override: str | None, ready: int, answers: bool | None, expected: tuple) -> None:
    spec = sandbox(service={"replicas": 1, "endpointOverride": override} if override else {"replicas": 1})["spec"]
    observed = status.Observed(deployment={"status": {"readyReplicas": ready}}, front_answers=answers)
    got = status.front_condition(spec, observed)
    assert (got["status"], got["reason"]) == expected


def test_a_live_instance_syncs_its_reward_and_deadline() -> None:
    body = {"metadata": {"generation": 1}, "status": {"instanceId": "i", "expiresAt": "2026-01-01T00:00:00Z"}}
    same = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert instances.synced_status(body, {"last_reward": None, "expires_at": same}) is None
    new = instances.synced_status(body, {"last_reward": 1.0, "expires_at": same + 60})
    assert new == {"lastReward": 1.0, "expiresAt": "2026-01-01T00:01:00Z"}
    body["status"]["lastReward"] = 1.0
    assert instances.synced_status(body, {"last_reward": 1.0, "expires_at": same}) is None


def test_created_status_carries_the_hosts_architecture() -> None:
    body = {"metadata": {"generation": 1}, "status": {}}
    made = {"instance_id": "i", "state": [{"role": "user", "content": "q"}], "expires_at": 0, "arch": "arm64"}
    assert instances.created_status(body, made, "2026-01-01T00:00:00Z")["arch"] == "arm64"


def test_the_front_runs_where_the_head_does() -> None:
    for groups, arch in (([{"arch": "arm64"}, {"arch": "amd64"}], "amd64"), ([{"arch": "arm64"}], "arm64")):
        body = sandbox(workerGroups=groups)
        front = desired.front_deployment(body)["spec"]["template"]["spec"]
        head = desired.raycluster(body)["spec"]["headGroupSpec"]["template"]["spec"]
        assert front["nodeSelector"] == head["nodeSelector"] == {"kubernetes.io/arch": arch}


LIVE = {"instance_id": "tin-u", "expires_at": 0, "arch": "amd64", "steps": 0}  # GET /v1/instances/{id}


@pytest.mark.parametrize(
    ("error", "adopted", "ready", "reason", "failed"),
    [
        (trainbox.UnknownTask("no such task"), None, False, "Failed", True),
        (trainbox.BadRequest("params.x: bad"), None, False, "Failed", True),
        (trainbox.UnavailableArchitecture("no arm64 host"), None, False, "Failed", True),
        (trainbox.Busy("full", retry_after=1), None, False, "ServiceError", False),
        (trainbox.ConnectError("refused"), None, False, "ServiceError", False),
        (trainbox.InstanceLost("worker died"), None, False, "ServiceError", False),
        # an earlier attempt of the same create: adopted when the service has it, else still in flight
        (trainbox.DuplicateInstance("tin-u is in use"), None, False, "Creating", False),
        (trainbox.DuplicateInstance("tin-u is in use"), LIVE, True, "Created", False),
    ],
)
def test_a_failed_create_fails_waits_or_adopts(
    error: trainbox.TrainboxError, adopted: dict | None, ready: bool, reason: str, failed: bool
) -> None:
    body = {"metadata": {"generation": 1}, "status": {}}
    new = instances.failed_create_status(body, error, adopted, "2026-01-01T00:00:00Z")
    assert c.is_true(new["conditions"], c.READY) is ready
    assert c.get(new["conditions"], c.READY)["reason"] == reason
    assert c.is_true(new["conditions"], c.FAILED) is failed
    assert (new.get("instanceId"), new.get("messages")) == (("tin-u", []) if ready else (None, None))
    assert instances.next_action(new, datetime(2026, 1, 1, tzinfo=UTC)) is (
        instances.Action.DONE if failed else instances.Action.CREATE if not ready else instances.Action.CHECK_EXPIRY
    )
