"""Prometheus metrics, one CollectorRegistry per application.

The router bumps plain integers on its hot path; this collector turns them into
metric families only when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .routing import Router


class RelayCollector(Collector):
    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[Metric]:
        router = self._router
        stats = router.stats
        conns = GaugeMetricFamily(
            "homeseal_relay_connections", "Open websocket connections", labels=["role"]
        )
        conns.add_metric(["device"], len(router.devices))
        conns.add_metric(["controller"], len(router.controllers))
        conns.add_metric(["unauthenticated"], len(router.pending))
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
        for role in ("device", "controller"):
            failures.add_metric([role], stats.auth_failures.get(role, 0))
        yield failures
        closes = CounterMetricFamily(
            "homeseal_relay_closes", "Connections closed by the relay, by code", labels=["code"]
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric([str(code)], count)
        yield closes


def make_registry(router: Router) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RelayCollector(router))
    return registry
