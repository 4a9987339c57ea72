"""Start and stop the real nodes of a running control plane, with kube-proxy and CoreDNS.

`NodeSet(cluster).start()` brings up the host network (network.py), then per node a containerd and a kubelet
(nodes.py), one kube-proxy for the machine (all nodes share the host's network namespace, so one iptables
data path serves them all), and CoreDNS as a Deployment behind the `kube-dns` Service. `stop()` drains the
nodes through the API, stops every process, and removes what is left: mounts, network namespaces, the
bridges and filter rule, cgroups and log links. `leftovers()` lists whatever would still remain.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from . import dns, kube
from .cluster import Cluster
from .components import ClusterError, Process, free_port, stop_pids
from .images import published
from .network import CLUSTER_RANGE, FORWARD_CHAIN, POD_RANGE, HostNetwork, kube_chains
from .nodes import NodeSpec, RealNode, default_specs, write_kubeconfig
from .pki import issue

__all__ = ["NodeSet"]

NETNS_DIR = Path("/run/netns")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
# The arm64 kubelet and containerd start under emulation: Ready in ~25 s, but once in a while (seen in CI) the
# emulated kubelet registers its node and then stalls for minutes. It gets this long, then one restart, then
# READY_TIMEOUT again.
STALL_TIMEOUT = 90.0
READY_TIMEOUT = 240.0
APIGATE = Path(__file__).with_name("apigate.py")
GATE_PORT = 6443


class NodeSet:
    """Real nodes (and, unless told otherwise, kube-proxy and CoreDNS) added to `cluster`."""

    def __init__(
        self,
        cluster: Cluster,
        specs: tuple[NodeSpec, ...] | None = None,
        *,
        services: bool = True,
        tag: str = "nodes",
    ) -> None:
        self.cluster = cluster
        self.specs = specs if specs is not None else default_specs()
        self.services = services
        self.work = cluster.work / tag
        images = published()
        self.images = images
        self.nodes = [
            RealNode(s, self.work / s.name, cluster.tools, images["registry"], images["pause"]["ref"])
            for s in self.specs
        ]
        self.network = HostNetwork([n.net for n in self.nodes], machine_wide=services)
        self.processes: dict[str, Process] = {}
        self._netns_before: set[str] = set()
        self.timeline: list[tuple[str, float]] = []

    # -- start ---------------------------------------------------------------------------------------------
    def start(self) -> NodeSet:
        began = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        self._netns_before = _netns()
        # Kept on disk too: `cluster down` (another process) cleans up after `cluster up`.
        (self.work / "netns-before.json").write_text(json.dumps(sorted(self._netns_before)))
        port, pki = self.cluster.apiserver_port, self.cluster.pki
        if pki is None:
            raise ClusterError("start the control plane before its nodes")
        try:
            self.network.up()
            for node in self.nodes:
                node.prepare(pki, port)
                name, argv = next(iter(node.argv().items()))
                self._launch(name, argv, node.env())
            for node in self.nodes:
                self._wait(f"{node.spec.name} containerd socket", node.socket.exists, 60)
                name, argv = list(node.argv().items())[1]
                self._launch(name, argv, node.env())
            if self.services:
                self._launch("kube-proxy", self._kube_proxy_argv(port))
                gate = self.nodes[0].net.node_ip
                self._launch(
                    "apiserver-gateway", [sys.executable, str(APIGATE), gate, str(GATE_PORT), "127.0.0.1", str(port)]
                )
            with kube.client(self.cluster.kubeconfig) as api:
                self._wait_ready(api)
                if self.services:
                    point_kubernetes_service(api, gate, GATE_PORT)
                    dns.deploy(api, self.cluster, self.images["coredns"]["ref"], self.nodes[0])
                    self._wait("CoreDNS ready", lambda: dns.ready(api), 120)
        except BaseException:
            self.stop()
            raise
        self.timeline.append(("real nodes ready", time.monotonic() - began))
        return self

    def _wait_ready(self, api: k8s.ApiClient) -> None:
        """Every node Ready; a kubelet that stalls past STALL_TIMEOUT is restarted once (its containerd stays)."""
        try:
            self._wait("real nodes Ready", lambda: not self._not_ready(api), STALL_TIMEOUT)
            return
        except ClusterError:
            stalled = self._not_ready(api)
        for spec in (s for s in self.specs if s.name in stalled):
            why = f"not Ready after {STALL_TIMEOUT:.0f}s ({stalled[spec.name]})"
            print(f"node {spec.name} {why}: restarting its kubelet", file=sys.stderr)
            self._restart(f"kubelet-{spec.arch}")
        try:
            self._wait("real nodes Ready after a kubelet restart", lambda: not self._not_ready(api), READY_TIMEOUT)
        except ClusterError as exc:
            raise ClusterError(f"{exc}\nnodes not Ready: {self._not_ready(api)}") from None

    def _not_ready(self, api: k8s.ApiClient) -> dict[str, str]:
        """The nodes that are not Ready yet, each with what its conditions and taints say."""
        core, waiting = k8s.CoreV1Api(api), {}
        for spec in self.specs:
            try:
                node = core.read_node(spec.name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                waiting[spec.name] = "not registered"
                continue
            conditions = node.status.conditions or []
            taints = [t.key for t in node.spec.taints or [] if t.key == "node.kubernetes.io/not-ready"]
            if taints or not any(c.type == "Ready" and c.status == "True" for c in conditions):
                said = [f"{c.type}={c.status} {c.reason or ''}: {c.message or ''}" for c in conditions]
                waiting[spec.name] = "; ".join(said + taints) or "no conditions yet"
        return waiting

    def _restart(self, name: str) -> None:
        proc = self.processes[name]
        stop_pids({proc.pid: None}, [proc.popen] if proc.popen else [])
        self._launch(name, proc.argv, proc.env)

    def _kube_proxy_argv(self, port: int) -> list[str]:
        work = self.work / "kube-proxy"
        work.mkdir(parents=True, exist_ok=True)
        pki = self.cluster.pki
        assert pki is not None
        cert, key = issue(pki, "kube-proxy", "system:kube-proxy")
        write_kubeconfig(work / "kubeconfig", pki.ca_cert, cert, key, port)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(work / "kubeconfig")},
            "mode": "iptables",
            "clusterCIDR": POD_RANGE,
            "hostnameOverride": self.specs[0].name,
            "healthzBindAddress": f"127.0.0.1:{free_port()}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            "nodePortAddresses": [CLUSTER_RANGE],
            # Leave the machine's conntrack settings alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"masqueradeAll": False, "minSyncPeriod": "0s", "syncPeriod": "30s"},
        }
        (work / "config.yaml").write_text(json.dumps(config, indent=2))
        return [str(self.cluster.tools.bin("kube-proxy")), f"--config={work / 'config.yaml'}", "--v=1"]

    def _launch(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.cluster.logs.mkdir(parents=True, exist_ok=True)
        proc = Process(name, argv, self.cluster.logs / f"{name}.log", env or {})
        self.processes[name] = proc.start(not self.cluster.detach)

    def _wait(self, what: str, ready, timeout: float) -> None:  # type: ignore[no-untyped-def]
        began = time.monotonic()
        deadline = began + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.processes.values() if p.exited() is not None]
            if dead:
                raise ClusterError(f"{dead[0].name} exited while waiting for {what}:\n{self.report()}")
            if ready():
                self.timeline.append((what, time.monotonic() - began))
                return
            time.sleep(0.2)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.report()}")

    def report(self, lines: int = 15) -> str:
        parts = []
        for proc in self.processes.values():
            state = "running" if proc.exited() is None else f"exited {proc.exited()}"
            parts.append(f"--- {proc.log} ({state}), last {lines} lines:\n{proc.tail(lines)}")
        return "\n".join(parts)

    # -- stop ----------------------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Drain and stop everything; return what could not be cleaned up (empty when all went)."""
        self.drain()
        popens = {name: p.popen for name, p in self.processes.items() if p.popen is not None}
        order = [{"kube-proxy", "apiserver-gateway"}, {n for n in popens if n.startswith("kubelet")},
                 {n for n in popens if n.startswith("containerd")}]  # fmt: skip
        for group in order:
            chosen = [popens[n] for n in group if n in popens]
            stop_pids({p.pid: None for p in chosen if p.poll() is None}, chosen)
        return self.cleanup()

    def cleanup(self) -> list[str]:
        """After the processes stopped: remove kube-proxy's rules, stray processes, mounts, network namespaces,
        bridges, the filter rule and cgroups. Returns what could not be removed."""
        if self.services:
            subprocess.run([str(self.cluster.tools.bin("kube-proxy")), "--cleanup", "--v=0"],
                           capture_output=True, check=False, timeout=60)  # fmt: skip
        problems = self._sweep()
        self.network.down()
        for node in self.nodes:
            problems += [f"cgroup {p}" for p in node.remove_cgroups()]
        return problems + self.leftovers()

    def drain(self) -> None:
        """Cordon the nodes and delete their pods through the API, so kubelets stop them the normal way
        (containers killed, sandboxes' networks torn down). Does nothing when the apiserver is gone."""
        with contextlib.suppress(Exception):
            self._drain()

    def _drain(self) -> None:
        names = {s.name for s in self.specs}
        with kube.client(self.cluster.kubeconfig) as api:
            core = k8s.CoreV1Api(api)
            for name in names:
                with contextlib.suppress(ApiException):
                    core.patch_node(name, {"spec": {"unschedulable": True}})
            if self.services:
                dns.remove(api)

            def on_nodes() -> list[k8s.V1Pod]:
                return [p for p in core.list_pod_for_all_namespaces().items if p.spec.node_name in names]

            for pod in on_nodes():
                with contextlib.suppress(ApiException):
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=1)
            deadline = time.monotonic() + 60
            while on_nodes() and time.monotonic() < deadline:
                time.sleep(0.5)
            for name in names:
                with contextlib.suppress(ApiException):
                    core.delete_node(name)

    def _sweep(self) -> list[str]:
        """Whatever the orderly stop left: processes, mounts, network namespaces, log links."""
        problems = []
        marks = [str(self.work), *(str(n.socket) for n in self.nodes)]
        strays = {pid: None for pid, cmd in _processes().items() if any(m in cmd for m in marks)}
        if strays:
            problems.append(f"stray processes killed: {sorted(strays)}")
            stop_pids(strays, grace=5)  # type: ignore[arg-type]
        for target in sorted(_mounts_under(self.work), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)
        for name in self._new_netns():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        if CONTAINER_LOG_LINKS.is_dir():
            for link in CONTAINER_LOG_LINKS.iterdir():
                with contextlib.suppress(OSError):
                    if link.is_symlink() and str(self.work) in os.readlink(link):
                        link.unlink()
        return problems

    def leftovers(self) -> list[str]:
        """Everything of this node set that still exists on the machine."""
        left = [f"process {pid}: {cmd[:120]}" for pid, cmd in _processes().items() if str(self.work) in cmd]
        left += [f"mount {m}" for m in _mounts_under(self.work)]
        left += [f"netns {n}" for n in self._new_netns()]
        for node in self.nodes:
            if Path(f"/sys/class/net/{node.net.bridge}").exists():
                left.append(f"bridge {node.net.bridge}")
            for controller in Path("/sys/fs/cgroup").iterdir():
                if (controller / node.cgroup_parent.lstrip("/")).exists():
                    left.append(f"cgroup {controller / node.cgroup_parent.lstrip('/')}")
        rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=False).stdout
        if self.network.machine_wide and FORWARD_CHAIN in rules:
            left.append(f"iptables chain {FORWARD_CHAIN}")
        if self.network.machine_wide:
            left += [f"{command} -t {table} chain {chain}" for command, table, chain in kube_chains()]
        return left

    def _new_netns(self) -> set[str]:
        """Network namespaces made since this node set started (CRI sandboxes are `cni-<uuid>`)."""
        before = self._netns_before
        record = self.work / "netns-before.json"
        if not before and record.exists():
            before = set(json.loads(record.read_text()))
        elif not before:
            return set()  # never started here: nothing is known to be ours
        return {n for n in _netns() - before if n.startswith("cni-")}


def point_kubernetes_service(api: k8s.ApiClient, address: str, port: int) -> None:
    """The `kubernetes` Service's endpoints: the apiserver gateway (apigate.py). The apiserver runs with
    `--endpoint-reconciler-type=none`, so nothing else writes them."""
    discovery = k8s.DiscoveryV1Api(api)
    labels = {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "trainbox-testbed"}
    body = {
        "metadata": {"name": "kubernetes", "labels": labels},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    try:
        discovery.create_namespaced_endpoint_slice("default", body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        discovery.replace_namespaced_endpoint_slice("kubernetes", "default", body)


def _processes() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return found


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target == prefix or target.startswith(prefix + "/"):
            targets.append(target)
    return targets


def _netns() -> set[str]:
    return {p.name for p in NETNS_DIR.iterdir()} if NETNS_DIR.is_dir() else set()
