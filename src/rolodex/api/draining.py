"""Whether this process is shutting down (``rolodex.api.server`` says so when the server
starts its graceful shutdown): requests that wait for changes (long-polls, streams) then
answer with what they have rather than hold the shutdown up until their timeout."""

from __future__ import annotations

import threading

# How often a waiting request looks whether the process is shutting down.
CHECK_SECONDS = 1.0

_draining = threading.Event()


def begin() -> None:
    _draining.set()


def draining() -> bool:
    return _draining.is_set()
