"""4. CardDAV sync against the tools users run today, on a local Radicale of 10,000 cards.

The cards are the data generator's contacts rendered as vCards, written straight into
Radicale's file storage (10,000 PUTs would take Radicale an hour: it re-reads its book on
every request). Measured, each from a fresh process as a user would run it:

- initial sync: ``rolodex sync`` against ``vdirsyncer sync`` to a local folder;
- incremental sync after one card changed on the server, and a sync with no change:
  ``rolodex sync`` against vdirsyncer, and against the floor, the bare sync-collection
  REPORT sent by the benchmark itself (httpx);
- full read: Rolodex paging its API (limit 1000) against one addressbook-query REPORT.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.core import Context, Row, Target, fmt_ms
from bench.data import CACHE, generate, schema_key
from bench.servers import rolodex_server
from rolodex.domain.vcard import render_card

CARDS = 10_000
BIN = Path(sys.executable).parent
SECRET = "u6fB3yQw1mN0rSx8c2Vt7Zp4Hk9Lj5Ga3Ed1Fo6Wq0I="
SYNC_REPORT = (
    '<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:">'
    "<d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level>"
    "<d:prop><d:getetag/></d:prop></d:sync-collection>"
)
QUERY_REPORT = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<c:addressbook-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav">'
    "<d:prop><d:getetag/><c:address-data/></d:prop></c:addressbook-query>"
)


def _timed(fn: object, *args: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0, out


def _report(http: httpx.Client, book: str, body: str) -> httpx.Response:
    resp = http.request(
        "REPORT",
        book,
        content=body,
        headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
    )
    if resp.status_code != 207:
        raise RuntimeError(f"REPORT: {resp.status_code} {resp.text[:300]}")
    return resp


def _token(resp: httpx.Response) -> str:
    text = resp.text
    start = text.index("sync-token>") + len("sync-token>")
    return text[start : text.index("<", start)]


def _populate(root: Path, book_url: str, seed: int) -> None:
    slug = book_url.rstrip("/").rsplit("/", 1)[1]
    folder = root / "collections" / "collection-root" / "test" / slug
    assert folder.is_dir(), folder
    for i in range(CARDS):
        g = generate(seed, CARDS, i, "card")
        (folder / f"card-{i}.vcf").write_bytes(render_card(g.contact.fields, uid=f"card-{i}"))


def _vdirsyncer(workdir: Path, book_url: str, user: str, password: str) -> Path:
    config = workdir / "vdirsyncer.conf"
    (workdir / "local").mkdir()
    config.write_text(
        f"""[general]
status_path = "{workdir / "status"}"

[pair bench]
a = "bench_local"
b = "bench_remote"
collections = null

[storage bench_local]
type = "filesystem"
path = "{workdir / "local"}"
fileext = ".vcf"

[storage bench_remote]
type = "carddav"
url = "{book_url}"
username = "{user}"
password = "{password}"
"""
    )
    return config


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, input="y\n" * 8
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}...: {done.stdout[-800:]}{done.stderr[-800:]}")
    return done.stdout


def run(ctx: Context) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.carddav_servers import RadicaleServer

    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="bench-carddav-"))
    db = CACHE / f"carddav-{schema_key()}.db"
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db_url = f"sqlite:///{db}"
    env = {"ROLODEX_DATABASE_URL": db_url, "ROLODEX_SECRET_KEY": SECRET, "BENCH_DAV_PW": "x"}
    try:
        with RadicaleServer() as server:
            book = server.new_addressbook("Bench")
            _populate(server.root, book, ctx.seed)
            http = server.http
            http.timeout = httpx.Timeout(600)
            _report(http, book, QUERY_REPORT)  # Radicale builds its item cache once
            config = _vdirsyncer(work, book, server.username, server.password)
            vdir = [str(BIN / "vdirsyncer"), "-c", str(config)]
            _run([*vdir, "discover"])
            t_vdir_initial, _ = _timed(_run, [*vdir, "sync"])
            floor_initial, first = _timed(_report, http, book, SYNC_REPORT.format(token=""))
            token = _token(first)  # type: ignore[arg-type]

            # Rolodex: an account on this book, synced by the CLI as users run it.
            rolodex = str(BIN / "rolodex")
            account_id: str | None = None
            pending: str | None = None
            try:
                out = _run(
                    [rolodex, "accounts", "create", "--email", "bench@bench.invalid",
                     "--provider", "carddav", "--url", book, "--username", server.username,
                     "--password-env", "BENCH_DAV_PW", "--database-url", db_url],
                    env={**env, "BENCH_DAV_PW": server.password},
                )  # fmt: skip
                account_id = _account_id(out)
                t_rolodex_initial, _ = _timed(_run, [rolodex, "sync", account_id], env)
            except Exception as exc:
                pending = f"rolodex sync failed: {str(exc).splitlines()[0][:120]}"

            # One card changes on the server.
            changed = generate(ctx.seed, CARDS, 1, "card").contact.fields
            server.put_card(f"{book}card-1.vcf", render_card(changed, uid="card-1")
                            .replace(b"END:VCARD", b"NOTE:changed\r\nEND:VCARD"))  # fmt: skip
            floor_incr, second = _timed(_report, http, book, SYNC_REPORT.format(token=token))
            token2 = _token(second)  # type: ignore[arg-type]
            # The vdirsyncer and Rolodex runs after the change (and the no-change runs).
            t_vdir_incr, _ = _timed(_run, [*vdir, "sync"])
            t_rolodex_incr = t_rolodex_none = None
            if pending is None and account_id is not None:
                t_rolodex_incr, _ = _timed(_run, [rolodex, "sync", account_id], env)
            floor_none, _ = _timed(_report, http, book, SYNC_REPORT.format(token=token2))
            t_vdir_none, _ = _timed(_run, [*vdir, "sync"])
            if pending is None and account_id is not None:
                t_rolodex_none, _ = _timed(_run, [rolodex, "sync", account_id], env)
            dav_read, _ = _timed(_report, http, book, QUERY_REPORT)

        api_read: float | None = None
        if pending is None and account_id is not None:
            api_read = _api_read(db_url, account_id, env)

        def row(case: str, ours: float | None, theirs: float, label: str, target: Target) -> Row:
            return Row(
                benchmark="carddav",
                case=case,
                backend="sqlite",
                rolodex=fmt_ms(ours) if ours is not None else "-",
                baseline=f"{fmt_ms(theirs)} ({label})",
                ratio=None if ours is None else ours / theirs,
                target=target,
                pending=pending if ours is None else None,
                data={"rolodex_s": ours, "baseline_s": theirs},
            )

        n = f"{CARDS:,} cards, Radicale"
        rows += [
            row(f"initial sync, {n}", _get(locals(), "t_rolodex_initial"), t_vdir_initial,
                "vdirsyncer", Target("<=", 1.0)),
            row(f"sync after 1 change, {n}", t_rolodex_incr, t_vdir_incr, "vdirsyncer",
                Target("<=", 0.3)),
            row(f"sync after 1 change, {n}", t_rolodex_incr, floor_incr, "floor REPORT",
                Target("<=", 1.3)),
            row(f"sync, no change, {n}", t_rolodex_none, t_vdir_none, "vdirsyncer",
                Target("<=", 0.3)),
            row(f"sync, no change, {n}", t_rolodex_none, floor_none, "floor REPORT",
                Target("<=", 1.3)),
        ]  # fmt: skip
        full = row(f"full read, {n}: API limit=1000 vs addressbook-query", api_read, dav_read,
                   "addressbook-query", Target("<=", 1 / 3))  # fmt: skip
        full.note = "ratio is Rolodex time / Radicale time: at most 0.33 means 3x faster"
        rows.append(full)
        rows.append(
            Row(
                benchmark="carddav",
                case=f"sync after 1 change / no change, {n.replace('Radicale', 'Xandikos')}",
                backend="sqlite",
                rolodex="-",
                baseline="-",
                target=Target("<=", 1.3),
                pending="Xandikos run not wired yet (populating 10,000 cards needs git-backed "
                "writes)",
            )
        )
        ctx.notes.append(f"floor: initial sync-collection REPORT took {fmt_ms(floor_initial)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _get(scope: dict[str, object], name: str) -> float | None:
    value = scope.get(name)
    return value if isinstance(value, float) else None


def _account_id(output: str) -> str:
    try:
        return str(json.loads(output)["id"])
    except (ValueError, KeyError):
        pass
    for word in output.replace('"', " ").split():
        if len(word) == 25 and word.isalnum() and word.islower():
            return word
    raise RuntimeError(f"no account id in: {output[:300]}")


def _api_read(db_url: str, account_id: str, env: dict[str, str]) -> float:
    _run([str(BIN / "rolodex"), "accounts", "token", account_id, "--database-url", db_url], env)
    out = _run(
        [str(BIN / "rolodex"), "accounts", "token", account_id, "--database-url", db_url], env
    )
    token = out.strip().split()[-1].strip('"{}:,')
    if out.strip().startswith("{"):
        token = json.loads(out)["access_token"]
    with rolodex_server(db_url) as server, httpx.Client(timeout=60) as client:
        headers = {"Authorization": f"Bearer {token}"}
        t0 = time.perf_counter()
        offset, seen = 0, 0
        while True:
            page = client.get(f"{server.url}/contacts?limit=1000&offset={offset}", headers=headers)
            page.raise_for_status()
            got = len(page.json())
            seen += got
            if got < 1000:
                break
            offset += 1000
        elapsed = time.perf_counter() - t0
    if seen < CARDS:
        raise RuntimeError(f"the API listed {seen} contacts, the book holds {CARDS}")
    return elapsed
