"""Operator at scale: 1,000 TrainingInstance resources reconciled to Ready, then released by their TTL.

Runs the real control plane (tests/k8s: apiserver, etcd, scheduler, controller-manager, KWOK nodes, KubeRay),
the operator out of cluster, and a real trainbox service on a loopback Ray (the sandbox points at it through
``service.endpointOverride``: KWOK pods run no containers). Writes ``bench/results/operator_scale.json``.

    .venv/bin/python -m bench.operator_scale [--count 1000] [--ttl 30]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.k8s import kube
from tests.k8s.cluster import Cluster
from tests.k8s.operator_kit import (
    GROUP,
    VERSION,
    condition,
    instance_manifest,
    our_crds,
    sandbox_manifest,
    start_operator,
)
from tests.servicekit import RayCluster, start_service, stop_group

RESULTS = Path(__file__).resolve().parent / "results"
TICK = os.sysconf("SC_CLK_TCK")


def usage(pid: int) -> dict[str, float]:
    """CPU seconds so far and current / peak RSS (MiB) of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rss = int(status["VmRSS"].split()[0]) / 1024
    peak = int(status["VmHWM"].split()[0]) / 1024
    return {"cpu_s": round(cpu, 2), "rss_mib": round(rss, 1), "peak_rss_mib": round(peak, 1)}


def count_states(api: k8s.ApiClient, namespace: str) -> tuple[int, int]:
    """(resources left, of which have been Ready: an instance id, whether still live or since expired)."""
    items = k8s.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, "traininginstances")[
        "items"
    ]
    ready = sum(bool((i.get("status") or {}).get("instanceId")) for i in items)
    return len(items), ready


def wait_for(what: str, probe: Any, limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if probe():
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reached in {limit:.0f} s")


def run(count: int, ttl: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tb-opscale-"))
    ray = RayCluster.start(archs=("amd64",))
    service = start_service(ray.address)
    cluster = Cluster(work / "k8s")
    cluster.start()
    operator = None
    try:
        with kube.client(cluster.kubeconfig) as api:
            crds = our_crds()
            kube.install_crds(api, crds)
            kube.wait_until("CRDs", lambda: kube.crds_established(api, crds), timeout=60)
            operator = start_operator(cluster.kubeconfig, work / "operator.log")
            namespace = "scale"
            k8s.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
            objects = k8s.CustomObjectsApi(api)
            objects.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "trainingsandboxes", sandbox_manifest("sb", endpoint=service.url)
            )

            def sandbox_ready() -> bool:
                found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "trainingsandboxes", "sb")
                return condition(found, "Ready").get("status") == "True"

            kube.wait_until("sandbox Ready", sandbox_ready, timeout=180)
            pids = {"kube-apiserver": cluster.processes["kube-apiserver"].popen.pid, "operator": operator.pid}
            before = {name: usage(pid) for name, pid in pids.items()}
            print(f"creating {count} TrainingInstances ...", flush=True)
            start = time.monotonic()

            def make(i: int) -> None:
                body = instance_manifest(f"i-{i:05d}", "sb", taskId=f"multi_turn_base_{i % 200}", ttlSeconds=ttl)
                objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "traininginstances", body)

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(make, range(count)))
            submitted = time.monotonic() - start
            ready_s = wait_for("all Ready", lambda: count_states(api, namespace)[1] == count, 600) + submitted
            at_ready = {name: usage(pid) for name, pid in pids.items()}
            print(f"all {count} Ready after {ready_s:.1f} s; waiting for TTL release ...", flush=True)
            released_s = wait_for("all released", lambda: count_states(api, namespace)[0] == 0, ttl + 600)
            after = {name: usage(pid) for name, pid in pids.items()}
            with service.client() as http:
                live = sum(h["live"] for h in http.get("/v1/hosts").json()["hosts"] if h["alive"])
    finally:
        if operator is not None:
            stop_group(operator)
        cluster.stop()
        service.stop()
        ray.stop()
    return {
        "count": count,
        "ttl_seconds": ttl,
        "submit_seconds": round(submitted, 2),
        "all_ready_seconds": round(ready_s, 2),
        "all_released_after_ready_seconds": round(released_s, 2),
        "service_live_after_release": live,
        "usage": {
            name: {
                "cpu_s_create_phase": round(at_ready[name]["cpu_s"] - before[name]["cpu_s"], 2),
                "cpu_s_ttl_phase": round(after[name]["cpu_s"] - at_ready[name]["cpu_s"], 2),
                "rss_mib_before": before[name]["rss_mib"],
                "rss_mib_at_ready": at_ready[name]["rss_mib"],
                "peak_rss_mib": after[name]["peak_rss_mib"],
            }
            for name in pids
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--ttl", type=int, default=30)
    args = parser.parse_args()
    result = run(args.count, args.ttl)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "operator_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
