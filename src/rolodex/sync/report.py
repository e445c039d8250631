"""What one sync did, and how its progress is told: shared by the pull (``engine``), the
push (``push``) and those who run them (``runner``, the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Progress = Callable[[str, int, int | None], None]


def no_progress(_phase: str, _done: int, _total: int | None) -> None:
    pass


@dataclass
class SyncReport:
    pushed: int = 0
    push_failures: int = 0
    created_or_updated: int = 0
    deleted: int = 0
    full_resyncs: int = 0
    last_push_error: str | None = None
    # Collections read whole (a first sync, a new folder).
    snapshots: int = 0
    # Where a provider's listings carry no pictures (rolodex.sync.pictures): how many this
    # sync checked, and how many contacts are left whose picture was never checked (None:
    # no checks ran).
    pictures_checked: int = 0
    pictures_unchecked: int | None = None
