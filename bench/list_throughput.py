"""1 (and 6). List and get throughput under wrk, against a bare ASGI baseline.

``GET /contacts?limit=100&offset=N`` on an account of 100,000 contacts: several clients
each walk the whole account page by page as the SDKs do (offset 0, 100, 200, ...; the
walkers start spread over the account and wrap around). The baseline is a bare ASGI app
served by the same uvicorn with the same flags, answering with a body of the same size from
memory. ``GET /contacts/{id}`` likewise, over ids spread through the account.
"""

from __future__ import annotations

from bench.core import Context, Row, Target, fmt_rate
from bench.data import dataset
from bench.servers import WrkResult, baseline_server, get, rolodex_server, wrk

SIZE = 100_000
PAGE = 100
CLIENTS = 8
LIST_TARGET = Target(">=", 0.5)
GET_TARGET = Target(">=", 0.6)

WALK_LUA = """
local total, step, clients = {total}, {step}, {clients}
local offsets = {{}}
for i = 1, clients do
  offsets[i] = math.floor((i - 1) * total / clients / step) * step
end
local n = 0
request = function()
  n = n + 1
  local i = (n % clients) + 1
  local offset = offsets[i]
  offsets[i] = offset + step
  if offsets[i] >= total then offsets[i] = 0 end
  return wrk.format("GET", "/contacts?limit={step}&offset=" .. offset)
end
"""

IDS_LUA = """
local ids = {{{ids}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/contacts/" .. ids[(n % #ids) + 1])
end
"""


def _best(
    rolodex_url: str, baseline_url: str, script: str, seconds: float, token: str, rounds: int
) -> tuple[WrkResult, WrkResult]:
    """The best of ``rounds`` runs of each, Rolodex and baseline taking turns, so that a
    drift in the machine's speed during the run weighs on both alike."""
    ours: list[WrkResult] = []
    theirs: list[WrkResult] = []
    for _ in range(rounds):
        ours.append(wrk(rolodex_url, script, seconds, connections=CLIENTS, token=token))
        theirs.append(wrk(baseline_url, script, seconds, connections=CLIENTS, token=token))
    bad = sum(r.non_2xx + r.errors for r in ours + theirs)
    if bad:
        raise RuntimeError(f"{bad} failed requests:\n{ours[-1].output}")
    return max(ours, key=lambda r: r.rps), max(theirs, key=lambda r: r.rps)


def run(ctx: Context) -> list[Row]:
    seconds = ctx.pick(2, 10)
    rounds = ctx.pick(2, 3)
    rows: list[Row] = []
    for backend in ctx.backends:
        data = dataset(backend, SIZE, ctx.seed)
        ids = [data.probe(i).contact.id for i in data.probe_indexes(1000, salt=1)]
        walk = WALK_LUA.format(total=SIZE, step=PAGE, clients=CLIENTS)
        by_id = IDS_LUA.format(ids=",".join(f'"{i}"' for i in ids))
        with rolodex_server(data.url) as server:
            page = get(f"{server.url}/contacts?limit={PAGE}&offset=0", data.token).content
            one = get(f"{server.url}/contacts/{ids[0]}", data.token).content
            assert len(page) > 50_000, len(page)
            with baseline_server(page) as page_base, baseline_server(one) as one_base:
                # Warm up: every page and contact once through the read cache.
                wrk(server.url, walk, 2, connections=CLIENTS, token=data.token)
                wrk(server.url, by_id, 1, connections=CLIENTS, token=data.token)
                # PostgreSQL has no target of its own: one round each in quick mode.
                n = rounds if backend == "sqlite" or not ctx.quick else 1
                list_r, list_b = _best(server.url, page_base.url, walk, seconds, data.token, n)
                get_r, get_b = _best(server.url, one_base.url, by_id, seconds, data.token, n)
        for case, r, b, target, size in (
            (f"GET /contacts?limit={PAGE}&offset=N walk", list_r, list_b, LIST_TARGET, page),
            ("GET /contacts/{id}", get_r, get_b, GET_TARGET, one),
        ):
            rows.append(
                Row(
                    benchmark="list",
                    case=f"{case} ({SIZE:,} contacts, {len(size):,} B body)",
                    backend=backend,
                    rolodex=fmt_rate(r.rps, "req/s"),
                    baseline=fmt_rate(b.rps, "req/s"),
                    ratio=r.rps / b.rps,
                    target=target,
                    data={
                        "rolodex_rps": r.rps,
                        "baseline_rps": b.rps,
                        "rolodex_p50_ms": r.latency_p50_ms,
                        "baseline_p50_ms": b.latency_p50_ms,
                        "body_bytes": len(size),
                        "seconds": seconds,
                        "rounds": n,
                        "connections": CLIENTS,
                        "dataset_built_seconds": data.built_seconds,
                    },
                )
            )
    return rows
