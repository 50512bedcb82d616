"""Prometheus metrics: calls by method and code, latency histograms, decisions by tier, rows
with `hit: unique` conflicts by ruleset.

Each server has its own registry (several servers may live in one test process). With
``--workers N`` every worker writes its samples to ``PROMETHEUS_MULTIPROC_DIR`` and the
supervisor exposes their sum on the metrics port (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls = Counter("postloan_grpc_calls", "gRPC calls handled, by method and status code",
                             ["method", "code"], registry=r)
        self.latency = Histogram("postloan_grpc_call_seconds", "Server-side duration of gRPC calls",
                                 ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("postloan_decisions", "Accounts decided, by collection tier",
                                 ["tier"], registry=r)
        self.reloads = Counter("postloan_bundle_reloads", "Bundle reloads, by result", ["result"], registry=r)
        self.unique_conflicts = Counter("postloan_unique_conflict_rows",
                                        "Accounts that more than one rule of a `hit: unique` ruleset fired for "
                                        "(outputs null), by ruleset", ["ruleset"], registry=r)
        self.bundle = Gauge("postloan_bundle_loaded_timestamp_seconds", "When the serving bundle was loaded",
                            ["bundle_hash"], registry=r, multiprocess_mode="max")
        self._call_children: dict = {}
        self._latency_children: dict = {}
        self._tier_children: dict = {}

    def observe_call(self, method: str, code: str, seconds: float) -> None:
        child = self._call_children.get((method, code))
        if child is None:
            child = self._call_children[(method, code)] = self.calls.labels(method, code)
        child.inc()
        hist = self._latency_children.get(method)
        if hist is None:
            hist = self._latency_children[method] = self.latency.labels(method)
        hist.observe(seconds)

    def count_decisions(self, tier: str, n: int = 1) -> None:
        child = self._tier_children.get(tier)
        if child is None:
            child = self._tier_children[tier] = self.decisions.labels(tier)
        child.inc(n)

    def count_unique_conflicts(self, counts: dict[str, int]) -> None:
        """Add a decision's ``PipelineResult.unique_conflicts`` (rows per ruleset)."""
        for ruleset, n in counts.items():
            self.unique_conflicts.labels(ruleset).inc(n)

    def serve(self, port: int, host: str = "127.0.0.1"):
        """Expose the metrics over HTTP (``/metrics``); returns the HTTP server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


def serve_multiprocess(port: int, host: str = "127.0.0.1"):
    """Supervisor side of ``--workers``: expose the sum of every worker's samples."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
