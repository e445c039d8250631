"""Prometheus metrics of this process (``GET /metrics`` also reports what the database
holds: rolodex.api.observe)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("rolodex_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "rolodex_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (streams: until they end)",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMITED = Counter(
    "rolodex_rate_limited", "Requests refused with 429, by the limit they passed", ["limit"]
)
SYNC_RUNS = Counter(
    "rolodex_sync_runs", "Sync runs of accounts, by provider and outcome", ["provider", "outcome"]
)
