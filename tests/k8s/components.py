"""The control-plane processes: where their binaries are, their command lines, and starting/stopping them.

Every control-plane component listens on 127.0.0.1 only (or not at all); kwok hands out node and pod addresses
in 127.0.0.0/8. Real nodes (nodes.py) and Services live in 198.18.0.0/15, the benchmarking range, routed only
inside this machine (network.py): pods 198.18.0.0/16 (a /24 per node), Services 198.19.0.0/16. The apiserver
reaches kubelets by their InternalIP, never through a name lookup.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.servicekit import free_port

from .pki import Pki

__all__ = [
    "DNS_IP",
    "NODE_IP",
    "POD_CIDR",
    "SERVICE_CIDR",
    "SERVICE_IP",
    "ClusterError",
    "Ports",
    "Process",
    "Tools",
    "ToolsMissing",
    "command_lines",
    "free_port",
    "is_alive",
    "stop_pids",
]

REPO = Path(__file__).resolve().parents[2]
SERVICE_CIDR = "198.19.0.0/16"
SERVICE_IP = "198.19.0.1"  # the `kubernetes` Service: the first address of SERVICE_CIDR
DNS_IP = "198.19.0.10"  # the cluster DNS Service (CoreDNS)
POD_CIDR = "127.20.0.1/16"  # kwok's pod IP pool
NODE_IP = "127.0.0.1"  # kwok's fallback; our nodes carry their own 127.0.1.x InternalIP
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "helm",
    "kuberay-operator",
    "kubectl",
)
_PR_SET_PDEATHSIG = 1
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class ClusterError(Exception):
    """The local control plane could not be started or stopped."""


class ToolsMissing(ClusterError):
    """The test-bed binaries have not been built."""


def _version_key() -> str:
    pins = {}
    for line in (REPO / "scripts/k8s/versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            pins[name] = value.strip().removeprefix("v")
    return "{K8S_VERSION}-etcd{ETCD_VERSION}-kwok{KWOK_VERSION}-helm{HELM_VERSION}-kuberay{KUBERAY_VERSION}".format(
        **pins
    )


@dataclass(frozen=True)
class Tools:
    """The built binaries, KubeRay CRDs and kwok stages (made by scripts/k8s-tools.sh)."""

    root: Path

    @classmethod
    def locate(cls) -> Tools:
        """Find the build for the pinned versions, or explain how to make it."""
        override = os.environ.get("TRAINBOX_K8S_TOOLS")
        cache = Path(os.environ.get("TRAINBOX_CACHE", Path.home() / ".cache/trainbox"))
        tools = cls(Path(override) if override else cache / f"k8s-{_version_key()}")
        missing = [b for b in BINARIES if not os.access(tools.bin(b), os.X_OK)]
        if missing or not list(tools.crds()) or not list(tools.stages()):
            raise ToolsMissing(
                f"Kubernetes test-bed binaries missing in {tools.root} ({', '.join(missing) or 'crds/stages'}): "
                "run `make k8s-tools`"
            )
        return tools

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    def crds(self) -> list[Path]:
        return sorted((self.root / "crds").glob("*.yaml"))

    def stages(self) -> list[Path]:
        return sorted((self.root / "kwok-stages").glob("*.yaml"))


@dataclass(frozen=True)
class Ports:
    """The loopback ports one control plane listens on."""

    etcd: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    kuberay_probe: int = field(default_factory=free_port)


def command_lines(
    tools: Tools, work: Path, pki: Pki, ports: Ports, kubeconfig: Path, kwok_config: Path
) -> dict[str, list[str]]:
    """The argv of each component, in start order."""
    etcd_url = f"http://127.0.0.1:{ports.etcd}"
    peer_url = f"http://127.0.0.1:{ports.etcd_peer}"
    on_loopback_only = ["--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false"]
    return {
        "etcd": [str(tools.bin("etcd")), "--name=default", f"--data-dir={work / 'etcd'}",
                 f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                 f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                 f"--initial-cluster=default={peer_url}", "--unsafe-no-fsync=true", "--log-level=warn"],
        "kube-apiserver": [str(tools.bin("kube-apiserver")), f"--etcd-servers={etcd_url}",
                           "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                           f"--secure-port={ports.apiserver}", f"--cert-dir={work / 'apiserver'}",
                           f"--tls-cert-file={pki.server_cert}", f"--tls-private-key-file={pki.server_key}",
                           f"--client-ca-file={pki.ca_cert}", f"--service-account-key-file={pki.sa_pub}",
                           f"--service-account-signing-key-file={pki.sa_key}",
                           f"--service-account-issuer=https://127.0.0.1:{ports.apiserver}",
                           f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
                           # Namespaces choose KWOK or real nodes by annotation (kube.KWOK_NAMESPACE_ANNOTATIONS).
                           "--enable-admission-plugins=NodeRestriction,PodNodeSelector,PodTolerationRestriction",
                           "--allow-privileged=true", "--endpoint-reconciler-type=none", "--profiling=false",
                           # Kubelets by address, never by name: a name would go to this machine's resolver.
                           "--kubelet-preferred-address-types=InternalIP",
                           f"--kubelet-client-certificate={pki.kubelet_client_cert}",
                           f"--kubelet-client-key={pki.kubelet_client_key}",
                           f"--kubelet-certificate-authority={pki.ca_cert}"],
        "kube-controller-manager": [str(tools.bin("kube-controller-manager")), f"--kubeconfig={kubeconfig}",
                                    *on_loopback_only, f"--service-account-private-key-file={pki.sa_key}",
                                    f"--root-ca-file={pki.ca_cert}", f"--service-cluster-ip-range={SERVICE_CIDR}",
                                    "--controllers=*", "--profiling=false",
                                    "--node-monitor-period=1s"],
        "kube-scheduler": [str(tools.bin("kube-scheduler")), f"--kubeconfig={kubeconfig}", *on_loopback_only],
        "kwok": [str(tools.bin("kwok")), f"--kubeconfig={kubeconfig}", f"--config={kwok_config}"],
        "kuberay-operator": [str(tools.bin("kuberay-operator")), "--enable-leader-election=false",
                             "--metrics-addr=0", f"--health-probe-bind-address=127.0.0.1:{ports.kuberay_probe}",
                             "--log-stdout-encoder=console", f"--kubeconfig={kubeconfig}",
                             # Reach Ray dashboards through the apiserver's proxy: never a DNS lookup of a
                             # cluster name (the host's resolver is not on loopback) nor a direct dial.
                             "--use-kubernetes-proxy"],
    }  # fmt: skip


@dataclass
class Process:
    """One running component and its log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self, die_with_parent: bool) -> Process:
        """Start the process; with `die_with_parent` the kernel SIGKILLs it if the starting thread dies
        (a killed pytest leaves nothing behind), otherwise it outlives its starter (`cluster up`)."""
        # No proxy settings: every component talks to 127.0.0.1 directly.
        env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS} | self.env
        with self.log.open("ab") as out:
            # A new session: Ctrl-C in the caller's terminal does not reach the control plane directly.
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=_term_on_parent_death if die_with_parent else None,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def exited(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(line[:400] for line in text.splitlines()[-lines:])


def _term_on_parent_death() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def is_alive(pid: int, binary: str | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, if `binary` is given, still runs that binary."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    # A foreign-architecture binary runs under qemu-user (binfmt_misc): its cmdline starts with the interpreter.
    if "qemu" in Path(argv[0].decode()).name and len(argv) > 1:
        argv = argv[1:]
    cmdline = argv[0].decode()
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return binary is None or cmdline == binary


def stop_pids(pids: dict[int, str | None], popens: Sequence[subprocess.Popen[bytes]] = (), grace: float = 10.0) -> None:
    """SIGTERM each pid (that still runs its recorded binary), then SIGKILL what outlives `grace` seconds."""
    targets = {pid: binary for pid, binary in pids.items() if is_alive(pid, binary)}
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_alive(pid) for pid in targets):
        for popen in popens:
            popen.poll()  # reap our own children so they do not linger as zombies
        time.sleep(0.05)
    for pid in targets:
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    # Always reap: a child can exit between a poll() and the liveness check (a zombie is not "alive"), and
    # an unreaped Popen warns "still running" when it is collected.
    for popen in popens:
        popen.wait(timeout=10)
