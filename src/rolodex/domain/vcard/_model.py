"""What a vCard holds for Rolodex, and the error for a card that cannot be read."""

from __future__ import annotations

from dataclasses import dataclass

from rolodex.domain.contact import ContactFields
from rolodex.domain.errors import RolodexError

KIND_INDIVIDUAL = "individual"
KIND_GROUP = "group"


@dataclass(frozen=True)
class Card:
    uid: str  # "" when the card has none; a "urn:uuid:" prefix is removed
    kind: str  # KIND_INDIVIDUAL or KIND_GROUP
    fields: ContactFields
    categories: tuple[str, ...]
    photo: bytes | None
    photo_type: str | None
    photo_uri: str | None
    name: str
    member_uids: tuple[str, ...]


@dataclass
class InvalidCard(RolodexError):
    """The data is not a vCard this module can read; ``reason`` says why, for logs."""

    reason: str

    def __str__(self) -> str:
        return self.reason
