"""The hosts on Ray: start or join Ray, place one host actor per Ray node (its architecture read from the
node's ``trainbox.dev/arch`` label), find existing hosts after a front restart, and call them.

Hosts are named, detached actors in the ``trainbox`` namespace: they outlive the front that made them,
so a restarted front finds them (and their instances) again by name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from dataclasses import asdict
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from trainbox_server.errors import CapacityExceeded, InstanceLost, TrainboxError, UnknownEnvironment
from trainbox_server.hosts.channel import ChannelClient
from trainbox_server.hosts.host import CHANNEL_METHODS, HostSettings, InstanceHost
from trainbox_server.hosts.lifecycle import HostLoad

log = logging.getLogger(__name__)
NAMESPACE = "trainbox"
ARCH_LABEL = "trainbox.dev/arch"
HOST_PREFIX = "host-"
# Ray 2.60 rewrites exactly "127.0.0.1" / "localhost" to the machine's interface address (its GCS, raylets
# and drivers then talk over that interface); any other loopback address is kept as given.
LOOPBACK_NODE_IP = "127.0.0.2"

HostActor = ray.remote(InstanceHost)

ERROR_TYPES: dict[str, type[TrainboxError]] = {}


def _collect_error_types(cls: type[TrainboxError]) -> None:
    ERROR_TYPES.setdefault(cls.kind, cls)
    for sub in cls.__subclasses__():
        _collect_error_types(sub)


_collect_error_types(TrainboxError)


def local_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def start_ray(address: str | None, num_cpus: int | None = None, namespace: str = NAMESPACE) -> None:
    """Join the Ray at ``address``, or start a local one on loopback labelled with this machine's arch.

    ``namespace`` scopes the host actors: services in different namespaces share Ray but not hosts.
    """
    if ray.is_initialized():
        return
    node_ip = os.environ.get("TRAINBOX_NODE_IP", LOOPBACK_NODE_IP)
    common: dict[str, Any] = {"namespace": namespace, "log_to_driver": False, "_node_ip_address": node_ip}
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(
            include_dashboard=False,
            num_cpus=num_cpus or os.cpu_count(),
            labels={ARCH_LABEL: local_arch()},
            **common,
        )


def raise_error(error: dict[str, Any]) -> None:
    cls = ERROR_TYPES.get(error.get("kind", ""), TrainboxError)
    if cls is CapacityExceeded:
        raise CapacityExceeded(error["message"], error.get("retry_after", 1.0))
    raise cls(error.get("message", "error"))


class HostGroup:
    """The front's view of the hosts: handles by name, with their architecture."""

    def __init__(self, settings: HostSettings, hosts_per_node: int = 1) -> None:
        self.settings = settings
        self.hosts_per_node = hosts_per_node
        self.handles: dict[str, Any] = {}
        self.arch: dict[str, str] = {}
        self.channels: dict[str, ChannelClient] = {}

    def ensure_hosts(self) -> None:
        """One host per alive node (times hosts_per_node): reuse by name, create what is missing."""
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            arch = node.get("Labels", {}).get(ARCH_LABEL, local_arch())
            for index in range(self.hosts_per_node):
                name = f"{HOST_PREFIX}{arch}-{node['NodeID'][:10]}-{index}"
                if name in self.handles:
                    continue
                node_ip = node.get("NodeManagerAddress") or LOOPBACK_NODE_IP
                settings = HostSettings(**{**asdict(self.settings), "name": name, "arch": arch, "channel_ip": node_ip})
                self.handles[name] = HostActor.options(
                    name=name,
                    lifetime="detached",
                    get_if_exists=True,
                    num_cpus=0,
                    max_concurrency=100_000,
                    max_restarts=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(settings)
                self.arch[name] = arch
        names = list(self.handles)
        for name, reply in zip(names, ray.get([self.handles[n].ping.remote() for n in names]), strict=True):
            channel = reply["result"]["channel"]
            if name not in self.channels:
                self.channels[name] = ChannelClient(name, channel["address"], channel["secret"])

    @property
    def names(self) -> list[str]:
        return sorted(self.handles)

    async def call(self, host: str, method: str, *args: Any) -> Any:
        """Call a host method; unwrap its envelope; a dead host becomes InstanceLost."""
        handle = self.handles.get(host)
        if handle is None:
            raise InstanceLost(f"host {host!r} is not known to this service")
        try:
            channel = self.channels.get(host)
            if channel is not None and method in CHANNEL_METHODS:
                reply = await channel.call(method, *args)
            else:
                reply = await getattr(handle, method).remote(*args)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise InstanceLost(f"host {host} is gone ({type(exc).__name__})") from None
        if isinstance(reply, dict) and "ok" in reply:
            if not reply["ok"]:
                raise_error(reply["error"])
            return reply["result"]
        return reply

    async def loads(self) -> list[HostLoad]:
        async def one(name: str) -> HostLoad:
            try:
                stats = await asyncio.wait_for(self.call(name, "stats"), 10)
                return HostLoad(name, stats["arch"], stats["live"] + stats["creating"], stats["capacity"], True, stats)
            except (TrainboxError, TimeoutError):
                return HostLoad(name, self.arch[name], 0, 0, alive=False)

        return list(await asyncio.gather(*(one(n) for n in self.names)))

    async def find(self, instance_id: str) -> str | None:
        """Which host holds a caller-chosen id (asks every live host)."""
        names = self.names
        answers = await asyncio.gather(*(self.call(n, "has", instance_id) for n in names), return_exceptions=True)
        for name, answer in zip(names, answers, strict=True):
            if answer is True:
                return name
        return None

    def check_env(self, env_type: str, families: list[str]) -> None:
        if env_type not in families:
            raise UnknownEnvironment(f"unknown environment {env_type!r}; available: {families}")

    def kill_all(self) -> None:
        for handle in self.handles.values():
            try:
                ray.get(handle.shutdown.remote(), timeout=30)
            except Exception:  # a host that cannot shut down cleanly is killed anyway
                log.warning("host did not shut down cleanly")
            ray.kill(handle)
        self.handles.clear()
