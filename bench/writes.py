"""3. Writes: contacts created per second through ``POST /contacts`` by 8 concurrent
clients (wrk connections) writing to one account, on SQLite and PostgreSQL.

Three things are measured on each database: the rate, against the store's own bulk insert
of the same contacts (rendered beforehand, one transaction) as the baseline (no target);
the failed requests (any non-2xx answer or socket error is a failure); and what the
writes left behind: every acknowledged contact (wrk records the id of each 2xx answer)
present exactly once, created once in the change feed, and the feed in commit order, as a
delta client following it while the writes ran saw it (a change committed after a
later-numbered one is stepped over by such a client, and so missing from what it saw).
Across the two, PostgreSQL's rate against SQLite's: "the same order" (the README says why
the target is what it is).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import orjson
from sqlalchemy import select

from bench.core import Context, Row, Target, fmt_rate
from bench.data import (
    CACHE,
    backend_url,
    contact_bodies,
    delete_account,
    ensure_database,
    schema_key,
    scratch_account,
)
from bench.servers import WrkResult, rolodex_server, wrk
from rolodex.domain.contact import Contact, ContactFields
from rolodex.domain.ids import new_id
from rolodex.domain.normalize import index_terms
from rolodex.domain.wire import contact_document, parse_contact_patch
from rolodex.store import Store, Tx
from rolodex.store.contacts import NewContact
from rolodex.store.database import bulk_write_connection
from rolodex.store.schema import contacts

CONNECTIONS = 8
# PostgreSQL's contacts/s against SQLite's, for one account (see bench/README.md).
SAME_ORDER = Target(">=", 0.5)
NONE = Target("<=", 0)
# How often the delta client asks for what follows what it has seen.
FOLLOW_SECONDS = 0.05

POST_LUA = """
local bodies = {{}}
for line in io.lines("{path}") do bodies[#bodies + 1] = line end
local n = 0
-- A header table given to wrk.format replaces wrk's own (-H) headers, so the token goes here.
local headers = {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}
request = function()
  n = n + 1
  return wrk.format("POST", "/contacts", headers, bodies[(n % #bodies) + 1])
end
-- Each acknowledged contact's id (a stored document begins with it), or the failure.
local acks = io.open("{acks}", "a")
acks:setvbuf("line")
response = function(status, headers, body)
  if status >= 200 and status < 300 then
    acks:write(string.match(body, '^{{"id":"([^"]+)"') or "?", "\\n")
  else
    acks:write("! ", status, " ", (string.gsub(string.sub(body, 1, 300), "\\n", " ")), "\\n")
  end
end
"""


class FeedFollower:
    """A delta client of the account while the writes run: it asks ``GET /delta`` for what
    follows the last change it has seen, every ``FOLLOW_SECONDS``."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        self.cursor = "0"
        self.seen: list[tuple[str, str, str]] = []  # cursor, event, contact id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FeedFollower:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(FOLLOW_SECONDS):
            self.read()

    def read(self) -> bool:
        """One page after the cursor; False when it was empty."""
        page = self.client.get("/delta", params={"cursor": self.cursor}).raise_for_status()
        body = page.json()
        self.seen += [(d["cursor"], d["event"], d["id"]) for d in body["deltas"]]
        self.cursor = body["cursor_end"]
        return bool(body["deltas"])

    def everything(self) -> list[tuple[str, str, str]]:
        """Read to the end (after the writes) and close."""
        while self.read():
            pass
        self.client.close()
        return self.seen


def _seq(cursor: str) -> int:
    return int(cursor[1:], 16)  # rolodex.service.changefeed.encode_cursor


def _problems(
    url: str,
    account_id: str,
    acks: list[str],
    followed: list[tuple[str, str, str]],
    feed: list[tuple[str, str, str]],
) -> list[str]:
    """What is wrong with what the writes left behind (nothing, when all is well)."""
    out = []
    store = Store(url)
    try:
        with store.read() as tx:
            stored = Counter(
                tx.conn.execute(
                    select(contacts.c.id).where(contacts.c.account_id == account_id)
                ).scalars()
            )
            counted = tx.accounts.get(account_id).contact_count
    finally:
        store.close()
    acked = Counter(acks)
    out += [f"acknowledged twice: {i}" for i, n in acked.items() if n > 1]
    out += [f"acknowledged, missing: {i}" for i in acked if stored[i] == 0]
    out += [f"stored {n} times: {i}" for i, n in stored.items() if n > 1]
    # Requests in flight when wrk stopped may have been written, unacknowledged.
    if len(stored) - len(acked) > CONNECTIONS:
        out.append(f"{len(stored) - len(acked)} stored contacts were never acknowledged")
    if counted != sum(stored.values()):
        out.append(f"the account counts {counted} contacts, {sum(stored.values())} stored")
    created = Counter(i for _, event, i in feed if event == "create")
    out += [f"created {created[i]} times in the feed: {i}" for i in acked if created[i] != 1]
    seqs = [_seq(c) for c, _, _ in feed]
    if seqs != sorted(set(seqs)):
        out.append("the change feed is not in increasing order")
    if followed != feed:
        missed = len(set(feed) - set(followed))
        out.append(f"the delta client stepped over {missed} changes committed out of order")
    return out


def _url(backend: str, seed: int) -> str:
    if backend == "sqlite":
        path = CACHE / f"writes-{schema_key()}.db"
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return backend_url(backend, seed)


def _bulk_insert(url: str, bodies: list[dict[str, object]]) -> float:
    """Seconds the store takes to insert these contacts in one bulk transaction."""
    account, _ = scratch_account(url, "bench-writes-baseline")
    rows = []
    for body in bodies:
        fields = parse_contact_patch(body).apply(ContactFields())
        contact = Contact(id=new_id(), account_id=account.id, fields=fields)
        rows.append((contact.id, contact_document(contact, {}), frozenset(index_terms(fields))))
    store = Store(url)
    try:
        t0 = time.perf_counter()
        with bulk_write_connection(store.engine) as conn:
            tx = Tx(conn)
            first = tx.accounts.allocate(account.id, len(rows))
            tx.contacts.insert_many(
                account.id,
                [
                    NewContact(pk=first + i, id=cid, doc=doc, terms=terms, group_ids=())
                    for i, (cid, doc, terms) in enumerate(rows)
                ],
                time.time(),
            )
            tx.accounts.add_contacts(account.id, len(rows))
        seconds = time.perf_counter() - t0
    finally:
        store.close()
    delete_account(url, account.id)
    return seconds


@dataclass
class Round:
    """One wrk run against a fresh account, and what it left behind."""

    result: WrkResult
    acks: list[str]  # ids of the contacts acknowledged
    failures: list[str]  # what wrk's script recorded of each non-2xx answer
    problems: list[str]  # what is wrong afterwards (``_problems``)

    @property
    def rate(self) -> float:
        return len(self.acks) / self.result.seconds


def _round(url: str, bodies_path: str, seconds: float) -> Round:
    account, token = scratch_account(url, "bench-writes")
    with tempfile.NamedTemporaryFile("r", suffix=".acks") as acks_file:
        script = POST_LUA.format(path=bodies_path, token=token, acks=acks_file.name)
        with rolodex_server(url) as server:
            with FeedFollower(server.url, token) as follower:
                result = wrk(server.url, script, seconds, connections=CONNECTIONS, token=token)
            feed = FeedFollower(server.url, token).everything()
            followed = follower.everything()
        answers = acks_file.read().splitlines()
    acks = [a for a in answers if not a.startswith("!")]
    failures = [a for a in answers if a.startswith("!")]
    problems = _problems(url, account.id, acks, followed, feed)
    delete_account(url, account.id)
    return Round(result, acks, failures, problems)


def run(ctx: Context) -> list[Row]:
    seconds = ctx.pick(3, 15)
    # The databases take turns, best round of each, so that a drift in the machine's load
    # (other work on it) weighs on both alike; every round's outcome is checked.
    rounds = ctx.pick(2, 3)
    rows: list[Row] = []
    bodies = contact_bodies(ctx.seed + 3, ctx.pick(5000, 20000))
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        for body in bodies:
            f.write(orjson.dumps(body) + b"\n")
        bodies_path = f.name
    done: dict[str, list[Round]] = {backend: [] for backend in ctx.backends}
    try:
        for _ in range(rounds):
            for backend in ctx.backends:
                url = _url(backend, ctx.seed)
                ensure_database(url)
                done[backend].append(_round(url, bodies_path, seconds))
    finally:
        os.unlink(bodies_path)
    best: dict[str, Round] = {}
    for backend, runs in done.items():
        rows += _outcome_rows(backend, runs)
        top = best[backend] = max(runs, key=lambda r: r.rate)
        created = len(top.acks)
        sample = (bodies * (created // len(bodies) + 1))[: max(created, 1)]
        bulk_seconds = _bulk_insert(_url(backend, ctx.seed), sample)
        bulk_rate = len(sample) / bulk_seconds
        rows.append(
            Row(
                benchmark="writes",
                case=f"POST /contacts, {CONNECTIONS} clients, {created:,} created",
                backend=backend,
                rolodex=fmt_rate(top.rate, "contacts/s"),
                baseline=fmt_rate(bulk_rate, "contacts/s") + " (bulk insert)",
                ratio=top.rate / bulk_rate,
                data={
                    "created": created,
                    "api_seconds": top.result.seconds,
                    "bulk_seconds": bulk_seconds,
                    "p50_ms": top.result.latency_p50_ms,
                    "rates": [r.rate for r in runs],
                },
            )
        )
    if "postgres" in best:
        pg, lite = best["postgres"].rate, best["sqlite"].rate
        rows.append(
            Row(
                benchmark="writes",
                case=f"POST /contacts, {CONNECTIONS} clients of one account: PostgreSQL vs SQLite",
                backend="postgres",
                rolodex=fmt_rate(pg, "contacts/s"),
                baseline=fmt_rate(lite, "contacts/s") + " (SQLite)",
                ratio=pg / lite,
                target=SAME_ORDER,
                data={"rounds": rounds, "seconds": seconds},
            )
        )
    return rows


def _outcome_rows(backend: str, runs: list[Round]) -> list[Row]:
    """A row for the failed requests and one for the problems found afterwards, over every
    round: each counts, and any is a failure."""
    failed = sum(r.result.non_2xx + r.result.errors for r in runs)
    requests = sum(r.result.requests for r in runs)
    failures = [f for r in runs for f in r.failures]
    problems = [p for r in runs for p in r.problems]
    acks = sum(len(r.acks) for r in runs)
    for line in failures[:5] + problems[:10]:
        print(f"  {backend}: {line}", flush=True)
    return [
        Row(
            benchmark="writes",
            case=f"POST /contacts, {CONNECTIONS} clients: failed requests",
            backend=backend,
            rolodex=f"{failed:,} of {requests:,}",
            baseline="-",
            ratio=float(failed),
            target=NONE,
            data={
                "non_2xx": sum(r.result.non_2xx for r in runs),
                "socket_errors": sum(r.result.errors for r in runs),
                "first": failures[:5],
            },
        ),
        Row(
            benchmark="writes",
            case="every acknowledged contact stored once, feed in commit order",
            backend=backend,
            rolodex=f"{len(problems)} problems, {acks:,} acknowledged",
            baseline="-",
            ratio=float(len(problems)),
            target=NONE,
            data={"problems": problems[:50]},
        ),
    ]
