"""Scaling out on one host: ``rolodex serve --workers 2`` against ``--workers 1`` on
PostgreSQL, the same read mix through both, taking turns.

The mix is what SDK clients of one account do: three ``GET /contacts/{id}`` (ids spread
through the account) for each ``GET /contacts?limit=100&offset=N`` page of a walk, on the
list benchmark's account (100,000 contacts), from 8 wrk connections.

The machine has two cores, and wrk, PostgreSQL and the server share them: wrk runs with
one thread (it needs well under a core at these rates), and beside Rolodex the same is
measured for the bare ASGI app under uvicorn with one and two processes. That row is the
ceiling this machine allows a second process (what is left of the second core once wrk and
the rest have theirs), not a target. Each round also records the CPU each server process
used, so a second process that receives little of the load shows as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core import Context, Row, Target, fmt_rate
from bench.data import dataset
from bench.list_throughput import PAGE, SIZE
from bench.servers import (
    Server,
    WrkResult,
    baseline_server,
    cpu_seconds,
    get,
    rolodex_serve,
    wrk,
)

CONNECTIONS = 8
TARGET = Target(">=", 1.6)
# One page of the walk for every GETS_PER_PAGE contacts read by id.
GETS_PER_PAGE = 3

MIX_LUA = """
local ids = {{{ids}}}
local total, step, walkers = {total}, {step}, {walkers}
local offsets = {{}}
for i = 1, walkers do
  offsets[i] = math.floor((i - 1) * total / walkers / step) * step
end
local n = 0
request = function()
  n = n + 1
  if n % ({gets} + 1) == 0 then
    local i = (n % walkers) + 1
    local offset = offsets[i]
    offsets[i] = offset + step
    if offsets[i] >= total then offsets[i] = 0 end
    return wrk.format("GET", "/contacts?limit={step}&offset=" .. offset)
  end
  return wrk.format("GET", "/contacts/" .. ids[(n % #ids) + 1])
end
"""


@dataclass
class Round:
    result: WrkResult
    cpu: list[float]  # seconds each answering process used during the round

    @property
    def split(self) -> float:
        """The least busy process's CPU against the busiest's (1.0: an even split)."""
        return min(self.cpu) / max(self.cpu) if max(self.cpu) > 0 else 0.0


def _round(server: Server, script: str, seconds: float, token: str) -> Round:
    pids = server.processes()
    before = [cpu_seconds(p) for p in pids]
    result = wrk(server.url, script, seconds, connections=CONNECTIONS, token=token)
    after = [cpu_seconds(p) for p in pids]
    if result.non_2xx or result.errors:
        raise RuntimeError(f"failed requests:\n{result.output}")
    return Round(result, [b - a for a, b in zip(before, after, strict=True)])


def _turns(
    one: Server, two: Server, script: str, seconds: float, token: str, rounds: int
) -> tuple[Round, Round]:
    """The best round of each, one process and two taking turns, so that a drift in the
    machine's load (other work on it) weighs on both alike."""
    ones: list[Round] = []
    twos: list[Round] = []
    for _ in range(rounds):
        ones.append(_round(one, script, seconds, token))
        twos.append(_round(two, script, seconds, token))
    return max(ones, key=lambda r: r.result.rps), max(twos, key=lambda r: r.result.rps)


def run(ctx: Context) -> list[Row]:
    case = f"read mix ({GETS_PER_PAGE} gets : 1 list page), {CONNECTIONS} connections"
    if not ctx.postgres:
        return [
            Row("scale", f"--workers 2 vs 1, {case}", "postgres", "-", "-", pending="no PostgreSQL")
        ]
    seconds = ctx.pick(3, 10)
    rounds = ctx.pick(2, 3)
    data = dataset("postgres", SIZE, ctx.seed)
    ids = [data.probe(i).contact.id for i in data.probe_indexes(1000, salt=1)]
    script = MIX_LUA.format(
        ids=",".join(f'"{i}"' for i in ids),
        total=SIZE,
        step=PAGE,
        walkers=CONNECTIONS,
        gets=GETS_PER_PAGE,
    )
    with rolodex_serve(data.url, 1) as one, rolodex_serve(data.url, 2) as two:
        page = get(f"{one.url}/contacts?limit={PAGE}&offset=0", data.token).content
        single = get(f"{one.url}/contacts/{ids[0]}", data.token).content
        # Every page and contact through each process's read cache once, and every
        # process started and warm before anything is measured.
        for server in (one, two):
            _round(server, script, ctx.pick(4, 8), data.token)
        ours = _turns(one, two, script, seconds, data.token, rounds)
    with (
        baseline_server(single, 1, page) as bare_one,
        baseline_server(single, 2, page) as bare_two,
    ):
        bare = _turns(bare_one, bare_two, script, seconds, data.token, rounds)
    rows = []
    ceiling = bare[1].result.rps / bare[0].result.rps
    # A second process cannot give more than the machine has left for it: below the
    # target even for the bare app, the run says nothing of Rolodex's scaling.
    busy = (
        f"this machine's ceiling is {ceiling:.2f}x now (busy)" if ceiling < TARGET.value else None
    )
    for name, (w1, w2), target in (
        ("rolodex serve", ours, TARGET),
        ("bare ASGI app, uvicorn (this machine's ceiling)", bare, None),
    ):
        ratio = w2.result.rps / w1.result.rps
        rows.append(
            Row(
                benchmark="scale",
                case=f"{name} --workers 2 vs 1, {case}",
                backend="postgres" if target else "-",
                rolodex=fmt_rate(w2.result.rps, "req/s") + f" (split {w2.split:.2f})",
                baseline=fmt_rate(w1.result.rps, "req/s"),
                ratio=ratio,
                target=target,
                pending=busy if target else None,
                note="split: CPU of the least busy process against the busiest's",
                data={
                    "workers_2_rps": w2.result.rps,
                    "workers_1_rps": w1.result.rps,
                    "workers_2_cpu_seconds": w2.cpu,
                    "workers_1_cpu_seconds": w1.cpu,
                    "workers_2_p50_ms": w2.result.latency_p50_ms,
                    "workers_1_p50_ms": w1.result.latency_p50_ms,
                    "seconds": seconds,
                    "rounds": rounds,
                    "connections": CONNECTIONS,
                    "wrk_threads": 1,
                },
            )
        )
    return rows
