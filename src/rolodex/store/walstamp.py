"""Whether anything was committed to a SQLite database since a moment, for free.

A cached read must know that no write committed before it started, by any process, has
moved its account's generation on; asking the database costs a statement per request, as
much as the rest of a cached read. In WAL mode SQLite answers the same question for its own
readers from the WAL-index header at the start of the ``-shm`` file, which every connection
maps into memory: the header holds a counter incremented by every transaction, the number of
frames in the WAL and the WAL's salts, so any commit (and any checkpoint that restarts the
WAL) changes it (https://www.sqlite.org/walformat.html, "The WAL-Index Header"). Writers
store the header twice and readers take it only when both copies agree, so a reader never
trusts a header caught mid-update; this does the same, and answers "unknown" otherwise.

An unchanged stamp proves nothing was committed between the two reads of it; a changed one
only sends the caller back to the database.

Nothing here opens or closes a descriptor of SQLite's files. Closing *any* descriptor of a
file drops every POSIX lock the process holds on it, SQLite's included ("How To Corrupt An
SQLite Database File", section 2.2): the next process to open the database then believes it
is alone and resets the shared memory this one still has mapped (SIGBUS, or a corrupt
database). So the header is mapped through the descriptor SQLite itself holds open for the
``-shm`` file (found in ``/proc/self/fd``), with the C library's ``mmap`` (Python's
``mmap.mmap`` duplicates the descriptor and closes that duplicate when it is closed).
Unmapping touches no descriptor. Where that cannot be done (no ``/proc``), there is no
stamp, and callers ask the database.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

# Two copies of the 48-byte WalIndexHdr, then the checkpoint information.
_HEADER = 48
_IS_INIT = 12
_PROT_READ = 0x1
_MAP_SHARED = 0x01
_MAP_FAILED = ctypes.c_void_p(-1).value

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    _libc.mmap.restype = ctypes.c_void_p
    _libc.mmap.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    )
    _libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
except (OSError, AttributeError):  # no C library to call: no stamps
    _libc = None


def _descriptor_of(path: str) -> int | None:
    """A descriptor this process already has open on ``path`` (SQLite's), if any."""
    try:
        wanted = os.stat(path)
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            fd = int(name)
            found = os.fstat(fd)
        except (ValueError, OSError):
            continue
        if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
            return fd
    return None


class WalStamp:
    """The WAL-index header of one database file, read from its ``-shm`` file."""

    def __init__(self, database_path: str) -> None:
        self.path = database_path + "-shm"
        self._address: int | None = None
        # The mapped bytes as a ctypes array (``.raw`` copies them out: a third of the cost
        # of ctypes.string_at); the lock keeps a read from racing an unmap.
        self._array: ctypes.Array[ctypes.c_char] | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._address is not None

    def open(self) -> bool:
        """Map the header; False when there is none to map (not in WAL mode, no
        connection of this process has the ``-shm`` file open, no ``/proc``). Call it while
        a connection to the database is open, and ``close`` before that connection closes:
        the mapping is valid while SQLite keeps the file."""
        if _libc is None:
            return False
        fd = _descriptor_of(self.path)
        if fd is None:
            return False
        try:
            if os.fstat(fd).st_size < 2 * _HEADER:
                return False
        except OSError:
            return False
        address = _libc.mmap(None, 2 * _HEADER, _PROT_READ, _MAP_SHARED, fd, 0)
        if address is None or address == _MAP_FAILED:
            return False
        with self._lock:
            self._address = address
            self._array = (ctypes.c_char * (2 * _HEADER)).from_address(address)
        return True

    def read(self) -> bytes | None:
        """The current header, or None when it is not mapped or not consistent now."""
        with self._lock:
            array = self._array
            if array is None:
                return None
            both = array.raw
        first, second = both[:_HEADER], both[_HEADER:]
        if first != second or not first[_IS_INIT]:
            return None
        return first

    def close(self) -> None:
        with self._lock:
            address, self._address, self._array = self._address, None, None
        if address is not None and _libc is not None:
            _libc.munmap(address, 2 * _HEADER)
