"""What the crash tests share: a ``rolodex sync`` process of its own, killed with SIGKILL
at a chosen point, and the lease its death leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from rolodex.config import Settings
from rolodex.store import Store
from rolodex.store.schema import accounts
from tests.conftest import TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def count_rows(store: Store, table: Any, account_id: str) -> int:
    with store.read() as tx:
        return int(
            tx.conn.execute(
                select(func.count()).select_from(table).where(table.c.account_id == account_id)
            ).scalar_one()
        )


def sync_process(settings: Settings, account_id: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ROLODEX_SECRET_KEY": TEST_SECRET_KEY, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rolodex",
            "sync",
            account_id,
            "--database-url",
            settings.database_url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


def kill_when(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 60) -> None:
    """SIGKILL the process as soon as ``ready()`` holds; fail if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"sync finished before it could be killed: {out!r} {err[-2000:]!r}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("sync never reached the point to kill it at")


def lease_expires(store: Store, account_id: str) -> None:
    """What the lease timeout does for a worker that died holding it."""
    with store.write() as tx:
        tx.conn.execute(
            update(accounts).where(accounts.c.id == account_id).values(lease_until=time.time() - 1)
        )
