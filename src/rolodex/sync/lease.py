"""A sync's hold on its account: a short lease, renewed while the sync works.

Leases live in the database (``accounts.lease_owner``/``lease_until``), so any number of
processes on any number of hosts share the accounts with no other coordination. A lease
lasts ``LEASE_SECONDS`` and its holder renews it every ``RENEW_SECONDS`` from a thread
(one per process, renewing every lease the process holds: starting and joining a thread
for each sync cost a worker more than the rest of a sync with nothing to do, on a busy
machine), so a sync may take as long as it needs, while the lease of a holder that died
(SIGKILL, a lost host) runs out within ``LEASE_SECONDS`` and another process takes over.

A holder that stalls past its lease (a stopped process, a long pause) may find it taken:
every local write of its sync checks the lease in its own transaction
(``rolodex.service.mirror.Mirror.fenced``) and every remote write checks ``Lease.check``
first, so it stops at that point with ``LeaseLost`` instead of racing the new holder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from rolodex.domain.errors import LeaseLost

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
RENEW_SECONDS = LEASE_SECONDS / 3
# A holder stops trusting its lease this long before it runs out, in case a renewal
# is late: the database's clock and ours may also differ by a little.
SAFETY_SECONDS = 5.0

# Takes or extends the lease of (account, owner) for that many seconds; False when
# another owner holds it.
Acquire = Callable[[str, str, float], bool]


class Lease:
    """Held from ``take`` (or entering) until ``release`` (or leaving); renewed meanwhile."""

    def __init__(
        self,
        account_id: str,
        owner: str,
        acquire: Acquire,
        release: Callable[[str, str], None],
        *,
        seconds: float = LEASE_SECONDS,
        renew_every: float | None = None,
    ) -> None:
        self.account_id = account_id
        self.owner = owner
        self._acquire = acquire
        self._release = release
        self.seconds = seconds
        self.renew_every = renew_every if renew_every is not None else seconds / 3
        self._valid_until = 0.0  # monotonic
        self._lost = False
        self._released = False
        self._kept = False
        self._releasing = threading.Lock()

    def take(self) -> bool:
        started = time.monotonic()
        if not self._acquire(self.account_id, self.owner, self.seconds):
            return False
        self.taken_at(started)
        return True

    def taken_at(self, started: float) -> None:
        """The lease was taken (for ``seconds``) by a transaction that began at
        ``started`` (``time.monotonic()``) and did more than take it: renew it from now."""
        self._valid_until = started + self.seconds
        self._kept = True
        _keeper.keep(self)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is surely still held."""
        if (
            self._lost
            or self._released
            or time.monotonic() > self._valid_until - min(SAFETY_SECONDS, self.seconds / 3)
        ):
            raise LeaseLost(self.account_id, self.owner)

    def release(self, give_back: Callable[[], None] | None = None) -> None:
        """Give the lease back, once, from any thread: a shutdown that cannot wait for its
        sync any longer gives it back, and that sync's next write then finds it gone.

        ``give_back``: gives it back in a transaction that writes more (the account's
        status after its sync), instead of one of its own; if it fails, the lease is given
        back on its own and the failure raised."""
        with self._releasing:
            if self._released:
                return
            self._released = True
        if self._kept:
            _keeper.drop(self)  # no renewal runs from here on
        if self._lost:
            return
        if give_back is None:
            self._release(self.account_id, self.owner)
            return
        try:
            give_back()
        except BaseException:
            try:
                self._release(self.account_id, self.owner)
            except Exception:
                log.warning("could not give back the lease of %s", self.account_id, exc_info=True)
            raise

    def _renew(self) -> bool:
        """One renewal (from the keeper's thread); False once the lease is lost."""
        started = time.monotonic()
        try:
            held = self._acquire(self.account_id, self.owner, self.seconds)
        except Exception:
            # The database is briefly away: keep trying while the lease lasts.
            log.warning("could not renew the lease of %s", self.account_id, exc_info=True)
            return True
        if not held:
            log.warning("lost the lease of %s to another process", self.account_id)
            self._lost = True
            return False
        self._valid_until = started + self.seconds
        return True

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.release()


class _Keeper:
    """Renews the process's leases, each every ``renew_every`` seconds, from one thread
    started on first need."""

    def __init__(self) -> None:
        self._due: dict[Lease, float] = {}  # lease -> when its next renewal is due
        self._renewing: Lease | None = None
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def keep(self, lease: Lease) -> None:
        with self._changed:
            self._due[lease] = time.monotonic() + lease.renew_every
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease``; returns once no renewal of it is running."""
        with self._changed:
            self._due.pop(lease, None)
            while self._renewing is lease:
                self._changed.wait()

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    now = time.monotonic()
                    lease = min(self._due, key=self._due.__getitem__, default=None)
                    if lease is not None and self._due[lease] <= now:
                        break
                    wait = None if lease is None else self._due[lease] - now
                    self._changed.wait(wait)
                del self._due[lease]
                self._renewing = lease
            kept = False
            try:
                kept = lease._renew()
            finally:
                with self._changed:
                    self._renewing = None
                    if kept and not lease._released:
                        self._due[lease] = time.monotonic() + lease.renew_every
                    self._changed.notify_all()


_keeper = _Keeper()
