"""Real nodes: one containerd and one kubelet per node, registering with the local control plane.

`node-amd64` runs the native kubelet and containerd; `node-arm64` runs arm64 builds of both under qemu-user
through binfmt_misc, so it reports `architecture: arm64` and pulls and runs the arm64 variants of multi-arch
images. Its containerd is built by `make k8s-tools` with a patch for emulated nodes (no seccomp under
qemu-user); the shim and runc stay native (they only set up the container, whose arm64 processes then run
through binfmt_misc). Each node has its
own containerd root, state, socket and CNI network (network.py), its own kubelet root, pod-log and cgroup
directories; images come from the loopback registry that `make images` fills, as on a cluster.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from .components import DNS_IP, Tools
from .network import NodeNet, node_net, write_cni_config
from .pki import Pki, issue

__all__ = ["REAL_NODES", "NodeSpec", "RealNode", "default_specs", "host_arch"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
QEMU_LD_PREFIX = {"arm64": "/usr/aarch64-linux-gnu"}


def host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@dataclass(frozen=True)
class NodeSpec:
    name: str
    arch: str
    index: int


EMULATED_TAINT = {"key": "trainbox.dev/emulated", "value": "qemu-user", "effect": "PreferNoSchedule"}
REAL_NODES = (NodeSpec("node-amd64", "amd64", 0), NodeSpec("node-arm64", "arm64", 1))


def default_specs() -> tuple[NodeSpec, ...]:
    """The real nodes a test bed starts: $TRAINBOX_REAL_NODES (comma-separated architectures), default amd64.

    Both by default: amd64 natively, arm64 under qemu-user. `TRAINBOX_REAL_NODES=amd64` starts the native
    node only (faster, for work that does not need arm64).
    """
    wanted = os.environ.get("TRAINBOX_REAL_NODES", "amd64,arm64").split(",")
    return tuple(spec for spec in REAL_NODES if spec.arch in wanted)


@dataclass
class RealNode:
    """One node's files and command lines (the processes are started by `nodeset.NodeSet`)."""

    spec: NodeSpec
    work: Path
    tools: Tools
    registry: str  # host:port of the loopback registry
    pause_image: str

    @property
    def net(self) -> NodeNet:
        return node_net(self.spec.index)

    @property
    def socket(self) -> Path:
        return self.work / "containerd.sock"

    @property
    def cgroup_parent(self) -> str:
        return f"/trainbox-{self.spec.name}"

    def _bin(self, name: str) -> str:
        if self.spec.arch == host_arch():
            return str(self.tools.bin(name)) if name == "kubelet" else name
        return str(self.tools.root / "bin" / self.spec.arch / name)

    def prepare(self, pki: Pki, apiserver_port: int) -> None:
        """Write the node's configuration, certificates and kubeconfig; create its cgroup parents."""
        for sub in ("containerd", "kubelet", "pod-logs", "cni/ipam", "volume-plugins"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        write_cni_config(self.work / "cni/net.d", self.net, self.spec.name, self.work / "cni/ipam")
        (self.work / "containerd.toml").write_text(self._containerd_config())
        cert, key = issue(pki, f"node-{self.spec.name}", f"system:node:{self.spec.name}", "system:nodes",
                          server_ips=(self.net.node_ip,))  # fmt: skip
        write_kubeconfig(self.work / "kubeconfig", pki.ca_cert, cert, key, apiserver_port)
        (self.work / "kubelet.yaml").write_text(json.dumps(self._kubelet_config(pki, cert, key), indent=2))
        for controller in _cgroup_controllers():
            path = CGROUP_ROOT / controller / self.cgroup_parent.lstrip("/")
            path.mkdir(exist_ok=True)
            if controller == "cpuset":  # a new cpuset is empty: give it the parent's CPUs and memory nodes
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (path / knob).write_text((path.parent / knob).read_text())

    def remove_cgroups(self) -> list[str]:
        """Remove the node's cgroup trees (bottom up); return those that could not be removed."""
        left = []
        for controller in [*_cgroup_controllers(), "unified"]:  # runc also makes the pods' v2 groups
            top = CGROUP_ROOT / controller / self.cgroup_parent.lstrip("/")
            if not top.exists():
                continue
            for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    path.rmdir()
                except OSError:
                    left.append(str(path))
            try:
                top.rmdir()
            except OSError:
                left.append(str(top))
        return left

    def argv(self) -> dict[str, list[str]]:
        return {
            f"containerd-{self.spec.arch}": [self._bin("containerd"), f"--config={self.work / 'containerd.toml'}"],
            f"kubelet-{self.spec.arch}": [
                self._bin("kubelet"), f"--config={self.work / 'kubelet.yaml'}",
                f"--kubeconfig={self.work / 'kubeconfig'}", f"--hostname-override={self.spec.name}",
                f"--node-ip={self.net.node_ip}", f"--root-dir={self.work / 'kubelet'}",
                f"--cert-dir={self.work / 'kubelet/pki'}", "--node-labels=type=real", "--v=1",
            ],
        }  # fmt: skip

    def env(self) -> dict[str, str]:
        """A foreign node's containerd starts the host's native shim (found on PATH), as it runs the native
        runc: under emulation an arm64 shim fails to start its tasks ("invalid argument"). QEMU_LD_PREFIX
        (libc6-arm64-cross) lets qemu-user run any dynamically linked arm64 helper."""
        if self.spec.arch == host_arch():
            return {}
        return {"QEMU_LD_PREFIX": QEMU_LD_PREFIX[self.spec.arch]}

    def _containerd_config(self) -> str:
        root, state, cni = self.work / "containerd/root", self.work / "containerd/state", self.work / "cni/net.d"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[{cri}]
  sandbox_image = "{self.pause_image}"
  # This VM's root lacks CAP_SYS_RESOURCE: without this every sandbox fails ("can't get final child's PID").
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true  # pod network namespaces under this node's own state dir
  # Under qemu-user containerd cannot set up seccomp (the arm64 node): it must not ask for a profile.
  unset_seccomp_profile = "{"unconfined" if self.spec.arch != host_arch() else ""}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "{state}/runc"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
    max_conf_num = 1
  [{cri}.registry.mirrors."{self.registry}"]
    endpoint = ["http://{self.registry}"]
"""

    def _kubelet_config(self, pki: Pki, cert: Path, key: Path) -> dict:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.net.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(pki.ca_cert)}},
            "authorization": {"mode": "AlwaysAllow"},
            "tlsCertFile": str(cert),
            "tlsPrivateKeyFile": str(key),
            # kubelet >= 1.35 refuses cgroup v1 unless told otherwise; this machine (and many CI VMs) only
            # has cgroup v1, and nothing here needs v2-only features.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",  # no systemd runs here
            "cgroupRoot": self.cgroup_parent,  # two kubelets on one machine: each its own pod cgroup tree
            "failSwapOn": False,
            "resolvConf": "",  # pods never see this machine's resolvers; cluster DNS only
            "clusterDNS": [DNS_IP],
            "clusterDomain": "cluster.local",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "podLogsDir": str(self.work / "pod-logs"),
            "volumePluginDir": str(self.work / "volume-plugins"),
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "maxPods": 30,
            "nodeStatusUpdateFrequency": "2s",
            "shutdownGracePeriod": "0s",
            # An emulated node is ~10x slower and pulls through an emulated containerd: the scheduler sends
            # it only what asks for its architecture (or nothing else fits), as a cluster would mark slow nodes.
            "registerWithTaints": [EMULATED_TAINT] if self.spec.arch != host_arch() else [],
        }  # fmt: skip


def _cgroup_controllers() -> list[str]:
    return sorted(p.name for p in CGROUP_ROOT.iterdir() if p.is_dir() and p.name != "unified")


def write_kubeconfig(path: Path, ca: Path, cert: Path, key: Path, port: int) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "trainbox", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                      "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "trainbox", "context": {"cluster": "trainbox", "user": "user"}}],
        "current-context": "trainbox",
    }  # fmt: skip
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
