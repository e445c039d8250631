"""The WAL stamp (rolodex.store.walstamp): moves with every commit, from any connection or
process, through checkpoints; never claims to know when it cannot."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rolodex.store.walstamp import WalStamp


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sqlite3.Connection]]:
    path = str(tmp_path / "stamp.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("SELECT count(*) FROM t").fetchall()  # the reader's -shm is there now
    yield path, writer
    reader.close()
    writer.close()


def test_every_commit_and_nothing_else_moves_the_stamp(
    database: tuple[str, sqlite3.Connection],
) -> None:
    path, writer = database
    stamp = WalStamp(path)
    assert stamp.open()
    seen = {stamp.read()}
    assert stamp.read() in seen  # nothing committed: the same stamp
    for i in range(300):
        writer.execute("INSERT INTO t VALUES (?)", (i,))
        now = stamp.read()
        assert now is not None and now not in seen, i
        seen.add(now)
        if i % 100 == 99:  # a checkpoint restarts the WAL: the stamps stay new
            writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            seen.add(stamp.read())
        assert stamp.read() == stamp.read()
    stamp.close()
    assert stamp.read() is None


def test_a_commit_in_another_process_moves_the_stamp(
    database: tuple[str, sqlite3.Connection],
) -> None:
    path, _ = database
    stamp = WalStamp(path)
    assert stamp.open()
    before = stamp.read()
    code = (
        "import sqlite3, sys\n"
        "with sqlite3.connect(sys.argv[1]) as conn:\n"
        "    conn.execute('INSERT INTO t VALUES (1)')\n"
    )
    subprocess.run([sys.executable, "-c", code, path], check=True)
    assert stamp.read() not in (None, before)


def test_without_a_wal_index_there_is_no_stamp(tmp_path: Path) -> None:
    assert not WalStamp(str(tmp_path / "missing.db")).open()
    path = str(tmp_path / "rollback.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")  # rollback-journal mode: no -shm file
    stamp = WalStamp(path)
    assert not stamp.open()
    assert stamp.read() is None
    conn.close()


def test_a_header_being_rewritten_is_not_trusted(
    database: tuple[str, sqlite3.Connection], tmp_path: Path
) -> None:
    # SQLite writes the two copies of the header one after the other; a reader between the
    # two writes sees copies that differ and must not take either.
    path, _ = database
    shm = Path(path + "-shm").read_bytes()
    torn = tmp_path / "torn.db"
    Path(str(torn) + "-shm").write_bytes(shm[:48] + bytes(48) + shm[96:])
    # The stamp maps only a file this process holds open already, as SQLite does.
    held = os.open(str(torn) + "-shm", os.O_RDONLY)
    try:
        stamp = WalStamp(str(torn))
        assert stamp.open()
        assert stamp.read() is None
        stamp.close()
    finally:
        os.close(held)


def test_the_stamp_never_drops_sqlites_locks(database: tuple[str, sqlite3.Connection]) -> None:
    # Closing any descriptor of a file drops the process's POSIX locks on it; the stamp
    # opens and closes none, so SQLite's shared lock on the -shm file (the one that tells
    # another process it is not alone) survives opening and closing stamps.
    path, _ = database
    for _ in range(3):
        stamp = WalStamp(path)
        assert stamp.open()
        stamp.close()
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        # SQLite's DMS lock byte (the 'dead man switch' at offset 128 of the -shm file):
        # another process may take it exclusively only when no connection is open.
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n"
        "    print('alone')\n"
        "except OSError:\n"
        "    print('shared')\n"
    )
    seen = subprocess.run(
        [sys.executable, "-c", code, path + "-shm"], capture_output=True, text=True, check=True
    )
    assert seen.stdout.strip() == "shared"
