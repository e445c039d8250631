"""Whether the server answering a request is shutting down (``rolodex.api.server`` says so
when it starts its graceful shutdown): requests that wait for changes (long-polls, streams)
then answer with what they have rather than hold the shutdown up until their timeout.

Each server has its own flag, handed to its requests in their scope: a process may run
several (the tests do), and one shutting down says nothing of the others.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

# How often a waiting request looks whether its server is shutting down.
CHECK_SECONDS = 1.0
SCOPE_KEY = "rolodex.draining"

_flags: weakref.WeakKeyDictionary[Any, threading.Event] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def flag_of(server: Any) -> threading.Event:
    """The flag of ``server`` (uvicorn's state shared by its connections)."""
    with _guard:
        flag = _flags.get(server)
        if flag is None:
            flag = _flags[server] = threading.Event()
        return flag


def draining(scope: Mapping[str, Any]) -> bool:
    flag = scope.get(SCOPE_KEY)
    return flag is not None and bool(flag.is_set())
