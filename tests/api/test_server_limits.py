"""Limits of the HTTP server itself, against a real server on 127.0.0.1: slow and oversized
request heads, too many connections and idle keep-alive connections are cut off, answered in
the v2 error shape where HTTP allows."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from rolodex.api.app import create_app
from rolodex.api.server import server_config
from rolodex.store import Store
from tests.conftest import App, free_port

LIMITS = {
    "header_timeout": 1.0,
    "body_timeout": 1.5,
    "max_header_bytes": 8192,
    "max_url_bytes": 2048,
    "max_connections": 6,
    "keep_alive_timeout": 1.0,
}


@pytest.fixture(scope="module")
def server(app: App) -> Iterator[tuple[str, int]]:
    settings = dataclasses.replace(app.settings, **LIMITS)
    store = Store(app.store.url)
    port = free_port()
    config = server_config(create_app(settings, store), "127.0.0.1", port, settings)
    config.log_level = "warning"
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    instance.should_exit = True
    thread.join(timeout=5)
    store.close()


def connect(server: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(server, timeout=5)
    return sock


def read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def v2_error(raw: bytes, status: int) -> dict[str, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), raw[:200]
    assert b"content-type: application/json" in head.lower()
    parsed: dict[str, str] = json.loads(body)
    assert parsed["message"] and parsed["type"] == "invalid_request_error"
    return parsed


def test_ordinary_requests_and_keep_alive_work(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_a_slow_loris_head_is_cut_off(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /contacts HTTP/1.1\r\nHost: localhost\r\n")
        try:
            for byte in b"X-Slow: " + b"a" * 40:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = read_all(sock)
        assert time.monotonic() - started < 4
    assert "in time" in v2_error(raw, 408)["message"]


def test_a_head_begun_in_one_packet_and_never_finished_is_a_408(server: tuple[str, int]) -> None:
    # The bytes of the read that began the request were counted afresh as none, so a head
    # sent in one packet and then left unfinished was closed without an answer.
    for begun in (b"GET /contacts HTTP/1.1\r\nHost: localhost\r\n", b"G"):
        with connect(server) as sock:
            started = time.monotonic()
            sock.sendall(begun)
            raw = read_all(sock)
            assert time.monotonic() - started < 4
        assert "in time" in v2_error(raw, 408)["message"]


def test_the_next_head_on_a_kept_alive_connection_is_timed_too(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: loc")
        raw = read_all(sock)
    assert "in time" in v2_error(raw, 408)["message"]


def test_a_slow_body_is_cut_off(app: App, server: tuple[str, int]) -> None:
    # A body trickled in a byte at a time held its connection for as long as the client
    # liked (a thousand of them fill the connection cap for everyone).
    token = app.new_account().token
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200\r\n"
            b"Authorization: Bearer %s\r\n\r\n{" % token.encode()
        )
        try:
            for _ in range(60):
                sock.sendall(b" ")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = read_all(sock)
        assert time.monotonic() - started < 5
    assert "body did not arrive in time" in v2_error(raw, 408)["message"]


def test_a_body_sent_in_time_is_read(app: App, server: tuple[str, int]) -> None:
    token = app.new_account().token
    body = b'{"given_name": "Slow but steady"}'
    with connect(server) as sock:
        for _ in range(2):  # and the timer of one request does not cut off the next
            sock.sendall(
                b"POST /contacts HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n"
                b"Authorization: Bearer %s\r\n\r\n" % (len(body), token.encode())
            )
            for part in (body[:10], body[10:]):
                time.sleep(0.5)
                sock.sendall(part)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
            time.sleep(0.3)


def test_a_websocket_upgrade_is_answered_as_http(server: tuple[str, int]) -> None:
    # Rolodex has no websocket routes: an upgrade went to the websocket library, which
    # answered a bare 403 (and took the connection out of the count the cap keeps).
    with connect(server) as sock:
        sock.sendall(
            b"GET /contacts HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        raw = read_all(sock, timeout=3)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), raw[:300]
    assert json.loads(body)["message"] == "Could not verify access credential."


def test_an_idle_new_connection_is_closed(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        raw = read_all(sock)
        assert 0.5 < time.monotonic() - started < 4
    assert raw == b"" or raw.startswith(b"HTTP/1.1 408 ")


def test_an_oversized_head_is_refused(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
            for _ in range(200):  # 20 MB never finished: refused long before
                sock.sendall(b"b" * 100_000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = read_all(sock)
    assert "header" in v2_error(raw, 431)["message"].lower()


def test_many_small_headers_count_too(server: tuple[str, int]) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 50) for n in range(300))
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n")
        raw = read_all(sock)
    v2_error(raw, 431)


def test_an_oversized_url_is_refused(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"GET /contacts?email=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        raw = read_all(sock)
    assert "url" in v2_error(raw, 414)["message"].lower()


def test_garbage_is_a_v2_400(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(b"\x00\x01NOT HTTP\r\n\r\n")
        raw = read_all(sock)
    v2_error(raw, 400)


def test_connections_past_the_cap_are_refused(server: tuple[str, int]) -> None:
    held = [connect(server) for _ in range(LIMITS["max_connections"])]  # type: ignore[arg-type]
    try:
        time.sleep(0.2)
        with connect(server) as extra:
            raw = read_all(extra, timeout=3)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), raw[:200]
        assert json.loads(body)["type"] == "api_error"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with connect(server) as sock:  # room again
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_idle_keep_alive_connections_are_closed(server: tuple[str, int]) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - started < 3
