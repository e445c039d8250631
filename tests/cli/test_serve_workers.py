"""``rolodex serve --workers N``: N API processes on one port, stateless, on both databases:
requests spread over them answer as one server would (paging, ETags, writes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rolodex.service.accounts import AccountService
from rolodex.store import Store
from tests.conftest import TEST_SECRET_KEY, free_port

WORKERS = 3


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def test_serve_with_workers(store: Store, tmp_path: Path) -> None:
    created = AccountService(store).create("workers@example.com")
    auth = (created.access_token, "")
    port = free_port()
    env = {**os.environ, "ROLODEX_SECRET_KEY": TEST_SECRET_KEY}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rolodex",
            "serve",
            "--port",
            str(port),
            "--database-url",
            store.url,
            "--workers",
            str(WORKERS),
            "--sync-interval",
            "0",
            "--no-demo",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/contacts", auth=auth).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "did not start"
            time.sleep(0.2)
        # Every request on a new connection: the kernel spreads them over the processes.
        made = [
            httpx.post(f"{base}/contacts", json={"given_name": f"w{i}"}, auth=auth).json()["id"]
            for i in range(12)
        ]
        one = httpx.get(f"{base}/contacts/{made[0]}", auth=auth)
        etag = one.headers["etag"]
        assert (
            httpx.put(
                f"{base}/contacts/{made[0]}",
                json={"surname": "S"},
                headers={"If-Match": etag},
                auth=auth,
            ).status_code
            == 200
        )
        assert (
            httpx.put(
                f"{base}/contacts/{made[0]}",
                json={"surname": "T"},
                headers={"If-Match": etag},
                auth=auth,
            ).status_code
            == 412
        )
        seen: list[str] = []
        for offset in range(0, 12, 4):
            page = httpx.get(f"{base}/contacts", params={"limit": 4, "offset": offset}, auth=auth)
            seen += [c["id"] for c in page.json()]
            if offset == 0:
                assert httpx.delete(f"{base}/contacts/{made[1]}", auth=auth).status_code == 200
        assert seen == made  # the walk neither skipped nor repeated across processes
        assert len(_children(server.pid) - {os.getpid()}) >= WORKERS
    finally:
        server.terminate()
        server.wait(20)
    assert server.returncode is not None


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads /proc")
