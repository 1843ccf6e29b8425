"""Exporting ``Cache.stats()`` to Prometheus (``prometheus_client``) and OpenTelemetry.

Both read the cache's own counters when scraped or collected, so they add nothing to the hot
paths. Metric names (label ``cache`` is the name you give; ``tier`` is ``memory``, ``disk``,
``redis``)::

    mlcache_tier_events_total{cache,tier,event}   hits, misses, sets, deletes, errors,
                                                   timeouts, skips, retries, dropped_writes, ...
    mlcache_tier_breaker_state{cache,tier,state}   1 for the current state, 0 for the others
    mlcache_tier_breaker_transitions_total{cache,tier}
    mlcache_tier_latency_seconds{cache,tier}        histogram of remote tier operations
    mlcache_events_total{cache,event}              loads, load_errors, null_hits, waits,
                                                   stale_served, bulkhead_rejections, ...
    mlcache_flights{cache}                         loads in flight (single-flight leaders)
    mlcache_load_seconds{cache}                    histogram of loader calls
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .errors import ConfigurationError
from .resilience import CLOSED, HALF_OPEN, OPEN

__all__ = ["PrometheusCollector", "instrument_opentelemetry", "register_prometheus"]

_NOT_EVENTS = {"breaker", "breaker_transitions", "latency", "size", "maxsize", "flights"}


def _events(stats: dict[str, Any]) -> Iterator[tuple[str, int]]:
    return ((k, v) for k, v in stats.items() if k not in _NOT_EVENTS and isinstance(v, int))


class PrometheusCollector:
    """A ``prometheus_client`` collector of one cache's statistics (see the module docstring)."""

    def __init__(self, cache: Any, name: str = "default") -> None:
        self.cache, self.name = cache, name

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        stats = self.cache.stats()
        tier_events = CounterMetricFamily("mlcache_tier_events", "Events per tier", labels=["cache", "tier", "event"])
        breaker = GaugeMetricFamily("mlcache_tier_breaker_state", "Circuit breaker state",
                                    labels=["cache", "tier", "state"])  # fmt: skip
        transitions = CounterMetricFamily("mlcache_tier_breaker_transitions", "Breaker transitions",
                                          labels=["cache", "tier"])  # fmt: skip
        latency = HistogramMetricFamily("mlcache_tier_latency_seconds", "Remote tier operation time",
                                        labels=["cache", "tier"])  # fmt: skip
        for tier, tier_stats in stats["tiers"].items():
            for event, value in _events(tier_stats):
                tier_events.add_metric([self.name, tier, event], value)
            if "breaker" in tier_stats:
                for state in (CLOSED, OPEN, HALF_OPEN):
                    breaker.add_metric([self.name, tier, state], float(tier_stats["breaker"] == state))
                transitions.add_metric([self.name, tier], tier_stats["breaker_transitions"])
                hist = tier_stats["latency"]
                latency.add_metric([self.name, tier], _buckets(hist), hist["sum"])
        events = CounterMetricFamily("mlcache_events", "Cache events", labels=["cache", "event"])
        for event, value in _events(stats):
            events.add_metric([self.name, event], value)
        flights = GaugeMetricFamily("mlcache_flights", "Loads in flight", labels=["cache"])
        flights.add_metric([self.name], stats["flights"])
        loads = HistogramMetricFamily("mlcache_load_seconds", "Loader call time", labels=["cache"])
        loads.add_metric([self.name], _buckets(stats["load_time"]), stats["load_time"]["sum"])
        yield from (tier_events, breaker, transitions, latency, events, flights, loads)


def _buckets(hist: dict[str, Any]) -> list[tuple[str, int]]:
    return [("+Inf" if math.isinf(b) else repr(b), c) for b, c in hist["buckets"].items()]


def register_prometheus(cache: Any, name: str = "default", registry: Any = None) -> PrometheusCollector:
    """Expose ``cache``'s statistics under label ``cache=name`` in ``registry`` (default: the
    global one); needs the ``prometheus`` extra."""
    try:
        from prometheus_client import REGISTRY
    except ImportError as exc:
        raise ConfigurationError("Prometheus export needs: pip install 'mlcache[prometheus]'") from exc
    collector = PrometheusCollector(cache, name)
    (registry or REGISTRY).register(collector)
    return collector


def instrument_opentelemetry(cache: Any, meter: Any, name: str = "default") -> None:
    """Report ``cache``'s statistics through an OpenTelemetry ``meter`` as observable counters
    and gauges (OpenTelemetry has no observable histogram: latencies are exported as their
    count, sum and p99)."""
    try:
        from opentelemetry.metrics import Observation
    except ImportError as exc:
        raise ConfigurationError("OpenTelemetry export needs: pip install 'mlcache[otel]'") from exc

    def tier_events(_options: Any) -> Iterator[Any]:
        for tier, stats in cache.stats()["tiers"].items():
            for event, value in _events(stats):
                yield Observation(value, {"cache": name, "tier": tier, "event": event})

    def breaker(_options: Any) -> Iterator[Any]:
        for tier, stats in cache.stats()["tiers"].items():
            if "breaker" in stats:
                for state in (CLOSED, OPEN, HALF_OPEN):
                    yield Observation(int(stats["breaker"] == state), {"cache": name, "tier": tier, "state": state})

    def latency_p99(_options: Any) -> Iterator[Any]:
        stats = cache.stats()
        for tier, tier_stats in stats["tiers"].items():
            p99 = tier_stats.get("latency", {}).get("p99")
            if p99 is not None and math.isfinite(p99):
                yield Observation(p99, {"cache": name, "tier": tier})
        p99 = stats["load_time"]["p99"]
        if p99 is not None and math.isfinite(p99):
            yield Observation(p99, {"cache": name, "tier": "loader"})

    def events(_options: Any) -> Iterator[Any]:
        for event, value in _events(cache.stats()):
            yield Observation(value, {"cache": name, "event": event})

    meter.create_observable_counter("mlcache.tier.events", [tier_events], description="Events per tier")
    meter.create_observable_gauge("mlcache.tier.breaker_state", [breaker], description="Circuit breaker state")
    meter.create_observable_gauge("mlcache.latency_p99", [latency_p99], unit="s",
                                  description="p99 of tier operations and loader calls")  # fmt: skip
    def flights(_options: Any) -> Iterator[Any]:
        yield Observation(cache.stats()["flights"], {"cache": name})

    meter.create_observable_counter("mlcache.events", [events], description="Cache events")
    meter.create_observable_gauge("mlcache.flights", [flights], description="Loads in flight")
