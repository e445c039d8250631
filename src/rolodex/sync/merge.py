"""Re-applying a local change on top of what the provider holds now."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from rolodex.domain.contact import WRITABLE_FIELDS, ContactFields


def merge(remote: ContactFields, local: ContactFields, touched: Iterable[str]) -> ContactFields:
    """The provider's current fields, with the fields the local change touched taken from
    the local contact: both sides' edits survive unless they touched the same field, where
    the later (local) write wins."""
    values = {name: getattr(local, name) for name in touched if name in WRITABLE_FIELDS}
    return dataclasses.replace(remote, **values)
