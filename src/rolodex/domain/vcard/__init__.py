"""The vCard mapping: vCard 2.1 / 3.0 / 4.0 <-> Rolodex contact fields. Pure, no I/O.

Reading (``parse_card``) accepts what Apple Contacts/iCloud, Google Contacts, Outlook (2.1
with quoted-printable), DAVx5, Nextcloud and RFC 6350 writers produce. Writing
(``render_card``) starts from the card as last read and changes only the properties of the
fields it is told were touched, so everything Rolodex does not model (ANNIVERSARY, GEO,
X- properties, item labels of untouched items, unknown parameters) survives a write.

Choices made here (see ``../shared/reference/providers.md`` §1, §3, §4):

- Names: ``N`` family;given;additional;prefix;suffix <-> surname/given_name/middle_name/-/
  suffix; the honorific prefix is kept from the card. ``FN`` is always present; it is
  rewritten only when the name it would be built from changes (name parts, else company,
  else first email, else "Unnamed"), so a hand-written display name survives other edits.
- ``ORG`` first component <-> company_name; departments after it are kept.
- manager_name <-> ``X-MS-MANAGER`` (Outlook's, MS-OXVCARD 2.1.3.9.8, so Outlook imports
  show it); also read from Evolution's ``X-EVOLUTION-MANAGER`` and KDE's
  ``X-KADDRESSBOOK-X-MANAGERSNAME``. office_location <-> ``X-ROLODEX-OFFICE-LOCATION``
  (no vendor has a published one); also read from KDE's ``X-KADDRESSBOOK-X-OFFICE``. Other
  clients will not show either, so both fields are lossy on CardDAV except through Rolodex.
  When written, the other spellings are removed so the card cannot hold two values.
- BDAY is written ``YYYY-MM-DD`` in 3.0 and ``YYYYMMDD`` in 4.0. A year-less birthday (4.0
  ``--MMDD``, Apple's ``X-APPLE-OMIT-YEAR``) reads as None and is kept on write unless the
  application sets a birthday.
- Types (``_types``): EMAIL work/home(=personal)/other; TEL per providers.md §1c, with
  organization_main as ``TYPE=MAIN`` (Apple's and Google's spelling) and a bare fax as
  ``other_fax``; ADR work/home/other; URL work/home(=homepage)/other. Any other type, e.g.
  assistant, radio, blog or a custom string, is written as an Apple item label
  (``item1.TEL`` + ``item1.X-ABLabel:assistant``) because that is what Apple, Google and
  DAVx5 show; labels read back lowercased. Outlook's ``X-MS-TEL;TYPE=ASSISTANT|COMPANY|
  RADIO`` is read. Types read from cards are always lowercase.
- IM: ``IMPP`` in both 3.0 (RFC 4770) and 4.0; the URI scheme is the protocol (xmpp=jabber,
  sip=lync, ymsgr=yahoo, msnim=msn, aim, skype, icq, qq, gtalk), with Apple's
  ``X-SERVICE-TYPE`` beside it; a protocol without a scheme is written as Apple does,
  ``x-apple:`` plus ``X-SERVICE-TYPE``. The 3.0 vendor properties (``X-AIM``, ``X-JABBER``...)
  are read, and replaced by IMPP when the IM addresses are written.
- ADR: one unified street field; on read the extended address and PO box follow the street
  on new lines.
- PHOTO: written 3.0 ``ENCODING=b;TYPE=JPEG`` or a 4.0 ``data:`` URI; read from those, 2.1
  ``ENCODING=BASE64`` and URLs (returned as ``photo_uri``, never fetched).
- Groups: ``CATEGORIES`` on individual cards; group cards are 4.0 ``KIND:group`` + ``MEMBER``
  or Apple's ``X-ADDRESSBOOKSERVER-KIND:group`` + ``X-ADDRESSBOOKSERVER-MEMBER``; member
  and card UIDs are compared without their ``urn:uuid:`` prefix.
- Versions: new cards are 3.0 (every CardDAV server takes it) unless asked for 4.0; an
  updated card keeps its version, except 2.1, which is rewritten as 3.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rolodex.domain.contact import ContactFields
from rolodex.domain.vcard._model import KIND_GROUP, KIND_INDIVIDUAL, Card, InvalidCard
from rolodex.domain.vcard._read import MANAGER_PROPERTY, OFFICE_PROPERTY, display_name, read
from rolodex.domain.vcard._syntax import read_props
from rolodex.domain.vcard._write import (
    CARD_FIELDS,
    empty_reading,
    reading_of,
    render,
    render_group,
)

__all__ = [
    "CARD_FIELDS",
    "KIND_GROUP",
    "KIND_INDIVIDUAL",
    "MANAGER_PROPERTY",
    "OFFICE_PROPERTY",
    "Card",
    "InvalidCard",
    "display_name",
    "parse_card",
    "render_card",
    "render_group_card",
]


def parse_card(data: bytes | str) -> Card:
    """The card in ``data`` (the first one, if there are several).

    Raises InvalidCard, and nothing else, when ``data`` is not a readable vCard.
    """
    try:
        return read(read_props(data)).card
    except InvalidCard:
        raise
    except Exception as exc:
        # Cards come from servers and other people's clients; a card no reader path
        # foresaw must still be reported as a bad card, not crash the sync.
        raise InvalidCard(f"unreadable card: {type(exc).__name__}: {exc}") from exc


def render_card(
    fields: ContactFields,
    *,
    uid: str,
    categories: Sequence[str] = (),
    photo: bytes | None = None,
    photo_type: str | None = None,
    base: bytes | None = None,
    touched: Iterable[str] | None = None,
    keep_photo: bool = False,
    version: str = "3.0",
) -> bytes:
    """The contact as a vCard.

    Without ``base``, a new card of ``version`` ("3.0" or "4.0") with ``uid``. With
    ``base`` (the card as last read), that card with only the properties of the ``touched``
    fields rewritten: names from ``CARD_FIELDS`` (the writable wire fields, "groups" for
    CATEGORIES, "picture" for PHOTO); None means all of them. A touched field whose value
    equals the base's is left as it was written. The base's UID and VERSION are kept
    (``uid`` and ``version`` are then ignored), and PHOTO is kept when ``keep_photo``.
    Raises InvalidCard when ``base`` cannot be read, ValueError for unknown field names.
    """
    reading = reading_of(base, uid, version)
    return render(
        reading,
        fields,
        fresh=base is None,
        touched=touched,
        categories=categories,
        photo=photo,
        photo_type=photo_type,
        keep_photo=keep_photo,
    )


def render_group_card(
    uid: str,
    name: str,
    member_uids: Sequence[str],
    *,
    base: bytes | None = None,
    version: str = "3.0",
) -> bytes:
    """A group card: Apple's 3.0 style (which iCloud needs) or 4.0 ``KIND:group``.

    With ``base``, the base's style, UID and other properties are kept, and member lines of
    members that stay are kept as written.
    """
    reading = reading_of(base, uid, version) if base is not None else empty_reading(uid, version)
    return render_group(reading, name, member_uids, fresh=base is None)
