"""Prometheus metrics: latency histograms measured at the front, instance counters read from the hosts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from trainbox_server.service.core import SandboxService

REGISTRY = CollectorRegistry(auto_describe=True)
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LATENCY = Histogram(
    "trainbox_request_seconds", "Latency of instance operations at the front", ["op", "env"],
    buckets=BUCKETS, registry=REGISTRY,
)  # fmt: skip
ERRORS = Counter("trainbox_errors_total", "Errors answered, by kind", ["kind"], registry=REGISTRY)


class Timing:
    env = "unknown"


@asynccontextmanager
async def timed(op: str, env: str = "unknown") -> AsyncIterator[Timing]:
    """Observe the latency of ``op``; the body may set ``timing.env`` once it knows the family."""
    timing = Timing()
    timing.env = env
    start = time.perf_counter()
    yield timing
    LATENCY.labels(op, timing.env).observe(time.perf_counter() - start)


class HostCollector:
    """Reads the hosts' counters (cached by the service's refresher) at scrape time."""

    def __init__(self, service: SandboxService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        hosts: list[dict[str, Any]] = [h.extra for h in self.service.loads if h.alive]
        live = GaugeMetricFamily("trainbox_instances_live", "Live instances", labels=["host", "env"])
        created = CounterMetricFamily("trainbox_instances_created", "Instances created", labels=["host", "env"])
        released = CounterMetricFamily(
            "trainbox_instances_released", "Instances released, by reason", labels=["host", "reason"]
        )
        hits = CounterMetricFamily("trainbox_warm_pool_hits", "Creates served by a warm worker", labels=["env"])
        misses = CounterMetricFamily("trainbox_warm_pool_misses", "Creates that waited for a worker", labels=["env"])
        for host in hosts:
            for env, n in host.get("live_by_env", {}).items():
                live.add_metric([host["name"], env], n)
            for env, n in host.get("created", {}).items():
                created.add_metric([host["name"], env], n)
            for reason, n in host.get("released", {}).items():
                released.add_metric([host["name"], reason], n)
            for env, fam in host.get("runtime", {}).get("families", {}).items():
                hits.add_metric([env], fam.get("warm_hits", 0))
                misses.add_metric([env], fam.get("warm_misses", 0))
        hosts_up = GaugeMetricFamily("trainbox_hosts_up", "Hosts answering", value=len(hosts))
        yield from (live, created, released, hits, misses, hosts_up)
