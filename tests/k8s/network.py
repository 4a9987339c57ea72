"""The real nodes' network on this machine: one Linux bridge per node in 198.18.0.0/15, routed only here.

Each real node gets a /24 of POD_RANGE (node index i: 198.18.(16+i).0/24); its bridge carries the node's
address (.1), which is the kubelet's InternalIP and the pods' gateway. Pods get a route to 198.18.0.0/15 only
(Services are in 198.19.0.0/16) and no default route, so a packet to any other address fails at once; a
filter rule (chain TRAINBOX-FORWARD) also rejects any forwarded packet leaving that range, and nothing is
masqueraded. `HostNetwork.down()` removes everything `up()` made and restores the sysctls it changed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CLUSTER_RANGE",
    "FORWARD_CHAIN",
    "POD_RANGE",
    "HostNetwork",
    "NodeNet",
    "cni_conflist",
    "kube_chains",
    "node_net",
    "remove_kube_chains",
]

CLUSTER_RANGE = "198.18.0.0/15"  # pods and Services: the only destinations a pod can reach
POD_RANGE = "198.18.0.0/16"
FORWARD_CHAIN = "TRAINBOX-FORWARD"
CNI_BIN = "/usr/lib/cni"
_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}


@dataclass(frozen=True)
class NodeNet:
    """One node's bridge, subnet and address."""

    bridge: str
    subnet: str
    node_ip: str


def node_net(index: int) -> NodeNet:
    subnet = ipaddress.ip_network(f"198.18.{16 + index}.0/24")
    return NodeNet(bridge=f"tb-br{index}", subnet=str(subnet), node_ip=str(subnet.network_address + 1))


def cni_conflist(net: NodeNet, name: str, ipam_dir: Path) -> dict:
    """The node's CNI configuration: a bridge (no masquerade), addresses from the node's /24, and a route to
    the cluster range only."""
    return {
        "cniVersion": "0.4.0",
        "name": f"trainbox-{name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.subnet, "gateway": net.node_ip}]],
                    "routes": [{"dst": CLUSTER_RANGE}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


@dataclass
class HostNetwork:
    """The host side: bridges and, with `machine_wide`, the forwarding sysctls and the no-way-out filter rule
    (one set of nodes owns those; another set added beside it only brings its bridges)."""

    nets: list[NodeNet]
    machine_wide: bool = True
    saved_sysctls: dict[str, str] = field(default_factory=dict)

    def up(self) -> None:
        for net in self.nets:
            if _run("ip", "link", "show", net.bridge, check=False).returncode != 0:
                _run("ip", "link", "add", net.bridge, "type", "bridge")
            prefix = ipaddress.ip_network(net.subnet).prefixlen
            _run("ip", "addr", "replace", f"{net.node_ip}/{prefix}", "dev", net.bridge)
            _run("ip", "link", "set", net.bridge, "up")
        if not self.machine_wide:
            return
        for key, value in _SYSCTLS.items():
            path = Path("/proc/sys") / key
            if not path.exists():
                raise RuntimeError(f"{path} missing: the kernel needs bridge netfilter (br_netfilter) for Services")
            self.saved_sysctls.setdefault(key, path.read_text().strip())
            path.write_text(value)
        if _run("iptables", "-w", "-n", "-L", FORWARD_CHAIN, check=False).returncode != 0:
            _run("iptables", "-w", "-N", FORWARD_CHAIN)
        _run("iptables", "-w", "-F", FORWARD_CHAIN)
        _run("iptables", "-w", "-A", FORWARD_CHAIN, "!", "-d", CLUSTER_RANGE, "-m", "comment", "--comment",
             "trainbox: pods have no way out", "-j", "REJECT", "--reject-with", "icmp-net-unreachable")  # fmt: skip
        if _run("iptables", "-w", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode != 0:
            _run("iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)

    def down(self) -> None:
        for net in self.nets:
            _run("ip", "link", "del", net.bridge, check=False)
        if not self.machine_wide:
            return
        remove_kube_chains()
        with contextlib.suppress(RuntimeError):
            while _run("iptables", "-w", "-D", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode == 0:
                pass
            _run("iptables", "-w", "-F", FORWARD_CHAIN, check=False)
            _run("iptables", "-w", "-X", FORWARD_CHAIN, check=False)
        for key, value in self.saved_sysctls.items():
            (Path("/proc/sys") / key).write_text(value)
        self.saved_sysctls.clear()


def write_cni_config(directory: Path, net: NodeNet, name: str, ipam_dir: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "10-trainbox.conflist").write_text(json.dumps(cni_conflist(net, name, ipam_dir), indent=2))


def kube_chains() -> list[tuple[str, str, str]]:
    """(command, table, chain) of every KUBE-* chain: kubelet's canaries and KUBE-FIREWALL, kube-proxy's."""
    found = []
    for command in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = _run(command, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            found += [(command, table, r.split()[1]) for r in rules if r.startswith("-N KUBE-")]
    return found


def remove_kube_chains() -> None:
    """Remove the KUBE-* chains (and the jumps to them) that kubelets and kube-proxy leave behind."""
    for command, table, chain in kube_chains():
        for rule in _run(command, "-w", "-t", table, "-S", check=False).stdout.splitlines():
            if rule.startswith("-A ") and f"-j {chain}" in rule and not rule.split()[1].startswith("KUBE-"):
                _run(command, "-w", "-t", table, "-D", *rule.split()[1:], check=False)
        _run(command, "-w", "-t", table, "-F", chain, check=False)
    for command, table, chain in kube_chains():
        _run(command, "-w", "-t", table, "-X", chain, check=False)
