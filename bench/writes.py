"""3. Writes: contacts created per second through ``POST /contacts`` by concurrent clients
(wrk, 8 connections), against the store's own bulk insert of the same contacts (rendered
beforehand, one transaction) as the baseline. No target yet: the ratio is shown."""

from __future__ import annotations

import os
import tempfile
import time

import orjson

from bench.core import Context, Row, fmt_rate
from bench.data import (
    CACHE,
    backend_url,
    contact_bodies,
    delete_account,
    ensure_database,
    schema_key,
    scratch_account,
)
from bench.servers import rolodex_server, wrk
from rolodex.domain.contact import Contact, ContactFields
from rolodex.domain.ids import new_id
from rolodex.domain.normalize import index_terms
from rolodex.domain.wire import contact_document, parse_contact_patch
from rolodex.service.accounts import AccountService
from rolodex.store import Store, Tx
from rolodex.store.contacts import NewContact
from rolodex.store.database import bulk_write_connection

CONNECTIONS = 8

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
"""


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


def run(ctx: Context) -> list[Row]:
    seconds = ctx.pick(3, 15)
    rows: list[Row] = []
    bodies = contact_bodies(ctx.seed + 3, ctx.pick(5000, 20000))
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        for body in bodies:
            f.write(orjson.dumps(body) + b"\n")
        bodies_path = f.name
    try:
        for backend in ctx.backends:
            url = _url(backend, ctx.seed)
            ensure_database(url)
            account, token = scratch_account(url, "bench-writes")
            with rolodex_server(url) as server:
                result = wrk(
                    server.url,
                    POST_LUA.format(path=bodies_path, token=token),
                    seconds,
                    connections=CONNECTIONS,
                    token=token,
                )
            store = Store(url)
            try:
                created = AccountService(store).get(account.id).contact_count
            finally:
                store.close()
            delete_account(url, account.id)
            if result.non_2xx or result.errors:
                raise RuntimeError(f"failed writes:\n{result.output}")
            api_rate = created / result.seconds
            sample = (bodies * (created // len(bodies) + 1))[: max(created, 1)]
            bulk_seconds = _bulk_insert(url, sample)
            bulk_rate = len(sample) / bulk_seconds
            rows.append(
                Row(
                    benchmark="writes",
                    case=f"POST /contacts, {CONNECTIONS} clients, {created:,} created",
                    backend=backend,
                    rolodex=fmt_rate(api_rate, "contacts/s"),
                    baseline=fmt_rate(bulk_rate, "contacts/s") + " (bulk insert)",
                    ratio=api_rate / bulk_rate,
                    data={
                        "created": created,
                        "api_seconds": result.seconds,
                        "bulk_seconds": bulk_seconds,
                        "p50_ms": result.latency_p50_ms,
                    },
                )
            )
    finally:
        os.unlink(bodies_path)
    return rows
