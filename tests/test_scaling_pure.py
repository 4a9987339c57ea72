"""The operator's autoscaler and roll-out decisions (pure)."""

from __future__ import annotations

from typing import Any

from trainbox_operator import desired, scaling

GROUP = {"arch": "amd64", "replicas": 1, "minReplicas": 1, "maxReplicas": 3}
POLICY = scaling.Policy(enabled=True, target_per_worker=10, down_delay=30)


def test_load_scales_up_at_once_within_the_bounds() -> None:
    assert scaling.decide(GROUP, 25, None, 0, POLICY) == {"replicas": 3, "lowSince": None}
    assert scaling.decide(GROUP, 500, None, 0, POLICY)["replicas"] == 3  # never above max
    assert scaling.decide(GROUP, 0, None, 0, POLICY)["replicas"] == 1  # never below min


def test_idleness_scales_down_one_step_after_the_delay() -> None:
    state: dict[str, Any] = {"replicas": 3, "lowSince": None}
    state = scaling.decide(GROUP, 0, state, 100, POLICY)
    assert state == {"replicas": 3, "lowSince": 100}  # low since now: wait
    assert scaling.decide(GROUP, 0, state, 120, POLICY) == state  # not long enough
    state = scaling.decide(GROUP, 0, state, 130, POLICY)
    assert state == {"replicas": 2, "lowSince": 130}  # one step, and the clock starts again
    assert scaling.decide(GROUP, 15, state, 140, POLICY) == {"replicas": 2, "lowSince": None}  # load is back


def test_no_answer_from_the_service_keeps_the_count() -> None:
    assert scaling.decide(GROUP, None, {"replicas": 2, "lowSince": 5}, 99, POLICY) == {"replicas": 2, "lowSince": 5}


def test_no_answer_keeps_what_the_raycluster_runs_even_when_the_status_lags() -> None:
    """The status patch lands after the children are applied: a round may read the state of the round before
    (1) while the RayCluster already runs the scale-up (2). Without the service's answer nothing changes."""
    assert scaling.decide(GROUP, None, {"replicas": 1, "lowSince": None}, 9, POLICY, running=2) == {
        "replicas": 2,
        "lowSince": None,
    }
    assert scaling.decide(GROUP, None, None, 9, POLICY, running=2)["replicas"] == 2  # just enabled


def test_a_newly_enabled_autoscaler_starts_from_what_runs() -> None:
    assert scaling.decide(GROUP, 0, None, 50, POLICY, running=3) == {"replicas": 3, "lowSince": 50}  # wait first
    assert scaling.decide(GROUP, 0, None, 50, POLICY) == {"replicas": 1, "lowSince": None}  # no RayCluster yet


def test_an_unknown_load_never_removes_a_pod() -> None:
    """Seen on real pods: 5 instances on pod "l", the autoscaler raised the group to 2 (pod "c" starting), the
    next round could not ask the service and read the lagging status (1) — and removed the loaded pod."""
    spec = _spec(True)
    raycluster = {"spec": {"workerGroupSpecs": [{"groupName": "workers-amd64", "replicas": 2}]}}
    lagging = {"autoscaling": {"amd64": {"replicas": 1, "lowSince": None}}}
    runs = scaling.running(raycluster, "amd64")
    state = scaling.decide(GROUP, None, lagging["autoscaling"]["amd64"], 9, POLICY, runs)
    status = {"autoscaling": {"amd64": state}}
    assert scaling.replicas(spec, status, "amd64") == 2
    loaded = [_pod("l", "198.18.16.101")]
    assert scaling.deletions(spec, status, raycluster, loaded, None) == {}
    assert scaling.deletions(spec, lagging, raycluster, loaded, None) == {}  # even with the stale count
    assert scaling.running(raycluster, "arm64") is None and scaling.running(None, "amd64") is None


def _spec(enabled: bool) -> dict[str, Any]:
    return {"image": "i", "workerGroups": [dict(GROUP)], "autoscaling": {"enabled": enabled}}


def test_the_raycluster_follows_the_autoscaler_only_when_it_is_on() -> None:
    status = {"autoscaling": {"amd64": {"replicas": 3}}}
    assert scaling.replicas(_spec(True), status, "amd64") == 3
    assert scaling.replicas(_spec(False), status, "amd64") == 1


def _pod(name: str, ip: str, group: str = "workers-amd64", image: str = "i") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"ray.io/group": group}}, "status": {"podIP": ip},
            "spec": {"containers": [{"image": image}]}}  # fmt: skip


def test_scale_down_removes_the_least_loaded_pods() -> None:
    pods = [_pod("a", "198.18.16.101"), _pod("b", "198.18.16.102"), _pod("c", "198.18.16.103")]
    raycluster = {"spec": {"workerGroupSpecs": [{"groupName": "workers-amd64", "replicas": 3}]}}
    status = {"autoscaling": {"amd64": {"replicas": 1}}}
    live = {"198.18.16.101": 7, "198.18.16.102": 0, "198.18.16.103": 2}
    assert scaling.deletions(_spec(True), status, raycluster, pods, live) == {"amd64": ["b", "c"]}
    assert scaling.deletions(_spec(False), status, raycluster, pods, live) == {}


def test_pods_on_another_image_are_stale() -> None:
    spec = {"image": "new", "imagesByArch": {"arm64": "new-arm"}, "workerGroups": []}
    pods = [_pod("head", "", group="headgroup", image="old"), _pod("w1", "", image="new"),
            _pod("w2", "", group="workers-arm64", image="new")]  # fmt: skip
    assert desired.stale_ray_pods(spec, pods) == ["head", "w2"]
