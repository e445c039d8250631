"""Reads answered on the event loop may not wait for the database.

A hot read that the process can answer from memory (a cached token, an announced account
generation, a cached page: rolodex.store.notify, rolodex.service.readcache) costs less
on the event loop than the hand-off to a worker thread and back. On PostgreSQL anything
else is a network round trip that would stall every other request meanwhile, so the fast
path (rolodex.api.fastpath) first tries a request with waiting forbidden: every way into
the database checks ``may_wait`` first and raises ``WouldWait``, before it has done
anything, and the fast path then serves the request again from a worker thread.
SQLite answers from its page cache in less time than the hand-off, so there nothing is
forbidden.
"""

from __future__ import annotations

import threading


class WouldWait(Exception):
    """This read needs the database: serve it from a worker thread."""


class _Forbidden(threading.local):
    now = False


_forbidden = _Forbidden()


def may_wait() -> None:
    """Called before any database access: raises ``WouldWait`` where waiting is forbidden."""
    if _forbidden.now:
        raise WouldWait


def forbid() -> None:
    """From now on in this thread (until ``allow``), ``may_wait`` raises."""
    _forbidden.now = True


def allow() -> None:
    _forbidden.now = False
