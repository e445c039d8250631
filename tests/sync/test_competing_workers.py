"""Processes competing for accounts, on SQLite and PostgreSQL: two worker processes and a
`rolodex sync`-style waiting sync share a dozen CardDAV accounts on one Radicale; one worker
is killed with SIGKILL in the middle of a sync. Every account ends up synced, complete and
without duplicates, and no account was ever synced by two processes at once.

Each process runs the real worker (``rolodex.worker.Worker``, the runner, its leases and
the CardDAV connector); only the engine's sync is wrapped, to append "start"/"end" of
every sync to a shared log (one ``O_APPEND`` line per event), from which the overlaps are
checked. A sync left unfinished counts as running until its process was killed.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from rolodex.api.app import build_services
from rolodex.domain.query import ContactFilter
from rolodex.store import Store
from tests.carddav_servers import RadicaleServer, vcard
from tests.conftest import TEST_SECRET_KEY, _postgres_admin_url, settings_for_tests

ACCOUNTS = 12
CARDS = 5
LEASE = 3.0  # seconds: a short lease keeps the takeover after the kill quick

_PROCESS = """
import os, sys, time
from rolodex.cli.sync import make_runner
from rolodex.config import Settings
from rolodex.connectors import registry
from rolodex.store import Store
from rolodex.sync import engine
from rolodex.worker import Worker

url, log_path, role, slow = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
store = Store(url)
runner = make_runner(Settings(database_url=url), store, interval=1.0)
runner.lease_seconds = float(os.environ["LEASE"])


def log(event, account):
    line = f"{time.time():.6f} {os.getpid()} {role} {event} {account}\\n".encode()
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line)
    os.close(fd)


class Slow:
    def __init__(self, inner):
        self.inner = inner

    def snapshot(self, collection):
        time.sleep(slow)  # long enough to be caught in the middle
        return self.inner.snapshot(collection)

    def __getattr__(self, name):
        return getattr(self.inner, name)


plain = engine.SyncEngine.sync


def logged(self, account, *args, **kwargs):
    # Under the lease: the sync itself (the runner keeps connectors between syncs).
    log("start", account.id)
    try:
        return plain(self, account, *args, **kwargs)
    finally:
        log("end", account.id)


engine.SyncEngine.sync = logged
runner.open_connector = lambda provider, settings, changed: Slow(
    registry.open_connector(provider, settings, changed)
)
if role.startswith("worker"):
    print("ready", flush=True)
    Worker(runner, tick=0.2).run_forever()
else:
    print("ready", flush=True)
    report = runner.wait_and_run(sys.argv[5])
    print("synced", report.created_or_updated, flush=True)
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: workers sync every due account they find."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'compete.db'}"
        return
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip("PostgreSQL not reachable (ROLODEX_REQUIRE_POSTGRES=1 makes this a failure)")
    name = f"rolodex_compete_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _events(log: Path) -> list[tuple[float, int, str, str, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        at, pid, role, event, account = line.split()
        out.append((float(at), int(pid), role, event, account))
    return out


def test_workers_and_a_waiting_sync_share_accounts_and_survive_a_kill(
    database: str, tmp_path: Path
) -> None:
    store = Store(database)
    store.migrate()
    svc = build_services(settings_for_tests(database), store)
    log = tmp_path / "syncs.log"
    env = {**os.environ, "ROLODEX_SECRET_KEY": TEST_SECRET_KEY, "LEASE": str(LEASE)}
    processes: list[subprocess.Popen[str]] = []
    with RadicaleServer() as server:
        ids = []
        for n in range(ACCOUNTS):
            book = server.new_addressbook()
            for c in range(CARDS):
                server.put_card(book + f"c{c}.vcf", vcard(f"a{n}-c{c}", f"Card{c} Of{n}"))
            ids.append(
                svc.accounts.connect(
                    f"compete{n}@example.com",
                    name="",
                    provider="carddav",
                    settings={
                        "url": book,
                        "username": server.username,
                        "password": server.password,
                    },
                ).account.id
            )

        def start(role: str, slow: float, *extra: str) -> subprocess.Popen[str]:
            process = subprocess.Popen(
                [sys.executable, "-c", _PROCESS, database, str(log), role, str(slow), *extra],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            processes.append(process)
            return process

        try:
            doomed = start("worker-doomed", 1.5)
            start("worker-kept", 0.2)
            waiting = start("sync", 0.0, ids[0])
            # Kill the doomed worker in the middle of one of its syncs.
            deadline = time.monotonic() + 60
            killed_at = None
            while time.monotonic() < deadline and killed_at is None:
                events = _events(log)
                open_syncs = {e[4] for e in events if e[1] == doomed.pid and e[3] == "start"} - {
                    e[4] for e in events if e[1] == doomed.pid and e[3] == "end"
                }
                if open_syncs:
                    os.kill(doomed.pid, signal.SIGKILL)
                    doomed.wait()
                    killed_at = time.time()
                time.sleep(0.05)
            assert killed_at is not None, "the doomed worker never started a sync"

            def all_synced() -> bool:
                return all(svc.accounts.get(i).contact_count == CARDS for i in ids)

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not all_synced():
                time.sleep(0.2)
            assert waiting.stdout is not None
            out, _ = waiting.communicate(timeout=60)
            assert waiting.returncode == 0 and "synced" in out
        finally:
            stopped_at = time.time()
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        # Every account complete, nothing duplicated.
        for account_id in ids:
            account = svc.accounts.get(account_id)
            assert account.contact_count == CARDS, (account_id, account.last_error)
        with store.read() as tx:
            for account_id in ids:
                names = [r.id for r in tx.contacts.page(account_id, ContactFilter(), 100, 0)]
                assert len(names) == CARDS
        # Never two syncs of one account at once.
        events = _events(log)
        spans: dict[str, list[tuple[float, float, int]]] = {}
        started: dict[tuple[int, str], float] = {}
        for at, pid, _role, event, account in events:
            if event == "start":
                started[(pid, account)] = at
            else:
                spans.setdefault(account, []).append((started.pop((pid, account)), at, pid))
        for (pid, account), at in started.items():
            # Unfinished: the killed worker's, or one the end of the test cut short.
            end = killed_at if pid == doomed.pid else stopped_at
            spans.setdefault(account, []).append((at, end, pid))
        for account, account_spans in spans.items():
            ordered = sorted(account_spans)
            for (_s1, end1, pid1), (start2, _e2, pid2) in itertools.pairwise(ordered):
                assert start2 >= end1, f"{account}: {pid1} and {pid2} synced it at once"
        assert {e[2] for e in events} >= {"worker-doomed", "worker-kept", "sync"}
    store.close()
