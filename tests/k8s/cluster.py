"""Start and stop a local Kubernetes control plane built by `make k8s-tools`.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes of both architectures that
run the pods scheduled on them) and the KubeRay operator run as local processes on 127.0.0.1, the way
controller-runtime's envtest runs a control plane. The pytest fixtures in conftest.py use `Cluster`; a person
uses the CLI:

    python -m tests.k8s.cluster up     # start in the background (real nodes too), print the kubeconfig path
    python -m tests.k8s.cluster down   # stop the processes that `up` recorded and clean up after the nodes
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from . import kube
from .components import (
    NODE_IP,
    POD_CIDR,
    SERVICE_IP,
    ClusterError,
    Ports,
    Process,
    Tools,
    command_lines,
    is_alive,
    stop_pids,
)
from .pki import Pki, write_pki

__all__ = ["Cluster", "ClusterError", "main"]

STATE_DIR = Path.home() / ".cache/trainbox/cluster"
START_TIMEOUT = 120.0  # per step; a loaded 2-core machine makes the apiserver slow to take the CRDs
_NO_PROXY = urllib.request.ProxyHandler({})
_NODE_BINARIES = {"kubelet", "containerd", "kube-proxy"}


class Cluster:
    """One control plane: its work dir (certificates, etcd data, logs, kubeconfig) and its processes."""

    def __init__(self, work: Path, tools: Tools | None = None, *, detach: bool = False) -> None:
        self.work = work
        self.detach = detach  # outlive this Python process (`cluster up`) instead of dying with it
        self.tools = tools or Tools.locate()
        self.kubeconfig = work / "kubeconfig"
        self.logs = work / "logs"
        self.processes: dict[str, Process] = {}
        self.ready_seconds: float | None = None
        self.timeline: list[tuple[str, float]] = []  # (what was awaited, seconds since start) for the record
        self._began = time.monotonic()
        self.pki: Pki | None = None
        self.apiserver_port = 0

    def start(self) -> Cluster:
        """Start every component and wait until nodes are Ready and the KubeRay operator is up."""
        self._began = time.monotonic()
        self.logs.mkdir(parents=True, exist_ok=True)
        pki = self.pki = write_pki(self.work / "pki", SERVICE_IP)
        ports = Ports()
        self.apiserver_port = ports.apiserver
        _write_kubeconfig(self.kubeconfig, pki, ports.apiserver)
        argv = command_lines(self.tools, self.work, pki, ports, self.kubeconfig, self._write_kwok_config())
        try:
            with ThreadPoolExecutor(1) as pool:
                crds = pool.submit(kube.load_crds, self.tools.crds())  # parses while etcd and apiserver start
                self._launch("etcd", argv)
                self._wait("etcd health", lambda: _http_ok(f"http://127.0.0.1:{ports.etcd}/health"))
                self._launch("kube-apiserver", argv)
                readyz = f"https://127.0.0.1:{ports.apiserver}/readyz"
                self._wait("kube-apiserver /readyz", lambda: _http_ok(readyz, _client_tls(pki)))
                self._bootstrap(crds, argv)
            probe = f"http://127.0.0.1:{ports.kuberay_probe}/readyz"
            self._wait("kuberay-operator /readyz", lambda: _http_ok(probe))
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - self._began
        return self

    def _bootstrap(self, crds: Future[list[dict]], argv: dict[str, list[str]]) -> None:
        # CRDs go in before the controllers start: installing them is CPU-heavy for the apiserver, and
        # the controllers would otherwise rediscover resources while they come up.
        with kube.client(self.kubeconfig) as api:
            kube.create_nodes(api)
            docs = crds.result()
            kube.install_crds(api, docs)
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._launch(name, argv)
            self._wait("KubeRay CRDs established", lambda: kube.crds_established(api, docs))
            self._launch("kuberay-operator", argv)
            self._wait("nodes Ready", lambda: kube.nodes_ready(api))

    def stop(self) -> None:
        """Stop the controllers, then the apiserver, then etcd; nothing is left running."""
        popens = {name: p.popen for name, p in self.processes.items() if p.popen is not None}
        for group in (set(popens) - {"kube-apiserver", "etcd"}, {"kube-apiserver"}, {"etcd"}):
            chosen = [popens[name] for name in group if name in popens]
            stop_pids({p.pid: None for p in chosen if p.poll() is None}, chosen)

    def report(self, lines: int = 15) -> str:
        """Where the component logs are, with the last lines of each."""
        parts = [f"control-plane logs in {self.logs} (kubeconfig {self.kubeconfig})"]
        for proc in self.processes.values():
            state = "running" if proc.exited() is None else f"exited {proc.exited()}"
            parts.append(f"--- {proc.log} ({state}), last {lines} lines:\n{proc.tail(lines)}")
        return "\n".join(parts)

    def _launch(self, name: str, argv: dict[str, list[str]]) -> None:
        env = {"KUBECONFIG": str(self.kubeconfig)}
        self.processes[name] = Process(name, argv[name], self.logs / f"{name}.log", env).start(not self.detach)

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self.processes.values() if p.exited() is not None]
            if dead:
                raise ClusterError(f"{dead[0].name} exited while waiting for {what}:\n{self.report()}")
            if ready():
                self.timeline.append((what, time.monotonic() - self._began))
                return
            time.sleep(0.1)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}:\n{self.report()}")

    def _write_kwok_config(self) -> Path:
        options = (
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n"
            f"  cidr: {POD_CIDR}\n  nodeIP: {NODE_IP}\n"
            f"  manageNodesWithAnnotationSelector: {kube.KWOK_ANNOTATION}=fake\n"
            # A config file is not defaulted: spell out what kwok's defaults would be, and hold node
            # leases so the node controller keeps the fake nodes Ready.
            "  nodeLeaseDurationSeconds: 40\n  nodeLeaseParallelism: 4\n  podPlayStageParallelism: 4\n"
            "  nodePlayStageParallelism: 4\n  podsOnNodeSyncParallelism: 2\n  manageAllNodes: false\n"
        )
        stages = [path.read_text() for path in self.tools.stages()]
        path = self.work / "kwok.yaml"
        path.write_text("\n---\n".join([options, *stages]))
        return path


def _client_tls(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    handlers: list[urllib.request.BaseHandler] = [_NO_PROXY]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _write_kubeconfig(path: Path, pki: Pki, port: int) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "trainbox", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                      "certificate-authority-data": b64(pki.ca_cert)}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64(pki.admin_cert),
                                             "client-key-data": b64(pki.admin_key)}}],
        "contexts": [{"name": "trainbox", "context": {"cluster": "trainbox", "user": "admin"}}],
        "current-context": "trainbox",
    }  # fmt: skip
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _up(state_dir: Path) -> int:
    from .nodeset import NodeSet  # nodeset imports this module

    state_file = state_dir / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if all(is_alive(int(pid), binary) for pid, binary in state["pids"].items()):
            print(f"already running; kubeconfig: {state['kubeconfig']}")
            return 0
        _down(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)  # leftovers of a failed `up`: start from a clean etcd
    cluster = Cluster(state_dir, detach=True)
    cluster.start()
    nodes = NodeSet(cluster).start()
    processes = [*cluster.processes.values(), *nodes.processes.values()]
    pids = {str(p.pid): p.argv[0] for p in processes}
    state_file.write_text(json.dumps({"kubeconfig": str(cluster.kubeconfig), "pids": pids}, indent=2))
    steps = ", ".join(f"{what} at {seconds:.1f}s" for what, seconds in cluster.timeline)
    print(f"control plane ready in {cluster.ready_seconds:.1f}s ({steps}); logs in {cluster.logs}")
    print("real nodes: " + ", ".join(f"{what} {seconds:.1f}s" for what, seconds in nodes.timeline))
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def _down(state_dir: Path) -> int:
    from .nodeset import NodeSet

    state_file = state_dir / "state.json"
    if not state_file.exists():
        print(f"no control plane recorded in {state_dir}; nothing to stop")
        return 0
    pids = {int(pid): binary for pid, binary in json.loads(state_file.read_text())["pids"].items()}
    nodes = NodeSet(Cluster(state_dir)) if (state_dir / "nodes").is_dir() else None
    if nodes is not None:
        nodes.drain()  # while the apiserver and kubelets still run
    by_name = {Path(binary).name: pid for pid, binary in pids.items() if Path(binary).name != "kubelet"}
    node_pids = {pid: binary for pid, binary in pids.items() if Path(binary).name in _NODE_BINARIES}
    stop_pids(node_pids)
    for names in (set(by_name) - {"kube-apiserver", "etcd"} - _NODE_BINARIES, {"kube-apiserver"}, {"etcd"}):
        stop_pids({by_name[n]: pids[by_name[n]] for n in names if n in by_name})
    left = nodes.cleanup() if nodes is not None else []
    shutil.rmtree(state_dir, ignore_errors=True)
    # Strays the sweep found and killed (e.g. container shims outliving their containerd) are gone: say so,
    # but only what is still there is a failure.
    killed = [item for item in left if item.startswith("stray processes killed")]
    left = [item for item in left if item not in killed]
    print(f"stopped {len(pids)} processes" + (f"; {killed[0]}" if killed else "")
          + (f"; could not remove: {left}" if left else ""))  # fmt: skip
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=STATE_DIR, help=f"work dir (default {STATE_DIR})")
    args = parser.parse_args(argv)
    try:
        return _up(args.dir) if args.action == "up" else _down(args.dir)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
