"""Prometheus metrics, one CollectorRegistry per application.

The router's parts bump plain integers (relay_server.stats); this collector turns
them into metric families only when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .connections import Role
from .guard import ConnectionGuard
from .passwords import HashPool
from .routing import Router

if TYPE_CHECKING:
    from .cluster import Cluster

# Every refusal reason, so each series exists (at 0) from the first scrape on.
REFUSALS = ("too_many_connections", "request_timeout", "hash_pool_busy", "hash_pool_per_address")


class RelayCollector(Collector):
    def __init__(self, router: Router, guard: ConnectionGuard, pool: HashPool) -> None:
        self._router = router
        self._guard = guard
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        registry, stats = self._router.registry, self._router.stats
        conns = GaugeMetricFamily(
            "homeseal_relay_connections", "Open websocket connections", labels=["role"]
        )
        conns.add_metric([Role.DEVICE], len(registry.devices))
        conns.add_metric([Role.CONTROLLER], len(registry.controllers))
        conns.add_metric(["unauthenticated"], len(registry.pending))
        yield conns
        yield CounterMetricFamily(
            "homeseal_relay_frames_routed", "Frames forwarded", value=stats.frames_routed
        )
        yield CounterMetricFamily(
            "homeseal_relay_bytes_routed", "Bytes of frames forwarded", value=stats.bytes_routed
        )
        drops = CounterMetricFamily(
            "homeseal_relay_drops", "Frames not forwarded, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.drops.items()):
            drops.add_metric([reason], count)
        yield drops
        failures = CounterMetricFamily(
            "homeseal_relay_auth_failures", "Failed endpoint authentications", labels=["role"]
        )
        for role in Role:
            failures.add_metric([role], stats.auth_failures[role])
        yield failures
        closes = CounterMetricFamily(
            "homeseal_relay_closes", "Connections closed by the relay, by code", labels=["code"]
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric([str(int(code))], count)
        yield closes
        yield GaugeMetricFamily(
            "homeseal_relay_unauthenticated_connections",
            "Open connections that are not an authenticated endpoint (HTTP, upgrades in "
            "the challenge-response): what the unauthenticated-connection caps count",
            value=self._guard.unauthenticated,
        )
        refusals = CounterMetricFamily(
            "homeseal_relay_refusals",
            "Connections and requests refused before reaching an endpoint, by reason",
            labels=["reason"],
        )
        for reason in REFUSALS:
            refusals.add_metric([reason], stats.refusals[reason])
        yield refusals
        yield GaugeMetricFamily(
            "homeseal_relay_hash_jobs",
            "Password-hash jobs admitted to the pool (running or waiting)",
            value=self._pool.jobs,
        )
        cluster = self._router.cluster
        if cluster is not None:
            yield from _cluster_metrics(cluster)


# Every cluster event counted, so each series exists (at 0) from the first scrape on.
CLUSTER_EVENTS = (
    "publishes", "frames_in", "frames_lost", "lookups", "gone_sent", "gone_received",
    "unreachable", "replaced_elsewhere", "events_in", "probes_lost", "subscription_rebuilds",
    "resyncs", "redis_errors", "outbox_full", "control_queue_full", "bad_messages",
)  # fmt: skip


def _cluster_metrics(cluster: Cluster) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "homeseal_relay_cluster_node", "This node of the cluster (1)", labels=["node"]
    )
    info.add_metric([cluster.node.decode()], 1)
    yield info
    for name, value in cluster.gauges():
        yield GaugeMetricFamily(f"homeseal_relay_cluster_{name}", _GAUGES[name], value=value)
    events = CounterMetricFamily(
        "homeseal_relay_cluster_events", "Cluster events on this node, by kind", labels=["kind"]
    )
    for kind in CLUSTER_EVENTS:
        events.add_metric([kind], cluster.counters[kind])
    yield events


_GAUGES = {
    "routable": "1 while this node's probes of its own inbox come back, else 0",
    "presence_keys": "Presence keys this node holds (its registered endpoints)",
    "location_cache": "Endpoints on other nodes whose location this node remembers",
    "outbox_bytes": "Bytes of records waiting to be published to other nodes",
    "lookups_waiting": "Destinations being looked up in Redis",
}


def make_metrics(router: Router, guard: ConnectionGuard, pool: HashPool) -> CollectorRegistry:
    metrics = CollectorRegistry(auto_describe=False)
    metrics.register(RelayCollector(router, guard, pool))
    return metrics
