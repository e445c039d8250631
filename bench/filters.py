"""2 (and 6). Filters at scale: median latency at a large account against a small one.

``email=``, ``phone_number=``, ``group=`` and ``view=count`` on accounts of 10,000 and
1,000,000 contacts (quick mode: 100,000, so that a fresh machine can build it), both in
the same database, served by one Rolodex server. Index lookups keep the large account's
median within 2x of the small one's; a scan would not.
"""

from __future__ import annotations

import statistics
import time
from urllib.parse import urlencode

import httpx

from bench.core import Context, Row, Target, fmt_ms
from bench.data import Dataset, dataset
from bench.servers import rolodex_server

SMALL = 10_000
LARGE_FULL = 1_000_000
LARGE_QUICK = 100_000  # the list benchmark's account: no second large build
TARGET = Target("<=", 2.0)
PROBES = 50


def _queries(data: Dataset) -> dict[str, list[tuple[str, str | None]]]:
    """Per filter: (query string, id that must be in the answer) for probes spread over the
    account."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    picks = [data.probe(i) for i in data.probe_indexes(PROBES, salt=2)]
    out["email="] = [
        (urlencode({"email": p.contact.fields.emails[-1].email.upper()}), p.contact.id)
        for p in picks
    ]
    out["phone_number="] = [
        (urlencode({"phone_number": p.contact.fields.phone_numbers[0].number}), p.contact.id)
        for p in picks
    ]
    out["group="] = [(urlencode({"group": g}), None) for g in data.groups]
    out["view=count"] = [("view=count", None)]
    return out


def _median_latency(
    client: httpx.Client, url: str, queries: list[tuple[str, str | None]], n: int
) -> float:
    for query, must in queries[:5]:  # correctness, and warm-up
        resp = client.get(f"{url}/contacts?{query}")
        resp.raise_for_status()
        if must is not None and must not in {c["id"] for c in resp.json()}:
            raise AssertionError(f"{query} did not find {must}")
    times: list[float] = []
    for i in range(n):
        query, _ = queries[i % len(queries)]
        t0 = time.perf_counter()
        resp = client.get(f"{url}/contacts?{query}")
        times.append(time.perf_counter() - t0)
        if resp.status_code != 200:
            raise RuntimeError(f"{query}: {resp.status_code} {resp.text[:200]}")
    return statistics.median(times)


def run(ctx: Context) -> list[Row]:
    large = ctx.pick(LARGE_QUICK, LARGE_FULL)
    if ctx.quick:
        ctx.notes.append(
            f"quick mode compares {SMALL:,} with {large:,} contacts (the full run uses "
            f"{LARGE_FULL:,}; building it takes longer than the quick budget on a fresh machine)"
        )
    n = ctx.pick(150, 600)
    rows: list[Row] = []
    for backend in ctx.backends:
        small_data = dataset(backend, SMALL, ctx.seed)
        large_data = dataset(backend, large, ctx.seed)
        with rolodex_server(small_data.url) as server:
            results: dict[str, dict[int, float]] = {}
            for data in (small_data, large_data):
                headers = {"Authorization": f"Bearer {data.token}"}
                with httpx.Client(timeout=30, headers=headers) as client:
                    for name, queries in _queries(data).items():
                        latency = _median_latency(client, server.url, queries, n)
                        results.setdefault(name, {})[data.size] = latency
        for name, by_size in results.items():
            s, big = by_size[SMALL], by_size[large]
            rows.append(
                Row(
                    benchmark="filters",
                    case=f"{name} median, {large:,} vs {SMALL:,} contacts",
                    backend=backend,
                    rolodex=fmt_ms(big),
                    baseline=fmt_ms(s),
                    ratio=big / s,
                    target=TARGET,
                    data={"median_large_s": big, "median_small_s": s, "requests": n},
                )
            )
    return rows
