"""The unified contact model, shaped after the Nylas v2 contact object."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

SCALAR_FIELDS: tuple[str, ...] = (
    "given_name",
    "middle_name",
    "surname",
    "suffix",
    "nickname",
    "company_name",
    "job_title",
    "manager_name",
    "office_location",
    "notes",
)
LIST_FIELDS: tuple[str, ...] = (
    "emails",
    "im_addresses",
    "phone_numbers",
    "physical_addresses",
    "web_pages",
)
WRITABLE_FIELDS: tuple[str, ...] = (*SCALAR_FIELDS, "birthday", *LIST_FIELDS)

SOURCE_ADDRESS_BOOK = "address_book"
# People a provider saved from mail (Google's "Other contacts"): read-only.
SOURCE_INBOX = "inbox"


@dataclass(frozen=True, slots=True)
class Email:
    type: str | None
    email: str


@dataclass(frozen=True, slots=True)
class IMAddress:
    type: str | None
    im_address: str


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    type: str | None
    number: str


@dataclass(frozen=True, slots=True)
class WebPage:
    type: str | None
    url: str


@dataclass(frozen=True, slots=True)
class PhysicalAddress:
    type: str | None
    street_address: str | None = None
    city: str | None = None
    postal_code: str | None = None
    state: str | None = None
    country: str | None = None
    format: str = "structured"


ListItem = Email | IMAddress | PhoneNumber | WebPage | PhysicalAddress

# The value key of each typed list's items on the wire, and the item class.
LIST_ITEM_TYPES: dict[str, type[ListItem]] = {
    "emails": Email,
    "im_addresses": IMAddress,
    "phone_numbers": PhoneNumber,
    "physical_addresses": PhysicalAddress,
    "web_pages": WebPage,
}
LIST_VALUE_KEYS: dict[str, str] = {
    "emails": "email",
    "im_addresses": "im_address",
    "phone_numbers": "number",
    "web_pages": "url",
}
ADDRESS_PARTS: tuple[str, ...] = ("street_address", "city", "postal_code", "state", "country")


@dataclass(frozen=True, slots=True)
class ContactFields:
    """Everything an application can write about a contact."""

    given_name: str | None = None
    middle_name: str | None = None
    surname: str | None = None
    suffix: str | None = None
    nickname: str | None = None
    birthday: dt.date | None = None
    company_name: str | None = None
    job_title: str | None = None
    manager_name: str | None = None
    office_location: str | None = None
    notes: str | None = None
    emails: tuple[Email, ...] = ()
    im_addresses: tuple[IMAddress, ...] = ()
    phone_numbers: tuple[PhoneNumber, ...] = ()
    physical_addresses: tuple[PhysicalAddress, ...] = ()
    web_pages: tuple[WebPage, ...] = ()


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    account_id: str
    name: str
    path: str


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    account_id: str
    fields: ContactFields = field(default_factory=ContactFields)
    group_ids: tuple[str, ...] = ()
    has_picture: bool = False
    source: str = SOURCE_ADDRESS_BOOK


@dataclass(frozen=True, slots=True)
class Picture:
    """A contact's picture: its bytes, content type and etag."""

    content_type: str
    etag: str
    data: bytes

    @classmethod
    def of(cls, data: bytes, content_type: str) -> Picture:
        """The picture of these bytes; its etag is their digest, so the same bytes read
        again from a provider are no change."""
        return cls(content_type, hashlib.sha256(data).hexdigest()[:32], data)
