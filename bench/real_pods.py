"""Real-pod figures on the test bed's real nodes: `helm install` of the chart with a sandbox on the amd64 node →
the sandbox Ready (operator pod, Ray head and worker pods, front pod all started from the registry's images),
then TrainingInstances applied one after another → each Ready (created through the sandbox's service); then
the chart's defaults (an amd64 and an arm64 worker, the operator wherever the scheduler puts it) → Ready.

    python -m bench.real_pods [--instances 10]

Starts its own control plane and real node (nothing else may run one at the same time), tears them down,
writes bench/results/real_pods.json. Needs `make images-for-tests` and `make k8s-tools`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from kubernetes import client as k8s

from tests.k8s import kube
from tests.k8s.cluster import Cluster
from tests.k8s.images import published
from tests.k8s.nodeset import NodeSet
from tests.k8s.operator_kit import GROUP, VERSION, condition, get_cr
from tests.k8s.test_cluster_e2e import CHART, RELEASE, SANDBOX, helm

OUT = Path(__file__).parent / "results" / "real_pods.json"


def _ready(api: k8s.ApiClient, namespace: str, plural: str, name: str) -> bool:
    return condition(get_cr(api, namespace, plural, name), "Ready").get("status") == "True"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tbx-realpods-"))
    cluster = Cluster(work / "k8s")
    began = time.monotonic()
    cluster.start()
    nodes = NodeSet(cluster).start()
    bed_seconds = time.monotonic() - began
    try:
        with kube.client(cluster.kubeconfig) as api:
            namespace = f"bench-{secrets.token_hex(3)}"
            k8s.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
            images = published()
            workers = [{"arch": "amd64", "replicas": 1, "minReplicas": 1, "maxReplicas": 1}]
            applied = time.monotonic()
            helm(cluster, work, "install", RELEASE, str(CHART), "--namespace", namespace,
                 "--set", f"operator.image={images['operator']['ref']}", "--set", "operator.clusterWide=false",
                 "--set-json", 'operator.nodeSelector={"kubernetes.io/arch":"amd64"}',
                 "--set", "sandbox.enabled=true", "--set", f"sandbox.image={images['server']['ref']}",
                 "--set-json", f"sandbox.workerGroups={json.dumps(workers)}")  # fmt: skip
            kube.wait_until("the sandbox is Ready", lambda: _ready(api, namespace, "trainingsandboxes", SANDBOX), 900)
            sandbox_seconds = time.monotonic() - applied
            custom = k8s.CustomObjectsApi(api)
            instance_seconds = []
            for i in range(args.instances):
                spec = {"sandboxRef": {"name": SANDBOX}, "envType": "bfcl", "taskId": "multi_turn_base_0"}
                body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingInstance",
                        "metadata": {"name": f"b{i}"}, "spec": spec}  # fmt: skip
                start = time.monotonic()
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "traininginstances", body)
                kube.wait_until(f"b{i} Ready", lambda i=i: _ready(api, namespace, "traininginstances", f"b{i}"), 120)
                instance_seconds.append(time.monotonic() - start)
            defaults = _chart_defaults(cluster, api, work, namespace)
            result = {
                "what": "helm install (operator + sandbox, 1 amd64 worker) to Ready on real pods; "
                "TrainingInstance to Ready; then the chart's defaults (an amd64 and an arm64 worker) to Ready",
                "test_bed_start_s": round(bed_seconds, 1),
                "sandbox_apply_to_ready_s": round(sandbox_seconds, 1),
                "instance_apply_to_ready_s": {
                    "n": len(instance_seconds),
                    "p50": round(statistics.median(instance_seconds), 3),
                    "max": round(max(instance_seconds), 3),
                },
                "chart_defaults": defaults,
                "note": "a fresh test bed: every image is pulled from the loopback registry during the install",
                "load_average_1m": round(float(Path("/proc/loadavg").read_text().split()[0]), 2),
            }
    finally:
        nodes.stop()
        cluster.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _chart_defaults(cluster: Cluster, api: k8s.ApiClient, work: Path, first: str) -> dict[str, object]:
    """The first release uninstalled, then exactly `helm install trainbox charts/trainbox --set
    sandbox.enabled=true` (in a fresh namespace): seconds to a Ready sandbox with an amd64 and an arm64 worker
    pod (the arm64 one under qemu-user; its image is pulled during the install), and where the operator landed."""
    helm(cluster, work, "uninstall", RELEASE, "--namespace", first, "--wait", "--timeout=300s")
    namespace = f"bench-{secrets.token_hex(3)}"
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    applied = time.monotonic()
    helm(cluster, work, "install", RELEASE, str(CHART), "--set", "sandbox.enabled=true", "--namespace", namespace)
    kube.wait_until("the default sandbox is Ready", lambda: _ready(api, namespace, "trainingsandboxes", SANDBOX), 1200)
    seconds = time.monotonic() - applied
    status = get_cr(api, namespace, "trainingsandboxes", SANDBOX)["status"]
    (operator,) = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=trainbox-operator").items
    arch = core.read_node(operator.spec.node_name).metadata.labels["kubernetes.io/arch"]
    return {"apply_to_ready_s": round(seconds, 1), "ready_workers": status.get("readyWorkers"), "operator_on": arch}


if __name__ == "__main__":
    raise SystemExit(main())
