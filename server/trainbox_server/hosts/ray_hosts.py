"""The hosts on Ray: start or join Ray, place one host actor per Ray node (its architecture read from the
node's ``trainbox.dev/arch`` label), find existing hosts after a front restart, re-create dead ones, and
call them.

Hosts are named, detached actors in the ``trainbox`` namespace: they outlive the front that made them,
so a restarted front joining the same Ray finds them (and their instances) again by name. A host slot
(node, index) gets a fresh name each time its host is re-created (a random incarnation suffix): ids of a
dead host's instances then name a host that no longer exists and answer ``instance_lost``, never another
host's ``unknown_instance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from trainbox_server.errors import InstanceLost, InternalError, TrainboxError, from_wire
from trainbox_server.hosts.channel import ChannelClient
from trainbox_server.hosts.host import CHANNEL_METHODS, HostSettings, InstanceHost
from trainbox_server.hosts.lifecycle import HOST_PREFIX, HostLoad, missed_report

log = logging.getLogger(__name__)
NAMESPACE = "trainbox"
ARCH_LABEL = "trainbox.dev/arch"
PING_TIMEOUT = 120.0  # a new host starts its warm pools before it answers its first ping
# Ray 2.60 rewrites exactly "127.0.0.1" / "localhost" to the machine's interface address (its GCS, raylets
# and drivers then talk over that interface); any other loopback address is kept as given.
LOOPBACK_NODE_IP = "127.0.0.2"

HostActor = ray.remote(InstanceHost)


def local_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def start_ray(
    address: str | None, num_cpus: int | None = None, namespace: str = NAMESPACE, join_as_node: bool = False
) -> None:
    """Join the Ray at ``address``, or start a local one on loopback labelled with this machine's arch.

    ``namespace`` scopes the host actors: services in different namespaces share Ray but not hosts.
    ``join_as_node``: this process runs where no Ray node runs (the front's own pod on Kubernetes), and
    Ray only accepts drivers on its nodes; so start one here first (see join_ray_node).
    """
    if ray.is_initialized():
        return
    node_ip = os.environ.get("TRAINBOX_NODE_IP", LOOPBACK_NODE_IP)
    common: dict[str, Any] = {"namespace": namespace, "log_to_driver": False, "_node_ip_address": node_ip}
    if address and join_as_node:
        join_ray_node(address, node_ip)
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(
            include_dashboard=False,
            num_cpus=num_cpus or os.cpu_count(),
            labels={ARCH_LABEL: local_arch()},
            **common,
        )


FRONT_ROLE = {"trainbox.dev/role": "front"}


def join_ray_node(address: str, node_ip: str, timeout: float = 120.0) -> None:
    """Start a Ray node on this machine that joins ``address``: no CPUs (it runs no host) and the label
    ``trainbox.dev/role=front`` (placement skips it, see host_nodes).

    Design note (the front on Kubernetes): Ray refuses a driver on a machine that is not one of its nodes,
    and the front is a driver. Of the three ways in — Ray Client (``ray://head:10001``), the front inside the
    head pod, or the front as a Ray node of its own — this is the third: every call to a host stays a
    direct actor call (Ray Client proxies each one through the head, a bottleneck at thousands of steps
    per second), and the front stays its own Deployment (replaced, scaled and rolled without touching
    the head). The hosts are detached actors, so a front that dies takes none of them along; the next
    front finds them by name.
    """
    labels = ",".join(f"{k}={v}" for k, v in FRONT_ROLE.items())
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    cmd = [ray_cli, "start", f"--address={address}", "--num-cpus=0", f"--node-ip-address={node_ip}",
           f"--labels={labels}", "--object-store-memory=100000000", "--disable-usage-stats"]  # fmt: skip
    log.warning("joining Ray at %s as a node of its own: %s", address, " ".join(cmd))
    deadline = time.monotonic() + timeout
    while True:  # the head may still be starting: retry until the deadline
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not join Ray at {address}: {done.stderr.strip()[-2000:]}")
        time.sleep(3)


def host_nodes(nodes: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """Pure: the live Ray nodes that get hosts, with their architecture.

    Only nodes carrying ``trainbox.dev/arch`` host instances (the local Ray the service starts carries it;
    KubeRay's worker groups get it from the operator; a Ray started by hand needs
    ``--labels=trainbox.dev/arch=amd64``). A KubeRay head or a front's node hosts nothing — even while no
    worker has joined yet.
    """
    return [(n, n["Labels"][ARCH_LABEL]) for n in nodes if n.get("Alive") and ARCH_LABEL in (n.get("Labels") or {})]


def node_summary() -> str:
    """The live Ray nodes and their labels, for a log line."""
    return ", ".join(f"{n.get('NodeManagerAddress')} {n.get('Labels', {})}" for n in ray.nodes() if n.get("Alive"))


@dataclass
class NewHost:
    name: str
    arch: str
    handle: Any
    channel: dict[str, str] | None = None


def slot_name(arch: str, node_id: str, index: int) -> str:
    """The stable part of a host's name: its architecture, node and index on the node."""
    return f"{HOST_PREFIX}{arch}-{node_id[:10]}-{index}"


def slot_of(name: str) -> str:
    """The slot a host name belongs to (its name without the incarnation suffix)."""
    return name.rsplit("-", 1)[0]


class HostGroup:
    """The front's view of the hosts: handles by name, with their architecture, and the names known dead."""

    def __init__(self, settings: HostSettings, hosts_per_node: int = 1) -> None:
        self.settings = settings
        self.hosts_per_node = hosts_per_node
        self.handles: dict[str, Any] = {}
        self.arch: dict[str, str] = {}
        self.channels: dict[str, ChannelClient] = {}
        self.dead: set[str] = set()
        self.deadlines: dict[str, float] = {}  # per method, see deadline()
        self._last: dict[str, HostLoad] = {}  # each host's last report

    def connect(self, address: str | None, num_cpus: int | None, namespace: str, join_as_node: bool) -> None:
        """Join (or start) the Ray the hosts live on; blocking (see start_ray)."""
        start_ray(address, num_cpus, namespace, join_as_node)

    def close(self) -> None:
        """Close the data channels (the front stops); the hosts live on, detached."""
        for channel in self.channels.values():
            channel.close_now()

    def ensure_hosts(self) -> list[str]:
        """One live host per slot; blocking (for set-up). Returns the names of the hosts it added."""
        return self.install(self.prepare())

    async def ensure_hosts_async(self) -> list[str]:
        """The same from the event loop: Ray's blocking calls run in a thread, the maps change here."""
        return self.install(await asyncio.to_thread(self.prepare))

    def prepare(self) -> list[NewHost]:
        """Hosts for every slot (alive node x hosts_per_node) without a known one: adopt the one a
        previous front made, or start a new one under a new name. Blocking; of the shared state it only
        adds to ``dead`` (hosts that did not come up), so it may run in a thread."""
        existing = {slot_of(n): n for n in ray.util.list_named_actors() if n.startswith(HOST_PREFIX)}
        known = {slot_of(n) for n in list(self.handles)}
        started: list[NewHost] = []
        for node, arch in host_nodes(ray.nodes()):
            for index in range(self.hosts_per_node):
                slot = slot_name(arch, node["NodeID"], index)
                if slot in known:
                    continue
                name = existing.get(slot)
                if name is None or name in self.dead:
                    name = f"{slot}-{uuid.uuid4().hex[:6]}"
                started.append(self._start(name, arch, node))
        return [host for host in started if self._ping(host)]

    def _start(self, name: str, arch: str, node: dict[str, Any]) -> NewHost:
        node_ip = node.get("NodeManagerAddress") or LOOPBACK_NODE_IP
        settings = HostSettings(**{**asdict(self.settings), "name": name, "arch": arch, "channel_ip": node_ip})
        handle = HostActor.options(
            name=name,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=100_000,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
        ).remote(settings)
        return NewHost(name, arch, handle)

    def _ping(self, host: NewHost) -> bool:
        """Ping a new host (which starts it) and learn its channel; False when it does not come up."""
        try:
            reply = ray.get(host.handle.ping.remote(), timeout=PING_TIMEOUT)
        except Exception as exc:  # dead before it served, or stuck: the next round makes another
            log.warning("host %s did not start: %s", host.name, exc)
            self.dead.add(host.name)
            with contextlib.suppress(Exception):
                ray.kill(host.handle)
            return False
        host.channel = reply["result"]["channel"]
        return True

    def install(self, hosts: list[NewHost]) -> list[str]:
        for host in hosts:
            assert host.channel is not None
            self.handles[host.name] = host.handle
            self.arch[host.name] = host.arch
            self.channels[host.name] = ChannelClient(host.name, host.channel["address"], host.channel["secret"])
        return [host.name for host in hosts]

    def forget(self, name: str) -> None:
        """Drop a dead host: its name stays known as dead, so its instances' ids answer instance_lost."""
        self.dead.add(name)
        self._last.pop(name, None)
        self.handles.pop(name, None)
        self.arch.pop(name, None)
        channel = self.channels.pop(name, None)
        if channel is not None:
            channel.close_now()

    @property
    def names(self) -> list[str]:
        return sorted(self.handles)

    def deadline(self, method: str, args: tuple[Any, ...]) -> float:
        """How long the front waits for a host's answer: the step's own timeout (when given) or the
        method's configured deadline, plus a margin for the host to notice and answer."""
        if method == "step" and len(args) >= 4 and isinstance(args[3], int | float):
            return float(args[3]) + self.deadlines.get("margin", 30.0)
        return self.deadlines.get(method, self.deadlines.get("default", 300.0))

    async def call(self, host: str, method: str, *args: Any) -> Any:
        """Call a host method; unwrap its envelope; a dead or unknown host becomes InstanceLost."""
        handle = self.handles.get(host)
        if handle is None:
            why = "is gone (it died; it was re-created under a new name)" if host in self.dead else "is not known"
            raise InstanceLost(f"host {host!r} {why}: its instances are lost")
        try:
            channel = self.channels.get(host)
            if channel is not None and method in CHANNEL_METHODS:
                reply = await channel.call(method, *args, deadline=self.deadline(method, args))
            else:
                reply = await getattr(handle, method).remote(*args)
        except ray.exceptions.ActorDiedError as exc:
            self.forget(host)
            raise InstanceLost(f"host {host} is gone ({type(exc).__name__})") from None
        except ray.exceptions.RayActorError as exc:
            raise InstanceLost(f"host {host} is unreachable ({type(exc).__name__})") from None
        if isinstance(reply, dict) and "ok" in reply:
            if not reply["ok"]:
                raise from_wire(reply["error"], default=InternalError)
            return reply["result"]
        return reply

    async def load(self, name: str) -> HostLoad:
        """One host's counts (over its data channel: see service.admission for why that matters). A host
        that misses a report but answers Ray's ping is slow, not gone: it keeps serving on its last report
        (marked not ``fresh``, so the ledger does not take it as new)."""
        try:
            stats = await self.call(name, "stats")
        except TrainboxError as exc:
            log.warning("host %s did not report its counts: %s", name, exc)
            answers = await self._check_alive(name)
            return missed_report(name, self.arch.get(name, "unknown"), self._last.get(name), answers)
        load = HostLoad(name, stats["arch"], stats["live"] + stats["creating"], stats["capacity"], True, stats)
        self._last[name] = load
        return load

    async def _check_alive(self, name: str) -> bool:
        """Ask Ray whether a host that did not answer is alive; a dead one is forgotten (it will be
        re-created)."""
        handle = self.handles.get(name)
        if handle is None:
            return False
        try:
            await asyncio.wait_for(handle.ping.remote(), 10)
        except ray.exceptions.ActorDiedError:
            self.forget(name)
            return False
        except Exception as exc:  # unreachable or slow for now: asked again at the next refresh
            log.warning("host %s did not answer: %s", name, type(exc).__name__)
            return False
        return True

    async def find(self, instance_id: str) -> str | None:
        """Which host holds a caller-chosen id (asks every live host)."""
        names = self.names
        answers = await asyncio.gather(*(self.call(n, "has", instance_id) for n in names), return_exceptions=True)
        for name, answer in zip(names, answers, strict=True):
            if answer is True:
                return name
        return None
