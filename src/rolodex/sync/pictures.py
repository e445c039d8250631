"""Pictures checked apart from their contacts, for providers whose listings and change feed
carry none (``Capabilities.picture_backfill``; Graph, whose photo is a navigation property).

After a sync's pull (not one that read a collection whole: a first sync is long enough), a
bounded number of contacts have their picture read: those never checked first, so a newly
connected mailbox's pictures come in over its next rounds, then the oldest checks again
once ``picture_recheck`` old, which catches a photo changed there without any other edit.
What is read is stored as it comes (``LocalSide.apply_pictures``, a transaction per batch),
so a round stopped part way loses nothing and the next goes on from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rolodex.connectors.base import Capabilities, PictureReader, RemotePicture, TransientError
from rolodex.domain.account import Account
from rolodex.sync.local import LocalSide

log = logging.getLogger(__name__)

# Stored this many at a time, a transaction each.
BATCH = 50
PHASE = "check pictures"


def check_pictures(
    local: LocalSide,
    connector: PictureReader,
    caps: Capabilities,
    account: Account,
    progress: Callable[[str, int, int | None], None],
    guard: Callable[[], None],
) -> tuple[int, int]:
    """Check the pictures due; returns (how many were checked, how many contacts are left
    whose picture was never checked). A transient failure ends this round's checks,
    quietly: the sync itself succeeded, and the next round goes on."""
    due, never = local.pictures_due(
        account.id, caps.picture_backfill, time.time() - caps.picture_recheck
    )
    if not due:
        return 0, never
    contact_of = {remote_id: contact_id for contact_id, remote_id in due}
    first_checks = {contact_id for contact_id, _ in due[:never]}
    batch: list[tuple[str, RemotePicture]] = []
    checked = 0
    progress(PHASE, 0, len(due))

    def store() -> None:
        nonlocal checked, never
        local.apply_pictures(account, batch)
        checked += len(batch)
        never -= sum(1 for contact_id, _ in batch if contact_id in first_checks)
        progress(PHASE, checked, len(due))
        batch.clear()

    refused: list[str] = []
    try:
        for picture in connector.pictures(list(contact_of)):
            guard()
            batch.append((contact_of[picture.remote_id], picture))
            if picture.refused is not None:
                refused.append(picture.refused)
            if len(batch) >= BATCH:
                store()
    except TransientError as error:
        log.info("picture checks of %s stopped for now: %s", account.id, error.message)
    store()
    if refused:
        log.warning(
            "the provider refused %d of the pictures of %s checked (%s)",
            len(refused),
            account.id,
            refused[0],
        )
    return checked, max(0, never)
