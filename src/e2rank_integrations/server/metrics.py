"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKENS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class _BackendCollector(Collector):
    """The backend's own counters (``stats()``), read at scrape time."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        for key, doc in (
            ("texts_embedded", "Texts run through the network"),
            ("tokens_embedded", "Tokens run through the network"),
            ("cache_hits", "Texts answered from the embedding cache"),
            ("batches", "Forward passes"),
        ):
            if key in stats:
                yield CounterMetricFamily(f"e2rank_{key}", doc, value=float(stats[key]))
        if "cache_entries" in stats:
            entries = float(stats["cache_entries"])
            yield GaugeMetricFamily("e2rank_cache_entries", "Entries in the embedding cache", value=entries)


class Metrics:
    """Requests, latencies, queue depth, batch sizes and tokens, and the backend's cache counters."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("e2rank_requests", "HTTP requests", ["path", "status"], registry=self.registry)
        self.latency = Histogram(
            "e2rank_request_duration_seconds", "Request latency", ["path"], buckets=_SECONDS, registry=self.registry
        )
        self.queue_time = Histogram(
            "e2rank_queue_duration_seconds", "Time a job waited for its batch", buckets=_SECONDS, registry=self.registry
        )
        self.inference_time = Histogram(
            "e2rank_inference_duration_seconds",
            "Time of one batch's forward passes",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.batch_size = Histogram("e2rank_batch_size", "Texts in one batch", buckets=_SIZES, registry=self.registry)
        self.batch_tokens = Histogram(
            "e2rank_batch_tokens", "Tokens in one batch", buckets=_TOKENS, registry=self.registry
        )
        self.queue_depth = Gauge("e2rank_queue_depth", "Jobs waiting for a batch", registry=self.registry)
        self.in_flight = Gauge("e2rank_requests_in_flight", "Model requests being served", registry=self.registry)
        self.connections_refused = Counter(
            "e2rank_connections_refused",
            "Connections closed on accept: more were open than limit_concurrency",
            registry=self.registry,
        )

    def watch(self, queue_depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        """Read the two gauges from the running server at scrape time."""
        self.queue_depth.set_function(queue_depth)
        self.in_flight.set_function(in_flight)

    def watch_backend(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Export the backend's counters (texts embedded, cache hits...)."""
        self.registry.register(_BackendCollector(stats))

    def observe_batch(self, texts: int, tokens: int, queue_seconds: list[float], inference_seconds: float) -> None:
        """Record one batch: its size, how long each of its jobs waited, and how long it ran."""
        self.batch_size.observe(texts)
        self.batch_tokens.observe(tokens)
        for seconds in queue_seconds:
            self.queue_time.observe(seconds)
        self.inference_time.observe(inference_seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
