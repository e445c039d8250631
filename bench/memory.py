"""5. Memory: peak resident memory of the ``rolodex sync`` process while it syncs a book of
many cards (target at most 300 MB, and flat in the number of cards).

The process measured is the real CLI, ``rolodex sync <account>``, as a user runs it; its
peak RSS is the kernel's high-water mark of the child's own address space (``VmHWM`` polled
from ``/proc/<pid>/status``; ``ru_maxrss`` from ``wait4`` is not used, because it carries the
parent's peak across fork and exec).

The server is a minimal CardDAV responder in this process that streams pre-rendered
responses from files under ``bench/.cache/``: Radicale needs about 12 ms per card to build
its item cache (20 minutes for 100,000 cards) and re-reads the whole book on every request,
which would measure Radicale rather than Rolodex. The responder answers exactly what the
sync needs (discovery PROPFIND, the initial sync-collection listing of every href and etag,
one addressbook-query with every card), with the cards of the data generator rendered as
vCards, so the client does the same work as against Radicale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from bench.carddav_sync import SECRET, _account_id
from bench.core import Context, Row, StatusPeaks, Target
from bench.data import CACHE, generate
from rolodex.domain.vcard import render_card

BIN = Path(sys.executable).parent
LIMIT_MB = 300.0
# Flat: the larger book may cost at most this much more than the smaller one.
FLAT = 1.25
TOKEN = "http://bench.invalid/sync/1"
_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<d:multistatus xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">'
)


def _book_files(seed: int, cards: int) -> tuple[Path, Path]:
    """The sync-collection listing and the addressbook-query answer, built once."""
    folder = CACHE / f"memory-book-s{seed}-{cards}"
    listing, query = folder / "listing.xml", folder / "query.xml"
    if (folder / "done").exists():
        return listing, query
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with listing.open("w", encoding="utf-8") as lst, query.open("w", encoding="utf-8") as qry:
        lst.write(_HEAD)
        qry.write(_HEAD)
        for i in range(cards):
            g = generate(seed, cards, i, "card")
            data = render_card(g.contact.fields, uid=f"card-{i}")
            etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
            href = f"/book/card-{i}.vcf"
            lst.write(
                f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>"
                f"<d:getetag>{escape(etag)}</d:getetag></d:prop>"
                "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
            )
            qry.write(
                f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>"
                f"<d:getetag>{escape(etag)}</d:getetag>"
                f"<card:address-data>{escape(data.decode())}</card:address-data></d:prop>"
                "<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
            )
        lst.write(f"<d:sync-token>{TOKEN}</d:sync-token></d:multistatus>")
        qry.write("</d:multistatus>")
    (folder / "done").write_text("ok\n")
    return listing, query


def _handler(listing: Path, query: Path) -> type[BaseHTTPRequestHandler]:
    book_props = (
        _HEAD + '<d:response><d:href>/book/</d:href><d:propstat><d:prop xmlns:cs="'
        'http://calendarserver.org/ns/"><d:resourcetype><d:collection/><card:addressbook/>'
        "</d:resourcetype><d:displayname>Bench</d:displayname>"
        f"<d:sync-token>{TOKEN}</d:sync-token><cs:getctag>1</cs:getctag>"
        "<d:supported-report-set><d:supported-report><d:report><d:sync-collection/>"
        "</d:report></d:supported-report><d:supported-report><d:report>"
        "<card:addressbook-query/></d:report></d:supported-report></d:supported-report-set>"
        "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
        "</d:multistatus>"
    ).encode()
    no_change = (_HEAD + f"<d:sync-token>{TOKEN}</d:sync-token></d:multistatus>").encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, data: bytes) -> None:
            self.send_response(207)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, path: Path) -> None:
            self.send_response(207)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 16)

        def do_PROPFIND(self) -> None:
            self._body()
            self._send(book_props)

        def do_REPORT(self) -> None:
            body = self._body()
            if b"sync-collection" in body:
                if TOKEN.encode() in body:
                    self._send(no_change)
                else:
                    self._stream(listing)
            elif b"addressbook-query" in body:
                self._stream(query)
            else:
                self._send((_HEAD + "</d:multistatus>").encode())

    return Handler


def _peak_via_wait4(url: str, work: Path) -> tuple[float, dict[str, float], float]:
    """(ru_maxrss MB from wait4, peaks of VmHWM, RssAnon and RssFile polled in MB, seconds)
    of one initial ``rolodex sync``."""
    db_url = f"sqlite:///{work / 'memory.db'}"
    env = {**os.environ, "ROLODEX_DATABASE_URL": db_url, "ROLODEX_SECRET_KEY": SECRET}
    out = subprocess.run(
        [str(BIN / "rolodex"), "accounts", "create", "--email", "mem@bench.invalid",
         "--provider", "carddav", "--url", url, "--username", "u", "--password-env", "PW",
         "--database-url", db_url],
        env={**env, "PW": "x"}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    account_id = _account_id(out)
    log = work / "sync.log"
    t0 = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(BIN / "rolodex"), "sync", account_id], env=env, stdout=sink, stderr=sink
        )
    with StatusPeaks(proc.pid, ("VmHWM", "RssAnon", "RssFile")) as peaks:
        _, code, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(code)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"rolodex sync failed: {log.read_text(errors='replace')[-800:]}")
    # ru_maxrss survives fork and exec: a child forked from a large parent (this process, after
    # the list and filter benchmarks) reports the parent's peak. VmHWM belongs to the child's
    # own address space, so it is the figure; ru_maxrss is the fallback if polling saw nothing.
    peak_kb = peaks.kb["VmHWM"] or usage.ru_maxrss
    return peak_kb / 1024, {k: peaks.mb(k) for k in peaks.kb}, seconds


def run(ctx: Context) -> list[Row]:
    # Both sizes past the point where SQLite's page cache (64 MiB) is full, so that the
    # ratio shows growth with the book, not a bounded cache filling up.
    sizes: tuple[int, int] = ctx.pick((20_000, 30_000), (20_000, 100_000))
    peaks: dict[int, float] = {}
    anon: dict[int, float] = {}
    rows: list[Row] = []
    for cards in sizes:
        t0 = time.perf_counter()
        listing, query = _book_files(ctx.seed, cards)
        built = time.perf_counter() - t0
        if built > 5:
            ctx.notes.append(f"built the {cards:,}-card responses in {built:.0f}s (cached now)")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(listing, query))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/book/"
            peak, polled, seconds = _peak_via_wait4(url, work)
        finally:
            server.shutdown()
            server.server_close()
            shutil.rmtree(work, ignore_errors=True)
        peaks[cards] = peak
        anon[cards] = polled["RssAnon"]
        rows.append(
            Row(
                benchmark="memory",
                case=f"peak RSS of `rolodex sync`, initial sync of {cards:,} cards",
                backend="sqlite",
                rolodex=f"{peak:,.0f} MB",
                baseline=f"{LIMIT_MB:.0f} MB",
                ratio=peak / LIMIT_MB,
                target=Target("<=", 1.0),
                note=f"VmHWM polled {polled['VmHWM']:,.0f} MB; sync took {seconds:.1f}s",
                data={"cards": cards, "peak_mb": peak, "polled_mb": polled, "seconds": seconds},
            )
        )
        ctx.notes.append(
            f"{cards:,} cards: peak {peak:,.0f} MB (polled: VmHWM {polled['VmHWM']:,.0f}, "
            f"anonymous {polled['RssAnon']:,.0f}, file-backed {polled['RssFile']:,.0f} MB), "
            f"sync {seconds:.1f}s ({cards / seconds:,.0f} cards/s)"
        )
    small, large = sizes
    ctx.notes.append(
        "flatness is judged on anonymous memory (the process's own heap and SQLite's page "
        "cache, bounded by PRAGMA cache_size at 64 MiB); the file-backed part of RSS is the "
        "database file mapped by SQLite (mmap_size 256 MiB), page cache the kernel can drop, "
        "and it grows with the database"
    )
    rows.append(
        Row(
            benchmark="memory",
            case=f"flatness: peak anonymous RSS at {large:,} / at {small:,} cards",
            backend="sqlite",
            rolodex=f"{anon[large]:,.0f} MB",
            baseline=f"{anon[small]:,.0f} MB",
            ratio=anon[large] / anon[small],
            target=Target("<=", FLAT),
        )
    )
    rows.append(
        Row(
            benchmark="memory",
            case=f"peak RSS (with the mapped database) at {large:,} / at {small:,} cards",
            backend="sqlite",
            rolodex=f"{peaks[large]:,.0f} MB",
            baseline=f"{peaks[small]:,.0f} MB",
            ratio=peaks[large] / peaks[small],
        )
    )
    return rows
