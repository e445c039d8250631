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
"""

from __future__ import annotations

import mmap
import os

# Two copies of the 48-byte WalIndexHdr, then the checkpoint information.
_HEADER = 48
_IS_INIT = 12


class WalStamp:
    """The WAL-index header of one database file, read from its ``-shm`` file."""

    def __init__(self, database_path: str) -> None:
        self.path = database_path + "-shm"
        self._map: mmap.mmap | None = None

    @property
    def is_open(self) -> bool:
        return self._map is not None

    def open(self) -> bool:
        """Map the header; False when there is none to map (not in WAL mode, say). Call
        it while a connection to the database is open, so the file is not removed."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size < 2 * _HEADER:
                return False
            self._map = mmap.mmap(fd, 2 * _HEADER, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        return True

    def read(self) -> bytes | None:
        """The current header, or None when it is not mapped or not consistent now."""
        mapped = self._map
        if mapped is None:
            return None
        try:
            first = mapped[:_HEADER]
            second = mapped[_HEADER : 2 * _HEADER]
        except ValueError:  # closed by another thread meanwhile
            return None
        if first != second or not first[_IS_INIT]:
            return None
        return first

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
