"""Where pages of the unfiltered list end, at exact positions of one account generation.

Within one generation an account's contacts are fixed (rolodex.service.readcache), and so
is which contact stands at each position of the list. A page read at plain ``OFFSET N``
ends at position ``N + length``; so does a page read after the last key of one that ended
exactly at ``N``. When paging decides plain OFFSET for a page (``PageCursors``: no page end
to continue, as when a client asks for the next page before the previous one has been
answered), its rows are the ones after the nearest such end at or before ``N``, skipping
the difference: the same rows, without a walk over every key before them (tens of
milliseconds deep into a large account, on every page read so, cold).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from threading import Lock

# Page ends remembered, over all accounts, before they are all forgotten.
MAX_ENDS = 200_000


class _Generation:
    __slots__ = ("ends", "generation", "offsets")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.ends: dict[int, int] = {}  # end offset -> the last key before it
        self.offsets: list[int] = []  # the same end offsets, sorted


class Positions:
    def __init__(self) -> None:
        self._accounts: dict[str, _Generation] = {}
        self._count = 0
        self._lock = Lock()

    def nearest(self, account_id: str, generation: int, offset: int) -> tuple[int, int] | None:
        """(key, skip): ``OFFSET offset`` at ``generation`` is the rows after ``key``
        from the ``skip``-th on; None when no end at or before ``offset`` is known."""
        with self._lock:
            known = self._accounts.get(account_id)
            if known is None or known.generation != generation:
                return None
            at = bisect_right(known.offsets, offset)
            if not at:
                return None
            end = known.offsets[at - 1]
            return known.ends[end], offset - end

    def record(
        self,
        account_id: str,
        generation: int,
        offset: int,
        after: int | None,
        length: int,
        last_key: int | None,
    ) -> None:
        """A page of ``generation`` for ``offset``, read at plain OFFSET (``after`` None)
        or after key ``after``, had ``length`` rows, the last one ``last_key``."""
        if last_key is None:
            return
        with self._lock:
            known = self._accounts.get(account_id)
            if known is None or known.generation < generation:
                if self._count >= MAX_ENDS:
                    self._accounts.clear()
                    self._count = 0
                if known is not None:
                    self._count -= len(known.offsets)
                known = self._accounts[account_id] = _Generation(generation)
            elif known.generation > generation:
                return  # read in an older snapshot than one already seen
            if after is not None and known.ends.get(offset) != after:
                return  # continued a page end of unknown position (an earlier generation's)
            end = offset + length
            if end not in known.ends:
                insort(known.offsets, end)
                self._count += 1
            known.ends[end] = last_key
