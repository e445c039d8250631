"""Rate-limit counts shared by every API process through PostgreSQL, off the request path
(on SQLite each process counts alone: ``rolodex.api.ratelimit`` says why).

A request is counted in this process's memory only (``Counts.add``: a few dictionary and
list operations). A thread of each process (``SharedCounts``) keeps the processes' counts
in step, in rounds aligned to the wall clock (every ``tick`` seconds, on every host alike):

- at the start of a round it adds what this process counted since its last round to the
  database's sums, and says the process is alive and done with the round;
- half a round later it reads the sums back and, when every process alive is done with
  the round (the sums are complete), gives each key its *allowance*: what this process has
  added, plus its share of what the limit leaves (what is left divided by the processes
  alive). Every process takes its share of the same remainder, so together they stay
  within the limit. Sums read while a process is late (a busy machine) only cut
  allowances, never raise them.

Before a process has heard the sums of a window it admits its share of the limit
(``limit / processes``): a burst spread over all processes at once is held to the limit
too. The cost is that one process alone sees a key's whole limit only after a round or
two (a burst at the start of a second gets a share of it). A key whose traffic moves to
another process in mid-window can pass the limit by up to a share, and so can a process in
its first round (it takes itself for alone until it has heard of the others).

Failed authentications are added at once (``urgent``; they are rare, and the limit on
them is tight), and every round reads which client addresses have reached it anywhere,
so an address refused by one process is refused by all within a round.

Without the database (a restart) each process goes on with what it last knew; the counts
it kept meanwhile are added once it is back.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import uuid
from typing import Any

from rolodex.store import Store
from rolodex.store.database import Busy
from rolodex.store.ratecounts import PROCESS_PREFIX

log = logging.getLogger(__name__)

_PRUNE_AT = 50_000
# How long a process is counted as alive after it last said so.
_ALIVE_SECONDS = 3
# Rows of windows that ended longer ago than this are removed (now and then).
_KEEP_SECONDS = 10
_PRUNE_EVERY = 10.0
# Failed authentications are added at once, but no more often than this.
_URGENT_GAP = 0.01

# [window number, count, count added to the sums, allowance]
Entry = list[float]


class Counts:
    """One limit's counts per key in fixed windows of ``length`` seconds (a second, a
    minute), aligned to the wall clock so that every process's windows are the same."""

    def __init__(self, kind: str, limit: int, length: int, *, urgent: bool = False) -> None:
        self.kind = kind
        self.limit = limit
        self.length = length
        # Urgent counts (failed authentications: rare, their limit tight) are added at
        # once, and the sums each addition returns are trusted as they are. Their keys
        # (client addresses) are kept in the database as they are, so that other processes
        # learn of keys they have not seen (``SharedCounts.learn`` reads those that reached
        # the limit); the others are hashed (tokens must not be stored).
        self.urgent = urgent
        # This process's share of a window it has not heard the sums of.
        self.share = float(limit)
        self.entries: dict[Any, Entry] = {}

    def add(self, key: Any, now: float) -> float | None:
        """Count a request if the allowance admits it: None then, else the seconds until
        the window ends. Only what is admitted counts (a refusal here must not use up
        what the other processes may admit)."""
        window = math.floor(now / self.length)
        entry = self.entries.get(key)
        if entry is None or entry[0] != window:
            self._start(key, window)
            return None
        if entry[1] + 1 > entry[3]:
            return (window + 1) * self.length - now
        entry[1] += 1
        return None

    def note(self, key: Any, now: float) -> None:
        """Count what has happened anyway (a failed authentication)."""
        window = math.floor(now / self.length)
        entry = self.entries.get(key)
        if entry is None or entry[0] != window:
            self._start(key, window)
        else:
            entry[1] += 1

    def _start(self, key: Any, window: float) -> None:
        if len(self.entries) > _PRUNE_AT:
            self.entries = {k: v for k, v in self.entries.items() if v[0] == window}
        self.entries[key] = [window, 1, 0, self.share]

    def reached(self, key: Any, now: float) -> float | None:
        """Seconds until the window ends if the key has used its allowance, else None."""
        entry = self.entries.get(key)
        if entry is None or entry[1] < entry[3]:
            return None
        end = (entry[0] + 1) * self.length
        return end - now if end > now else None

    def allowance(self, added: float, total: int, processes: int) -> float:
        """What this process may count in a window: what it has added to the sums, and
        its share of what the limit leaves."""
        return added + max(0, self.limit - total) / processes

    def stored_key(self, key: Any) -> str:
        raw = key if isinstance(key, str) else repr(key)
        if self.urgent and len(raw) <= 56 and raw.isprintable():
            return f"{self.kind}:{raw}"
        digest = hashlib.blake2b(raw.encode(errors="replace"), digest_size=16).hexdigest()
        return f"{self.kind}#{digest}"

    def window_end(self, window: float) -> int:
        return int((window + 1) * self.length)


class SharedCounts:
    """The thread that keeps ``counts`` in step with the other processes' (see above)."""

    def __init__(self, store: Store, counts: list[Counts], tick: float) -> None:
        self.rounds = store.rate_count_rounds()
        self.counts = counts
        self.tick = tick
        self.process = f"{PROCESS_PREFIX}{uuid.uuid4().hex[:16]}"
        self.processes = 1
        self._urgent = threading.Event()
        self._stop = threading.Event()
        self._last_prune = 0.0
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="rolodex-rate-limits", daemon=True)
        self._thread.start()

    def urgent(self) -> None:
        """Add what was counted now rather than at the next round."""
        self._urgent.set()

    def close(self) -> None:
        self._stop.set()
        self._urgent.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            self._rounds()
        finally:
            self.rounds.close()

    def _rounds(self) -> None:
        half = self.tick / 2
        while not self._stop.is_set():
            now = time.time()
            boundary = (math.floor(now / half) + 1) * half
            urgent = self._urgent.wait(boundary - now)
            if self._stop.is_set():
                return
            try:
                if urgent:
                    self._urgent.clear()
                    self.add()
                    time.sleep(_URGENT_GAP)
                elif round(boundary / half) % 2 == 0:
                    self.add()
                else:
                    self.learn()
            except Busy:
                pass  # another process holds a row a while: the next round adds it all
            except Exception as error:
                if not self._failing:
                    log.warning("rate-limit counts are not shared for now: %s", error)
                    self._failing = True
                continue
            self._failing = False

    def add(self) -> None:
        """Add what this process counted since it last did to the sums. Other processes
        may not have added this round's yet, so these sums only cut an allowance (half a
        round later ``learn`` reads them all), but for urgent counts, which every process
        adds at once."""
        now = time.time()
        rows: list[tuple[int, str, int]] = []
        added: list[tuple[Counts, Entry, float, tuple[int, str]]] = []
        for counts in self.counts:
            window = math.floor(now / counts.length)
            for key, entry in list(counts.entries.items()):
                n = entry[1]
                if entry[0] == window and n > entry[2]:
                    slot = (counts.window_end(window), counts.stored_key(key))
                    rows.append((*slot, int(n - entry[2])))
                    added.append((counts, entry, n, slot))
        # Alive, and done adding this round's counts: a round's sums are complete once
        # every process alive says so (``learn``).
        prune = now - _KEEP_SECONDS if now - self._last_prune > _PRUNE_EVERY else None
        sums = self.rounds.add(
            rows,
            self.process,
            math.floor(now) + _ALIVE_SECONDS,
            math.floor(now / self.tick),
            prune_before=prune,
        )
        if prune is not None:
            self._last_prune = now
        for counts, entry, n, slot in added:
            entry[2] = n
            allowance = counts.allowance(n, sums.get(slot, 0), self.processes)
            entry[3] = allowance if counts.urgent else min(entry[3], allowance)

    def learn(self) -> None:
        """Read the sums of the keys this process counts in their current windows, which
        processes are alive, and which urgent keys reached their limit anywhere."""
        now = time.time()
        slots: dict[tuple[int, str], tuple[Counts, Entry]] = {}
        for counts in self.counts:
            window = math.floor(now / counts.length)
            for key, entry in list(counts.entries.items()):
                if entry[0] == window:
                    slots[(counts.window_end(window), counts.stored_key(key))] = (counts, entry)
        second = math.floor(now)
        urgent = [counts for counts in self.counts if counts.urgent]
        learned = self.rounds.learn(
            # Alive: said so this second or the one before (rows ending past any window).
            [second + _ALIVE_SECONDS - 1, second + _ALIVE_SECONDS],
            list(slots),
            [
                (
                    counts.kind + ":",
                    counts.window_end(math.floor(now / counts.length)),
                    counts.limit,
                )
                for counts in urgent
            ],
        )
        rounds, sums = learned.rounds, learned.sums
        reached = {counts: learned.reached[counts.kind + ":"] for counts in urgent}
        processes = self.processes = max(1, len(rounds))
        # Every process alive has added this round's counts: the sums are complete, and
        # each process may take its share of what they leave. Else (one is late: a busy
        # machine) the sums only cut allowances, as in ``add``.
        complete = min(rounds, default=0) >= math.floor(now / self.tick)
        for counts in self.counts:
            counts.share = float(max(1, counts.limit // processes))
        for slot, (counts, entry) in slots.items():
            allowance = counts.allowance(entry[2], sums.get(slot, 0), processes)
            entry[3] = allowance if complete else min(entry[3], allowance)
        for counts, keys in reached.items():
            window = math.floor(now / counts.length)
            for stored in keys:
                key = stored[len(counts.kind) + 1 :]
                known = counts.entries.get(key)
                if known is None or known[0] != window:
                    counts.entries[key] = [window, 0, 0, 0.0]  # reached elsewhere
