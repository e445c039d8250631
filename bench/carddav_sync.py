"""4. CardDAV sync against the tools users run today, on a local Radicale of 10,000 cards
(quick mode: 5,000).

The cards are the data generator's contacts rendered as vCards, written straight into
Radicale's file storage (10,000 PUTs would take Radicale an hour: it re-reads its book on
every request). Measured:

- initial sync: ``rolodex sync`` in a fresh process against ``vdirsyncer sync`` to a local
  folder, as a user would run either (best of three runs each, taking turns);
- incremental sync after one card changed on the server, and a sync with no change:
  Rolodex's sync as it runs inside ``rolodex serve`` and ``rolodex worker`` (a long-lived
  process syncing every interval), against vdirsyncer and against the floor, the bare
  sync-collection REPORT for the same change sent by the benchmark itself (httpx). In full
  mode a fresh ``rolodex sync`` process is shown beside it, for reference: Python's start
  and imports alone cost more than 1.3x a REPORT on Xandikos;
- full read: Rolodex paging its API (limit 1000) against one addressbook-query REPORT;
- on Xandikos too (its storage is a git repository per collection: the cards are written
  into the working tree and committed with git before the server starts), the sync after
  one change and with no change against the floor REPORT.

Radicale's first read of a freshly written folder builds its item cache (about 5 ms a
card): it is done once, outside any timed section, and the populated folder with its
``.Radicale.cache`` is kept under ``bench/.cache/`` and linked for each run (which changes a
card), like the Xandikos repository. Timed Rolodex runs after the initial sync are repeated
(a new change each time) and their medians compared with the medians of the floor REPORTs
measured alongside.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.core import Context, Row, Target, fmt_ms, sync_worker_code
from bench.data import CACHE, generate, schema_key
from bench.servers import rolodex_server
from rolodex.domain.vcard import render_card

# The book; quick mode halves it (Radicale's and Rolodex's costs both scale with it).
CARDS_FULL = 10_000
CARDS_QUICK = 5_000
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


# Xandikos answers the same REPORT in 60, 100 or 200 ms from one request to the next:
# medians of seven keep slow answers from deciding a ratio.
REPEATS = 7
INITIAL_ROUNDS = 3


def _cards(folder: Path, seed: int, cards: int) -> None:
    for i in range(cards):
        g = generate(seed, cards, i, "card")
        (folder / f"card-{i}.vcf").write_bytes(render_card(g.contact.fields, uid=f"card-{i}"))


def _link_tree(source: Path, target: Path) -> None:
    """A copy of a cached server folder made of hard links: the servers replace the files
    they change (write and rename), so the cache is never written through them. The
    working-tree card the benchmark changes is copied for real, in case a server rewrites
    it in place."""
    shutil.copytree(source, target, symlinks=True, copy_function=os.link)
    for changed in target.rglob("card-1.vcf"):
        data = changed.read_bytes()
        changed.unlink()
        changed.write_bytes(data)


def _radicale_cache(ctx: Context, cards: int) -> tuple[Path, str]:
    """The populated, cache-warmed Radicale storage folder, built once; and the book's slug."""
    from tests.carddav_servers import RadicaleServer

    cached = CACHE / f"radicale-s{ctx.seed}-{cards}"
    if (cached / "done").exists():
        return cached / "collections", (cached / "slug").read_text().strip()
    shutil.rmtree(cached, ignore_errors=True)
    ctx.say(f"building the Radicale book of {cards:,} cards and its item cache (once)...")
    t0 = time.perf_counter()
    with RadicaleServer() as server:
        book = server.new_addressbook("Bench")
        slug = book.rstrip("/").rsplit("/", 1)[1]
        _cards(server.root / "collections" / "collection-root" / "test" / slug, ctx.seed, cards)
        server.http.timeout = httpx.Timeout(1800)
        _report(server.http, book, QUERY_REPORT)  # Radicale builds its item cache here
        _report(server.http, book, SYNC_REPORT.format(token=""))
        server.stop()
        cached.mkdir(parents=True)
        shutil.copytree(server.root / "collections", cached / "collections", symlinks=True)
    (cached / "slug").write_text(slug + "\n")
    (cached / "done").write_text("ok\n")
    ctx.notes.append(
        f"built the cached Radicale book in {time.perf_counter() - t0:.0f}s (a cold first run "
        "pays this once)"
    )
    return cached / "collections", slug


def _xandikos_cache(ctx: Context, cards: int) -> Path:
    """The Xandikos data folder with a book of ``cards`` cards committed to its git store."""
    from tests.carddav_servers import XandikosServer

    cached = CACHE / f"xandikos-s{ctx.seed}-{cards}"
    if (cached / "done").exists():
        return cached / "data"
    shutil.rmtree(cached, ignore_errors=True)
    ctx.say(f"building the Xandikos book of {cards:,} cards (once)...")
    t0 = time.perf_counter()
    with XandikosServer() as server:
        book = server.default_addressbook
        server.http.request("PROPFIND", book, headers={"Depth": "0"})  # made on first use
        server.stop()
        folder = server.root / "data" / "user" / "contacts" / "addressbook"
        assert (folder / ".git").exists(), list(folder.iterdir())
        _cards(folder, ctx.seed, cards)
        git = ["git", "-C", str(folder), "-c", "user.name=bench", "-c", "user.email=b@b.invalid"]
        subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-q", "-m", "bench cards"], check=True)
        server.start()
        server.http.timeout = httpx.Timeout(1800)
        _report(server.http, book, QUERY_REPORT)
        server.stop()
        cached.mkdir(parents=True)
        shutil.copytree(server.root / "data", cached / "data", symlinks=True)
    (cached / "done").write_text("ok\n")
    ctx.notes.append(f"built the cached Xandikos book in {time.perf_counter() - t0:.0f}s (once)")
    return cached / "data"


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


def _create_account(book: str, user: str, password: str, db_url: str, env: dict[str, str]) -> str:
    out = _run(
        [str(BIN / "rolodex"), "accounts", "create", "--email", "bench@bench.invalid",
         "--provider", "carddav", "--url", book, "--username", user,
         "--password-env", "BENCH_DAV_PW", "--database-url", db_url],
        env={**env, "BENCH_DAV_PW": password},
    )  # fmt: skip
    return _account_id(out)


def _fresh_db(name: str) -> tuple[str, dict[str, str]]:
    db = CACHE / f"{name}-{schema_key()}.db"
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db_url = f"sqlite:///{db}"
    return db_url, {"ROLODEX_DATABASE_URL": db_url, "ROLODEX_SECRET_KEY": SECRET}


def _change(server: object, book: str, n: int, seed: int, cards: int) -> None:
    fields = generate(seed, cards, 1, "card").contact.fields
    card = render_card(fields, uid="card-1").replace(
        b"END:VCARD", f"NOTE:changed {n}\r\nEND:VCARD".encode()
    )
    server.put_card(f"{book}card-1.vcf", card)  # type: ignore[attr-defined]


class Worker:
    """A long-lived process that syncs an account on request, as ``rolodex serve`` and
    ``rolodex worker`` do every interval: what an incremental sync costs once Python and
    the libraries are loaded. Timed from here, over the pipe."""

    CODE = sync_worker_code("'ok'")

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the sync worker did not start")

    def sync(self, account_id: str) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        t0 = time.perf_counter()
        self.proc.stdin.write(account_id + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        seconds = time.perf_counter() - t0
        if answer != "ok":
            raise RuntimeError(f"worker sync: {answer or 'exited'}")
        return seconds

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _incremental(
    server: object,
    http: httpx.Client,
    book: str,
    token: str,
    seed: int,
    cards: int,
    sync: Callable[[], float],
    repeats: int,
    between: Callable[[bool], None] | None = None,
) -> tuple[dict[str, float], str]:
    """Medians of ``repeats`` rounds: one card changes, the floor REPORT for that change,
    then ``sync``; then the same with no change. ``between`` runs after the first floor of
    each phase, before Rolodex (vdirsyncer's own timed run). Returns the medians and the
    token."""
    floors, ours, floors_none, ours_none = [], [], [], []
    for n in range(repeats):
        _change(server, book, n + int(time.time()), seed, cards)
        t, resp = _timed(_report, http, book, SYNC_REPORT.format(token=token))
        floors.append(t)
        token = _token(resp)  # type: ignore[arg-type]
        if n == 0 and between is not None:
            between(True)
        ours.append(sync())
    for n in range(repeats):
        t, resp = _timed(_report, http, book, SYNC_REPORT.format(token=token))
        floors_none.append(t)
        token = _token(resp)  # type: ignore[arg-type]
        if n == 0 and between is not None:
            between(False)  # vdirsyncer catches up with the later changes first
            between(True)
        ours_none.append(sync())
    med = statistics.median
    medians = {
        "floor_incr": med(floors),
        "incr": med(ours),
        "floor_none": med(floors_none),
        "none": med(ours_none),
    }
    return medians, token


def _row(case: str, ours: float, theirs: float, label: str, target: Target | None) -> Row:
    return Row(
        benchmark="carddav",
        case=case,
        backend="sqlite",
        rolodex=fmt_ms(ours),
        baseline=f"{fmt_ms(theirs)} ({label})",
        ratio=ours / theirs,
        target=target,
        data={"rolodex_s": ours, "baseline_s": theirs},
    )


CLI_NOTE = "no target: a fresh process, Python start and imports included (about 0.7 s)"


def _incremental_rows(
    where: str, worker: dict[str, float], cli: dict[str, float] | None, vdir: tuple[float, ...]
) -> list[Row]:
    """Targets on Rolodex's sync as it runs (inside `rolodex serve` / `rolodex worker`);
    in full mode the same sync from a fresh `rolodex sync` process beside them, for
    reference."""
    rows: list[Row] = []
    for phase, label in (("incr", "sync after 1 change"), ("none", "sync, no change")):
        if vdir:
            theirs = vdir[0] if phase == "incr" else vdir[1]
            rows.append(_row(f"{label}, {where}", worker[phase], theirs, "vdirsyncer",
                             Target("<=", 0.3)))  # fmt: skip
        rows.append(_row(f"{label}, {where}", worker[phase], worker[f"floor_{phase}"],
                         "floor REPORT", Target("<=", 1.3)))  # fmt: skip
        if cli is not None:
            info = _row(f"`rolodex sync` process: {label}, {where}", cli[phase],
                        cli[f"floor_{phase}"], "floor REPORT", None)  # fmt: skip
            info.note = CLI_NOTE
            rows.append(info)
    return rows


def run(ctx: Context) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.carddav_servers import RadicaleServer, XandikosServer

    cards = ctx.pick(CARDS_QUICK, CARDS_FULL)
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="bench-carddav-"))
    n = f"{cards:,} cards, Radicale"
    try:
        collections, slug = _radicale_cache(ctx, cards)
        root = work / "radicale"
        root.mkdir()
        t0 = time.perf_counter()
        _link_tree(collections, root / "collections")
        copied = time.perf_counter() - t0
        with RadicaleServer(root) as server:
            book = server.url(f"/test/{slug}/")
            http = server.http
            http.timeout = httpx.Timeout(600)
            _report(http, book, QUERY_REPORT)  # the item cache is warm: this checks it
            ctx.notes.append(
                f"Radicale book linked from the cache in {copied:.1f}s, read once (untimed) in "
                f"{time.perf_counter() - t0 - copied:.1f}s"
            )
            # First syncs, each tool into a new folder / database, taking turns: the best of
            # INITIAL_ROUNDS each (one run of either moves by 20% on this machine).
            t_vdir_initial = t_rolodex_initial = float("inf")
            for r in range(INITIAL_ROUNDS):
                vwork = work / f"vdirsyncer-{r}"
                vwork.mkdir()
                config = _vdirsyncer(vwork, book, server.username, server.password)
                vdir = [str(BIN / "vdirsyncer"), "-c", str(config)]
                _run([*vdir, "discover"])
                t_vdir_initial = min(t_vdir_initial, _timed(_run, [*vdir, "sync"])[0])
                db_url, env = _fresh_db(f"carddav-{r}")
                account_id = _create_account(book, server.username, server.password, db_url, env)
                sync = [str(BIN / "rolodex"), "sync", account_id]
                t_rolodex_initial = min(t_rolodex_initial, _timed(_run, sync, env)[0])
            floor_initial, first = _timed(_report, http, book, SYNC_REPORT.format(token=""))
            token = _token(first)  # type: ignore[arg-type]

            vdir_times: list[float] = []

            def vdirsyncer_sync(record: bool) -> None:
                seconds = _timed(_run, [*vdir, "sync"])[0]
                if record:
                    vdir_times.append(seconds)

            cli: dict[str, float] | None = None
            if not ctx.quick:
                cli, token = _incremental(
                    server, http, book, token, ctx.seed, cards,
                    lambda: _timed(_run, sync, env)[0], 1, vdirsyncer_sync,
                )  # fmt: skip
            worker = Worker(env)
            try:
                worker.sync(account_id)  # untimed: catches up, opens the pool
                wmed, token = _incremental(
                    server, http, book, token, ctx.seed, cards,
                    lambda: worker.sync(account_id), REPEATS,
                    vdirsyncer_sync if cli is None else None,
                )  # fmt: skip
            finally:
                worker.close()
            dav_read, _ = _timed(_report, http, book, QUERY_REPORT)

        api_read = _api_read(db_url, account_id, env, cards)
        rows.append(_row(f"initial sync, {n}", t_rolodex_initial, t_vdir_initial, "vdirsyncer",
                         Target("<=", 1.0)))  # fmt: skip
        rows += _incremental_rows(n, wmed, cli, tuple(vdir_times))
        full = _row(f"full read, {n}: API limit=1000 vs addressbook-query", api_read, dav_read,
                    "addressbook-query", Target("<=", 1 / 3))  # fmt: skip
        full.note = "ratio is Rolodex time / Radicale time: at most 0.33 means 3x faster"
        rows.append(full)
        ctx.notes.append(f"floor: initial sync-collection REPORT took {fmt_ms(floor_initial)}")
        ctx.notes.append(
            "initial sync: `rolodex sync` in a fresh process against `vdirsyncer sync`. After "
            "a change and with none: Rolodex's sync as `rolodex serve` and `rolodex worker` "
            f"run it (a long-lived process, timed over a pipe), medians of {REPEATS}, each "
            "against the median of its own floor REPORTs; vdirsyncer once each; in full mode "
            "a fresh `rolodex sync` process once each, for reference. First syncs: best of "
            f"{INITIAL_ROUNDS} runs of each tool, taking turns"
        )

        # Xandikos: the same incremental rounds against its floor.
        x = f"{cards:,} cards, Xandikos"
        data = _xandikos_cache(ctx, cards)
        xroot = work / "xandikos"
        xroot.mkdir()
        _link_tree(data, xroot / "data")
        xdb_url, xenv = _fresh_db("carddav-xandikos")
        with XandikosServer(xroot) as xserver:
            xbook = xserver.default_addressbook
            xhttp = xserver.http
            xhttp.timeout = httpx.Timeout(600)
            # Xandikos's first read of a repository is several times slower than the next:
            # read once, untimed, as Radicale's book is.
            _report(xhttp, xbook, QUERY_REPORT)
            xfloor_initial, xfirst = _timed(_report, xhttp, xbook, SYNC_REPORT.format(token=""))
            xtoken = _token(xfirst)  # type: ignore[arg-type]
            xaccount = _create_account(xbook, "user", "x", xdb_url, xenv)
            xsync = [str(BIN / "rolodex"), "sync", xaccount]
            t_x_initial, _ = _timed(_run, xsync, xenv)
            xcli: dict[str, float] | None = None
            if not ctx.quick:
                xcli, xtoken = _incremental(
                    xserver, xhttp, xbook, xtoken, ctx.seed, cards,
                    lambda: _timed(_run, xsync, xenv)[0], 1,
                )  # fmt: skip
            xworker = Worker(xenv)
            try:
                xworker.sync(xaccount)
                xwmed, xtoken = _incremental(
                    xserver, xhttp, xbook, xtoken, ctx.seed, cards,
                    lambda: xworker.sync(xaccount), REPEATS,
                )  # fmt: skip
            finally:
                xworker.close()
            xdav_read, _ = _timed(_report, xhttp, xbook, QUERY_REPORT)
        initial = _row(f"initial sync, {x}", t_x_initial, xdav_read, "addressbook-query", None)
        initial.note = "no target: for reference against one whole-book read"
        rows.append(initial)
        rows += _incremental_rows(x, xwmed, xcli, ())
        ctx.notes.append(f"Xandikos: initial sync-collection REPORT took {fmt_ms(xfloor_initial)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _account_id(output: str) -> str:
    try:
        return str(json.loads(output)["id"])
    except (ValueError, KeyError):
        pass
    for word in output.replace('"', " ").split():
        if len(word) == 25 and word.isalnum() and word.islower():
            return word
    raise RuntimeError(f"no account id in: {output[:300]}")


def _api_read(db_url: str, account_id: str, env: dict[str, str], cards: int) -> float:
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
    if seen < cards:
        raise RuntimeError(f"the API listed {seen} contacts, the book holds {cards}")
    return elapsed
