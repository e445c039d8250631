"""A sync's hold on its account: a short lease, renewed while the sync works.

Leases live in the database (``accounts.lease_owner``/``lease_until``), so any number of
processes on any number of hosts share the accounts with no other coordination. A lease
lasts ``LEASE_SECONDS`` and its holder renews it every ``RENEW_SECONDS`` from a thread of
its own, so a sync may take as long as it needs, while the lease of a holder that died
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
        self._releasing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> bool:
        started = time.monotonic()
        if not self._acquire(self.account_id, self.owner, self.seconds):
            return False
        self._valid_until = started + self.seconds
        self._thread = threading.Thread(
            target=self._keep, name=f"lease-{self.account_id}", daemon=True
        )
        self._thread.start()
        return True

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is surely still held."""
        if (
            self._lost
            or self._released
            or time.monotonic() > self._valid_until - min(SAFETY_SECONDS, self.seconds / 3)
        ):
            raise LeaseLost(self.account_id, self.owner)

    def release(self) -> None:
        """Give the lease back, once, from any thread: a shutdown that cannot wait for its
        sync any longer gives it back, and that sync's next write then finds it gone."""
        with self._releasing:
            if self._released:
                return
            self._released = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._lost:
            self._release(self.account_id, self.owner)

    def _keep(self) -> None:
        while not self._stop.wait(self.renew_every):
            started = time.monotonic()
            try:
                held = self._acquire(self.account_id, self.owner, self.seconds)
            except Exception:
                # The database is briefly away: keep trying while the lease lasts.
                log.warning("could not renew the lease of %s", self.account_id, exc_info=True)
                continue
            if not held:
                log.warning("lost the lease of %s to another process", self.account_id)
                self._lost = True
                return
            self._valid_until = started + self.seconds

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.release()
