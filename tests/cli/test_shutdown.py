"""Graceful shutdown, for real: ``rolodex worker`` and ``rolodex serve`` as processes, sent
SIGTERM in the middle of their work against a CardDAV server that answers slowly (a proxy in
front of Radicale that holds the requests it is told to).

In-flight requests finish (a long-poll answers at once), a sync stops at a safe point (a
write in flight is finished and recorded, the next one is not started), the lease is given
back at once (another worker takes the account now, not when the lease runs out), and the
logs of the process that delivered a write carry the id of the request that made it."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rolodex.api.app import create_app
from rolodex.cli.sync import make_runner
from rolodex.store import Store
from tests.carddav_servers import RadicaleServer
from tests.conftest import TEST_SECRET_KEY, free_port, settings_for_tests

# Not forwarded: httpx has undone the encoding and the framing.
_HOP_BY_HOP = {"transfer-encoding", "content-length", "connection", "content-encoding"}


class SlowProxy:
    """Forwards every request to ``target``; a request whose method is in ``hold`` is
    held ``seconds`` first (``arrived`` is set when one comes)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.hold: set[str] = set()
        self.seconds = 0.0
        self.arrived = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.command in proxy.hold:
                    proxy.arrived.set()
                    time.sleep(proxy.seconds)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.request(
                    self.command, proxy.target + self.path, headers=headers, content=body
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = do_OPTIONS = forward
            do_POST = do_PROPPATCH = do_MKCOL = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer(users={"test": "secret"}) as server:
        assert server.default_addressbook  # Radicale has none until a client makes one
        yield server


class Scene:
    """An account connected through the proxy, synced once, with writes waiting."""

    def __init__(self, url: str, radicale: RadicaleServer) -> None:
        self.url = url
        self.settings = settings_for_tests(url)
        self.store = Store(url)
        self.proxy = SlowProxy(radicale.base_url)
        self.runner = make_runner(self.settings, self.store, 30.0)
        created = self.runner.accounts.connect(
            f"shutdown-{time.monotonic_ns()}@example.com",
            name="S",
            provider="carddav",
            settings={"url": self.proxy.url, "username": "test", "password": "secret"},
        )
        self.account_id = created.account.id
        self.token = created.access_token
        self.runner.run(self.account_id)
        self.api = TestClient(create_app(self.settings, self.store))
        self.api.auth = (self.token, "")

    def write(self, name: str, request_id: str) -> str:
        answer = self.api.post(
            "/contacts", json={"given_name": name}, headers={"X-Request-Id": request_id}
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def pending(self) -> list[Any]:
        return self.runner.mirror.pending(self.account_id)

    def linked(self, contact_id: str) -> bool:
        return self.runner.mirror.local_state(self.account_id, contact_id).link is not None  # type: ignore[union-attr]

    def lease_owner(self) -> str | None:
        with self.store.read() as tx:
            return tx.accounts.lease_holder(self.account_id, time.time())

    def close(self) -> None:
        self.proxy.close()
        self.store.close()


@pytest.fixture
def scene(store: Store, radicale: RadicaleServer) -> Iterator[Scene]:
    made = Scene(store.url, radicale)
    yield made
    made.close()


def start(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rolodex", *args],
        cwd=tmp_path,
        env={**os.environ, "ROLODEX_SECRET_KEY": TEST_SECRET_KEY, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def logged(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """The JSON records the process wrote to stderr (once it has exited)."""
    assert process.stderr is not None
    records = []
    for line in process.stderr.read().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_a_worker_stops_after_the_write_in_flight_and_gives_its_lease_back(
    scene: Scene, tmp_path: Path
) -> None:
    first = scene.write("First", "shutdown-write-0001")
    second = scene.write("Second", "shutdown-write-0002")
    scene.proxy.hold, scene.proxy.seconds = {"PUT"}, 2.0
    worker = start(tmp_path, "worker", "--database-url", scene.url, "--interval", "30")
    try:
        if not scene.proxy.arrived.wait(30):
            worker.kill()
            raise AssertionError(f"the worker never sent the first write: {logged(worker)}")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    # The write in flight was finished and recorded; the next one was not begun.
    assert scene.linked(first)
    assert [(i.object_id, i.attempts) for i in scene.pending()] == [(second, 0)]
    # The lease is free now: another worker takes the account at once.
    assert scene.lease_owner() is None
    scene.proxy.hold = set()
    report = scene.runner.run(scene.account_id, pull=False)
    assert report is not None and report.pushed == 1 and scene.linked(second)
    records = logged(worker)
    delivered = [r for r in records if r["message"] == f"create of contact {first} delivered"]
    assert delivered and delivered[0]["request_id"] == "shutdown-write-0001"
    assert any("stopped at a safe point" in r["message"] for r in records)


def test_a_worker_whose_provider_does_not_answer_gives_its_lease_back_in_time(
    scene: Scene, tmp_path: Path
) -> None:
    scene.write("Stuck", "shutdown-write-0003")
    scene.proxy.hold, scene.proxy.seconds = {"PUT"}, 30.0
    worker = start(
        tmp_path,
        "worker",
        "--database-url",
        scene.url,
        "--interval",
        "30",
        ROLODEX_SHUTDOWN_TIMEOUT="1",
    )
    try:
        assert scene.proxy.arrived.wait(30), "the worker never sent the write"
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        assert time.monotonic() - signalled < 5
    finally:
        if worker.poll() is None:
            worker.kill()
    assert scene.lease_owner() is None  # not when the 30 s lease runs out
    assert len(scene.pending()) == 1  # still waiting, to be tried again


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_finishes_requests_in_flight_and_stops_its_sync_at_a_safe_point(
    scene: Scene, tmp_path: Path, workers: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(
        tmp_path,
        "serve",
        "--port",
        str(port),
        "--database-url",
        scene.url,
        "--sync-interval",
        "30",
        "--no-demo",
        "--workers",
        workers,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.2)
        # A long-poll of an account that does not change meanwhile.
        quiet = scene.runner.accounts.create(f"quiet-{time.monotonic_ns()}@example.com")
        auth = (quiet.access_token, "")
        cursor = httpx.post(f"{base}/delta/latest_cursor", auth=auth).json()["cursor"]
        answers: dict[str, httpx.Response] = {}

        def longpoll() -> None:
            answers["longpoll"] = httpx.get(
                f"{base}/delta/longpoll",
                params={"cursor": cursor, "timeout": "60"},
                auth=auth,
                timeout=90,
            )

        waiting = threading.Thread(target=longpoll)
        waiting.start()
        first = scene.write("Served", "shutdown-write-0004")
        second = scene.write("Later", "shutdown-write-0005")
        scene.proxy.hold, scene.proxy.seconds = {"PUT"}, 2.0
        assert scene.proxy.arrived.wait(30), "the server's sync never sent the write"
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        waiting.join(30)
        assert answers["longpoll"].status_code == 200  # answered, not cut off
        assert answers["longpoll"].json()["deltas"] == []
        assert time.monotonic() - signalled < 5  # at once, not after its 60 s
        assert server.wait(15) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert scene.linked(first)
    assert [i.object_id for i in scene.pending()] == [second]
    assert scene.lease_owner() is None
