"""Rate limiting's cost on the hot reads: the same Rolodex with rate limits on against off.

``on`` checks every limit on every request (per account and endpoint, list concurrency, the
client address's failed authentications) with limits far above this load, so all requests
are checked and none refused: the ratio is the cost of the checks (on PostgreSQL, of sharing
the counts with other processes too: ``rolodex.api.sharedcounts``). Both servers run the
same flags on the list benchmark's account, warmed alike; they take turns (each first in
every other round), best of the rounds.
"""

from __future__ import annotations

from bench.core import Context, Row, Target, fmt_rate
from bench.data import dataset
from bench.list_throughput import CLIENTS, IDS_LUA, PAGE, SIZE, WALK_LUA
from bench.servers import WrkResult, rolodex_server, wrk

TARGET = Target(">=", 0.95)
# Far above what 8 connections can send: counted, never reached.
UNREACHED = {
    "ROLODEX_RATE_LIMIT_ACCOUNT": "1000000000",
    "ROLODEX_RATE_LIMIT_LIST_CONCURRENCY": "1000",
}


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for backend in ctx.backends:
        rows += _run(ctx, backend)
    return rows


def _run(ctx: Context, backend: str) -> list[Row]:
    seconds = ctx.pick(2, 10)
    rounds = ctx.pick(5, 7)
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
            ours: list[WrkResult] = []
            theirs: list[WrkResult] = []
            for n in range(rounds):
                # Taking turns, first one then the other first: a machine warming up or
                # slowing down during the run weighs on both alike.
                pair = ((on, ours), (off, theirs)) if n % 2 == 0 else ((off, theirs), (on, ours))
                for server, results in pair:
                    results.append(
                        wrk(server.url, script, seconds, connections=CLIENTS, token=data.token)
                    )
            bad = sum(r.non_2xx + r.errors for r in ours + theirs)
            if bad:
                raise RuntimeError(f"{bad} failed requests:\n{ours[-1].output}")
            r, b = max(ours, key=lambda x: x.rps), max(theirs, key=lambda x: x.rps)
            rows.append(
                Row(
                    benchmark="ratelimit",
                    case=f"{case}, rate limits on vs off ({SIZE:,} contacts)",
                    backend=backend,
                    rolodex=fmt_rate(r.rps, "req/s"),
                    baseline=fmt_rate(b.rps, "req/s"),
                    ratio=r.rps / b.rps,
                    target=TARGET,
                    data={
                        "on_rps": r.rps,
                        "off_rps": b.rps,
                        "on_p50_ms": r.latency_p50_ms,
                        "off_p50_ms": b.latency_p50_ms,
                        "seconds": seconds,
                        "rounds": rounds,
                        "connections": CLIENTS,
                    },
                )
            )
    return rows
