"""CardDAV client behaviour the real servers cannot be made to show (429, 507 truncation,
server quirks), against scripted in-process responses."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx
import pytest

from rolodex.connectors.base import (
    ConnectorError,
    CursorExpired,
    InvalidCredentials,
    PermanentError,
    PreconditionFailed,
    RemoteNotFound,
    TransientError,
)
from rolodex.connectors.carddav.client import CardDAVClient
from rolodex.connectors.carddav.errors import Phase, classify, parse_retry_after

BOOK = "http://dav.test/u/book/"

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, url: str = BOOK, **kw: object) -> CardDAVClient:
    kw.setdefault("retry_wait", 0.0)
    return CardDAVClient(url, "u", "p", transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def multistatus(*parts: str, token: str | None = None) -> httpx.Response:
    tok = f"<d:sync-token>{token}</d:sync-token>" if token is not None else ""
    body = f'<d:multistatus xmlns:d="DAV:">{"".join(parts)}{tok}</d:multistatus>'
    return httpx.Response(207, content=body.encode())


def changed(href: str, etag: str) -> str:
    return (
        f"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>{etag}</d:getetag>"
        "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
    )


def gone(href: str, status: str = "404 Not Found") -> str:
    return f"<d:response><d:href>{href}</d:href><d:status>HTTP/1.1 {status}</d:status></d:response>"


class Recorder:
    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.responses.pop(0)


def test_sync_follows_507_truncation_until_complete() -> None:
    server = Recorder(
        multistatus(
            changed("/u/book/a.vcf", '"1"'),
            changed("/u/book/b.vcf", '"1"'),
            gone("/u/book/", "507 Insufficient Storage"),
            token="t1",
        ),
        multistatus(
            changed("/u/book/c.vcf", '"1"'), gone("/u/book/b.vcf"), changed(BOOK, '"x"'), token="t2"
        ),
    )
    with client_for(server) as client:
        result = client.sync_collection(BOOK, None)
    assert result.changed == {BOOK + "a.vcf": '"1"', BOOK + "c.vcf": '"1"'}
    assert result.removed == (BOOK + "b.vcf",)
    assert result.token == "t2"
    bodies = [r.content.decode() for r in server.requests]
    assert "<d:sync-token></d:sync-token>" in bodies[0]
    assert "<d:sync-token>t1</d:sync-token>" in bodies[1]
    assert all("limit" not in b for b in bodies)
    assert all(r.method == "REPORT" and r.headers["Depth"] == "0" for r in server.requests)


def test_sync_truncation_without_progress_is_an_error_not_a_loop() -> None:
    stuck = multistatus(gone("/u/book/", "507 Insufficient Storage"), token="t1")
    with client_for(Recorder(stuck, stuck)) as client, pytest.raises(PermanentError):
        client.sync_collection(BOOK, "t1")


@pytest.mark.parametrize("status", [403, 409, 410, 412])
def test_refused_sync_token_is_cursor_expired(status: int) -> None:
    with client_for(Recorder(httpx.Response(status))) as client, pytest.raises(CursorExpired):
        client.sync_collection(BOOK, "old")


def test_refused_first_sync_is_not_a_cursor_problem() -> None:
    with client_for(Recorder(httpx.Response(403))) as client, pytest.raises(PermanentError) as err:
        client.sync_collection(BOOK, None)
    assert err.value.status == 403


def test_429_with_retry_after_seconds_is_transient_and_put_is_not_retried() -> None:
    server = Recorder(httpx.Response(429, headers={"Retry-After": "120"}))
    with client_for(server) as client, pytest.raises(TransientError) as err:
        client.put(BOOK + "a.vcf", b"x", if_none_match=True)
    assert err.value.retry_after == 120
    assert len(server.requests) == 1


def test_retry_after_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_reads_are_retried_after_short_retry_after_then_succeed() -> None:
    server = Recorder(
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(503),
        multistatus(changed("/u/book/a.vcf", '"1"'), token="t"),
    )
    with client_for(server, read_retries=2) as client:
        assert client.sync_collection(BOOK, None).changed == {BOOK + "a.vcf": '"1"'}
    assert len(server.requests) == 3


def test_long_retry_after_is_left_to_the_caller() -> None:
    server = Recorder(httpx.Response(503, headers={"Retry-After": "3600"}))
    with client_for(server, read_retries=2) as client, pytest.raises(TransientError) as err:
        client.list_etags(BOOK)
    assert err.value.retry_after == 3600
    assert len(server.requests) == 1


def test_write_errors_are_never_retried() -> None:
    server = Recorder(httpx.Response(502))
    with client_for(server, read_retries=3) as client, pytest.raises(TransientError):
        client.delete(BOOK + "a.vcf", '"1"')
    assert len(server.requests) == 1


def test_network_error_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client_for(refuse, read_retries=1) as client, pytest.raises(TransientError):
        client.list_etags(BOOK)


@pytest.mark.parametrize(
    ("status", "phase", "expected"),
    [
        (401, Phase.READ, InvalidCredentials),
        (403, Phase.DISCOVERY, InvalidCredentials),
        (403, Phase.WRITE, PermanentError),
        (404, Phase.READ, RemoteNotFound),
        (409, Phase.WRITE, PermanentError),
        (412, Phase.WRITE, PreconditionFailed),
        (415, Phase.WRITE, PermanentError),
        (500, Phase.WRITE, TransientError),
        (429, Phase.SYNC, TransientError),
        (401, Phase.SYNC, InvalidCredentials),
        (400, Phase.SYNC, PermanentError),
    ],
)
def test_classification(status: int, phase: Phase, expected: type[ConnectorError]) -> None:
    request = httpx.Request("PUT", BOOK + "a.vcf")
    error = classify(httpx.Response(status, request=request), href=BOOK + "a.vcf", phase=phase)
    assert type(error) is expected


def test_valid_sync_token_body_is_cursor_expired_whatever_the_status() -> None:
    body = b'<d:error xmlns:d="DAV:"><d:valid-sync-token/></d:error>'
    request = httpx.Request("REPORT", BOOK)
    error = classify(
        httpx.Response(400, content=body, request=request), href=BOOK, phase=Phase.SYNC
    )
    assert isinstance(error, CursorExpired)


def test_put_without_etag_in_response_learns_it() -> None:
    server = Recorder(
        httpx.Response(201),
        multistatus(changed("/u/book/a.vcf", '"stored"')),
    )
    with client_for(server) as client:
        assert client.put(BOOK + "a.vcf", b"x", etag='"old"') == '"stored"'
    put, propfind = server.requests
    assert put.headers["If-Match"] == '"old"' and "If-None-Match" not in put.headers
    assert propfind.method == "PROPFIND" and propfind.headers["Depth"] == "0"


def test_put_requires_a_precondition() -> None:
    with client_for(Recorder()) as client, pytest.raises(ValueError):
        client.put(BOOK + "a.vcf", b"x")


def test_discovery_follows_well_known_redirect_principal_and_home_set() -> None:
    rt_book = "<d:resourcetype><d:collection/><c:addressbook/></d:resourcetype>"

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        assert request.method == "PROPFIND", "redirects must keep the method"
        assert request.content, "redirects must keep the body"
        path = request.url.path
        if path == "/.well-known/carddav":
            return httpx.Response(301, headers={"Location": "https://dav2.test/dav/"})
        ns = 'xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"'
        if path == "/dav/":
            inner = (
                "<d:current-user-principal><d:href>/dav/p/u%40x/</d:href>"
                "</d:current-user-principal>"
            )
        elif path == "/dav/p/u@x/":
            inner = "<c:addressbook-home-set><d:href>/dav/h/</d:href></c:addressbook-home-set>"
        elif path == "/dav/h/":
            ok = "<d:status>HTTP/1.1 200 OK</d:status>"
            body = (
                f"<d:multistatus {ns}>"
                f"<d:response><d:href>/dav/h/</d:href><d:propstat><d:prop><d:resourcetype>"
                f"<d:collection/></d:resourcetype></d:prop>{ok}</d:propstat></d:response>"
                f"<d:response><d:href>/dav/h/b%201/</d:href><d:propstat><d:prop>{rt_book}"
                "<d:displayname>One</d:displayname><d:supported-report-set><d:supported-report>"
                "<d:report><d:sync-collection/></d:report></d:supported-report>"
                f"</d:supported-report-set></d:prop>{ok}</d:propstat></d:response>"
                f"<d:response><d:href>https://dav2.test/dav/h/b2/</d:href><d:propstat><d:prop>"
                f"{rt_book}</d:prop>{ok}</d:propstat>"
                "<d:propstat><d:prop><d:supported-report-set><d:supported-report><d:report>"
                "<d:sync-collection/></d:report></d:supported-report></d:supported-report-set>"
                "</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>"
                "</d:multistatus>"
            )
            return httpx.Response(207, content=body.encode())
        else:
            return httpx.Response(404)
        ok = "<d:status>HTTP/1.1 200 OK</d:status>"
        return httpx.Response(
            207,
            content=(
                f"<d:multistatus {ns}><d:response><d:href>{path}</d:href><d:propstat><d:prop>"
                f"{inner}</d:prop>{ok}</d:propstat></d:response></d:multistatus>"
            ).encode(),
        )

    with client_for(handler, url="http://dav.test/") as client:
        books = client.discover()
    assert [(b.url, b.displayname, b.supports_sync) for b in books] == [
        ("https://dav2.test/dav/h/b%201/", "One", True),
        ("https://dav2.test/dav/h/b2/", None, False),
    ]


def test_https_to_http_redirect_is_refused() -> None:
    server = Recorder(httpx.Response(302, headers={"Location": "http://dav.test/x/"}))
    with client_for(server, url="https://dav.test/") as client, pytest.raises(PermanentError):
        client.list_etags("https://dav.test/book/")


def test_multiget_skips_404_members_and_restores_crlf() -> None:
    card = "BEGIN:VCARD\nVERSION:3.0\nUID:a\nFN:A\n  continued\nEND:VCARD\n"
    server = Recorder(
        multistatus(
            "<d:response><d:href>/u/book/a.vcf</d:href><d:propstat><d:prop>"
            '<d:getetag>"1"</d:getetag>'
            f'<c:address-data xmlns:c="urn:ietf:params:xml:ns:carddav">{card}</c:address-data>'
            "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
            gone("/u/book/b.vcf"),
        )
    )
    with client_for(server) as client:
        got = list(client.multiget(BOOK, ["a.vcf", BOOK + "b.vcf"]))
    assert [(c.href, c.etag) for c in got] == [(BOOK + "a.vcf", '"1"')]
    assert got[0].data == card.replace("\n", "\r\n").encode()
    sent = server.requests[0].content.decode()
    assert "<d:href>/u/book/a.vcf</d:href>" in sent and "<d:href>/u/book/b.vcf</d:href>" in sent


def test_sync_with_data_keeps_bodies_only_of_members_still_changed() -> None:
    def with_card(href: str, body: str) -> str:
        return (
            f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>"
            '<d:getetag>"1"</d:getetag>'
            f'<c:address-data xmlns:c="urn:ietf:params:xml:ns:carddav">{body}</c:address-data>'
            "</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
        )

    server = Recorder(
        multistatus(
            with_card("/u/book/a.vcf", "BEGIN:VCARD\nUID:a\nEND:VCARD"),
            with_card("/u/book/b.vcf", "BEGIN:VCARD\nUID:b\nEND:VCARD"),
            gone("/u/book/", "507 Insufficient Storage"),
            token="t1",
        ),
        multistatus(gone("/u/book/b.vcf"), changed("/u/book/c.vcf", '"2"'), token="t2"),
    )
    with client_for(server) as client:
        result = client.sync_collection(BOOK, "t0", with_data=True)
    assert result.data == {BOOK + "a.vcf": b"BEGIN:VCARD\r\nUID:a\r\nEND:VCARD\r\n"}
    assert set(result.changed) == {BOOK + "a.vcf", BOOK + "c.vcf"}
    assert all(b"<card:address-data/>" in r.content for r in server.requests)
