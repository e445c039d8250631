"""Prometheus metrics of this process (``GET /metrics`` also reports what the database
holds: rolodex.api.observe).

HTTP requests are counted on the event loop's thread, in plain dictionaries turned into
metric families only when scraped: prometheus-client's own counters and histograms take a
lock and walk their buckets on every update, which cost the hot reads several
microseconds a request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

RATE_LIMITED = Counter(
    "rolodex_rate_limited", "Requests refused with 429, by the limit they passed", ["limit"]
)
# Counted where the syncs run: the server's own sync thread shows them at /metrics;
# separate `rolodex worker` processes have no HTTP endpoint.
SYNC_RUNS = Counter(
    "rolodex_sync_runs",
    "Sync runs of accounts in this process, by outcome (ok, or the state a failure left)",
    ["outcome"],
)

# What providers answered that was not success, where the syncs run, by kind: transient
# (unreachable, 5xx, 429: tried again later), refused (a write or read the provider will
# not take), credentials (the provider refused them: the account waits for new ones),
# unexpected (nothing classified it: likely a bug).
PROVIDER_ERRORS = Counter(
    "rolodex_provider_errors", "Provider errors met by syncs in this process", ["provider", "kind"]
)

BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpStats(Collector):
    def __init__(self) -> None:
        # (method, route, status) -> [count]
        self.requests: dict[tuple[str, str, int], list[int]] = {}
        # route -> [counts per bucket (the last: past every bound), sum of seconds]
        self.latency: dict[str, tuple[list[int], list[float]]] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        count = self.requests.get(key)
        if count is None:
            if method not in _METHODS:  # the client's to choose: one label for the rest
                method = "OTHER"
                key = (method, route, status)
            count = self.requests.setdefault(key, [0])
        count[0] += 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency.setdefault(route, ([0] * (len(BOUNDS) + 1), [0.0]))
        histogram[0][bisect_left(BOUNDS, seconds)] += 1
        histogram[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "rolodex_http_requests", "HTTP requests answered", labels=["method", "route", "status"]
        )
        for (method, route, status), count in list(self.requests.items()):
            requests.add_metric([method, route, str(status)], count[0])
        yield requests
        latency = HistogramMetricFamily(
            "rolodex_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (streams: until they end)",
            labels=["route"],
        )
        for route, (counts, total) in list(self.latency.items()):
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, n in zip(BOUNDS, counts, strict=False):
                running += n
                buckets.append((str(bound), running))
            buckets.append(("+Inf", running + counts[-1]))
            latency.add_metric([route], buckets, total[0])
        yield latency


HTTP = HttpStats()
REGISTRY.register(HTTP)
