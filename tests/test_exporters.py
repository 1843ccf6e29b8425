"""Prometheus and OpenTelemetry exports of Cache.stats()."""

from __future__ import annotations

import pytest

from mlcache import Cache, DiskTier, MemoryTier
from mlcache.exporters import instrument_opentelemetry, register_prometheus


@pytest.fixture
def cache(tmp_path):
    cache = Cache(MemoryTier(10), DiskTier(tmp_path))
    cache.get_or_load("a", lambda: 1)
    cache.get_or_load("a", lambda: 1)
    cache.get_or_load("none", lambda: None)
    cache.get("none")
    yield cache
    cache.close()


def test_prometheus(cache):
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    register_prometheus(cache, "main", registry)
    text = generate_latest(registry).decode()
    assert 'mlcache_events_total{cache="main",event="loads"} 2.0' in text
    assert 'mlcache_events_total{cache="main",event="null_hits"} 1.0' in text
    assert 'mlcache_tier_events_total{cache="main",event="sets",tier="disk"} 2.0' in text
    assert 'mlcache_tier_breaker_state{cache="main",state="closed",tier="disk"} 1.0' in text
    assert 'mlcache_tier_latency_seconds_count{cache="main",tier="disk"}' in text
    assert 'mlcache_load_seconds_bucket{cache="main",le="+Inf"} 2.0' in text
    assert 'mlcache_flights{cache="main"} 0.0' in text


def test_opentelemetry(cache):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrument_opentelemetry(cache, provider.get_meter("mlcache-test"), "main")
    data = reader.get_metrics_data()
    points = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    points[(metric.name, tuple(sorted(point.attributes.items())))] = point.value
    assert points[("mlcache.events", (("cache", "main"), ("event", "loads")))] == 2
    assert points[("mlcache.tier.events", (("cache", "main"), ("event", "sets"), ("tier", "disk")))] == 2
    assert points[("mlcache.tier.breaker_state", (("cache", "main"), ("state", "closed"), ("tier", "disk")))] == 1
    provider.shutdown()
