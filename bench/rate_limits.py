"""Rate limiting's cost on the hot reads: the same Rolodex with rate limits on against off.

``on`` checks every limit on every request (per account and endpoint, list concurrency, the
client address's failed authentications) with limits far above this load, so all requests
are checked and none refused: the ratio is the cost of the checks (on PostgreSQL, of sharing
the counts with other processes too: ``rolodex.api.sharedcounts``). Both servers run the
same flags on the list benchmark's account, warmed alike.

They are measured in pairs of short rounds, one server right after the other (each first in
every other pair), and each row's ratio is the median of the pairs' ratios. On this two-core
VM the rate of one server moves by 20 to 40% between rounds a few seconds apart (the load
generator, the server and PostgreSQL share two cores with whatever else the host runs): the
best round of each, the measure before, compared a lucky round of one with a lucky round of
the other, and two runs of the same tree gave 0.61 and 1.06. A pair's two rounds see nearly
the same machine, and the median of many pairs leaves out the pairs that did not.

Each case has three rows: the rate (requests a second), the server's CPU time per request
(user and system, read from ``/proc`` around each round), and the checks alone (``admit``
and ``finish`` timed in-process, added to the CPU a request takes with the limits off).
"""

from __future__ import annotations

import statistics
import time
import timeit
from dataclasses import dataclass

from bench.core import Context, Row, Target, fmt_rate
from bench.data import dataset
from bench.list_throughput import CLIENTS, IDS_LUA, PAGE, SIZE, WALK_LUA
from bench.servers import WrkResult, rolodex_server, wrk
from rolodex.api.fastpath import CONTACT_ROUTE, LIST_ROUTE
from rolodex.api.ratelimit import HOT_ENDPOINTS, RateLimits
from rolodex.config import Settings

TARGET = Target(">=", 0.95)


@dataclass(frozen=True)
class Round:
    """One wrk run against one server, and the server's CPU seconds per request in it
    (what the checks cost, less swayed than the rate by whatever else the machine runs)."""

    wrk: WrkResult
    cpu: float


# Far above what 8 connections can send: counted, never reached.
UNREACHED = {
    "ROLODEX_RATE_LIMIT_ACCOUNT": "1000000000",
    "ROLODEX_RATE_LIMIT_LIST_CONCURRENCY": "1000",
}
UNREACHED_SETTINGS = {"rate_limit_account": 1_000_000_000, "rate_limit_list_concurrency": 1000}


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for backend in ctx.backends:
        rows += _run(ctx, backend)
    return rows


def _run(ctx: Context, backend: str) -> list[Row]:
    seconds = ctx.pick(1, 2)
    pairs = ctx.pick(12, 30)
    data = dataset(backend, SIZE, ctx.seed)
    ids = [data.probe(i).contact.id for i in data.probe_indexes(1000, salt=1)]
    walk = WALK_LUA.format(total=SIZE, step=PAGE, clients=CLIENTS)
    by_id = IDS_LUA.format(ids=",".join(f'"{i}"' for i in ids))
    on_env = {"ROLODEX_RATE_LIMITS": "on", **UNREACHED}
    rows: list[Row] = []
    with (
        rolodex_server(data.url, on_env) as on,
        rolodex_server(data.url, {"ROLODEX_RATE_LIMITS": "off"}) as off,
    ):
        for server in (on, off):  # every page and contact through the read cache, twice
            for _ in range(2):
                wrk(server.url, walk, ctx.pick(3, 5), connections=CLIENTS, token=data.token)
                wrk(server.url, by_id, 1, connections=CLIENTS, token=data.token)
        for case, script in (
            (f"GET /contacts?limit={PAGE}&offset=N walk", walk),
            ("GET /contacts/{id}", by_id),
        ):
            ours: list[Round] = []
            theirs: list[Round] = []
            for n in range(pairs):
                # Each first in every other pair: a machine warming up or slowing down
                # within a pair weighs on both alike.
                pair = ((on, ours), (off, theirs)) if n % 2 == 0 else ((off, theirs), (on, ours))
                for server, results in pair:
                    before = server.cpu_seconds()
                    got = wrk(server.url, script, seconds, connections=CLIENTS, token=data.token)
                    results.append(Round(got, (server.cpu_seconds() - before) / got.requests))
            bad = sum(r.wrk.non_2xx + r.wrk.errors for r in ours + theirs)
            if bad:
                raise RuntimeError(f"{bad} failed requests:\n{ours[-1].wrk.output}")
            rates = [o.wrk.rps / t.wrk.rps for o, t in zip(ours, theirs, strict=True)]
            cpus = [t.cpu / o.cpu for o, t in zip(ours, theirs, strict=True)]
            low, _, high = statistics.quantiles(rates, n=4)
            what = f"{case}, rate limits on vs off ({SIZE:,} contacts)"
            rows.append(
                Row(
                    benchmark="ratelimit",
                    case=what,
                    backend=backend,
                    rolodex=fmt_rate(statistics.median(o.wrk.rps for o in ours), "req/s"),
                    baseline=fmt_rate(statistics.median(t.wrk.rps for t in theirs), "req/s"),
                    ratio=statistics.median(rates),
                    target=TARGET,
                    note=f"median of {pairs} pairs of {seconds} s rounds "
                    f"(quartiles {low:.2f} to {high:.2f}); rates: medians",
                    data={
                        "pair_ratios": rates,
                        "on_rps": [o.wrk.rps for o in ours],
                        "off_rps": [t.wrk.rps for t in theirs],
                        "best_of_ratio": max(o.wrk.rps for o in ours)
                        / max(t.wrk.rps for t in theirs),
                        "seconds": seconds,
                        "pairs": pairs,
                        "connections": CLIENTS,
                    },
                )
            )
            cpu_on = statistics.median(x.cpu for x in ours)
            cpu_off = statistics.median(x.cpu for x in theirs)
            checks = _checks_cost(HOT_ENDPOINTS[LIST_ROUTE if "walk" in case else CONTACT_ROUTE])
            rows.append(
                Row(
                    benchmark="ratelimit",
                    case=f"{what}: the checks alone (admit and finish, in-process)",
                    backend=backend,
                    rolodex=f"{(cpu_off + checks) * 1e6:.1f} µs",
                    baseline=f"{cpu_off * 1e6:.1f} µs",
                    ratio=cpu_off / (cpu_off + checks),
                    target=TARGET,
                    note=f"{checks * 1e6:.2f} µs a request (best of 7 x 100,000), "
                    "added to the CPU a request takes with them off",
                    data={"checks": checks},
                )
            )
            rows.append(
                Row(
                    benchmark="ratelimit",
                    case=f"{what}: server CPU per request",
                    backend=backend,
                    rolodex=f"{cpu_on * 1e6:.1f} µs",
                    baseline=f"{cpu_off * 1e6:.1f} µs",
                    ratio=statistics.median(cpus),
                    target=TARGET,
                    note="off / on, median of the pairs: the requests a CPU second serves",
                    data={"on_cpu": [x.cpu for x in ours], "off_cpu": [x.cpu for x in theirs]},
                )
            )
    return rows


def _checks_cost(name: str) -> float:
    """Seconds that ``RateLimits.admit`` and ``finish`` take for one request of a hot
    read, with limits far above what is counted (as the ``on`` server's): the best of
    seven runs of 100,000, so that what else the machine runs weighs least."""
    limits = RateLimits(Settings(database_url="sqlite://", **UNREACHED_SETTINGS))
    scope = {"type": "http", "method": "GET", "path": "/contacts/x", "client": ("127.0.0.1", 1)}

    def one() -> None:
        slot = limits.admit(scope, time.time(), b"Bearer token", name)
        limits.finish(scope, slot if isinstance(slot, tuple) and len(slot) == 2 else None, 200)

    return min(timeit.repeat(one, number=100_000, repeat=7)) / 100_000
