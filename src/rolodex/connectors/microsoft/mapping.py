"""Graph v1.0 contact JSON <-> the domain's contact fields (providers.md §1, §2b).

Graph keeps no types on emails and IM addresses (they come back with ``type: null``), has
one slot per address type and one web page (``businessHomePage``), and three kinds of phone.
What Rolodex does not map (categories, fileAs, spouseName, yomi names...) is never written:
updates send only the properties the local change touched.

Birthday is a DateTimeOffset: its date part is the calendar date the user typed, read as
written and never moved to another time zone; Rolodex writes it at 11:59 UTC (as exchangelib
does, providers.md §1a), which is the same date in every time zone from UTC-11 to UTC+12.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from rolodex.domain.contact import (
    ContactFields,
    Email,
    IMAddress,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)

# Wire field -> the Graph properties that hold it.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "given_name": ("givenName",),
    "middle_name": ("middleName",),
    "surname": ("surname",),
    "suffix": ("generation",),
    "nickname": ("nickName",),
    "company_name": ("companyName",),
    "job_title": ("jobTitle",),
    "manager_name": ("manager",),
    "office_location": ("officeLocation",),
    "notes": ("personalNotes",),
    "birthday": ("birthday",),
    "emails": ("emailAddresses",),
    "im_addresses": ("imAddresses",),
    "phone_numbers": ("businessPhones", "homePhones", "mobilePhone"),
    "physical_addresses": ("homeAddress", "businessAddress", "otherAddress"),
    "web_pages": ("businessHomePage",),
}
_SCALARS = {
    "given_name": "givenName",
    "middle_name": "middleName",
    "surname": "surname",
    "suffix": "generation",
    "nickname": "nickName",
    "company_name": "companyName",
    "job_title": "jobTitle",
    "manager_name": "manager",
    "office_location": "officeLocation",
    "notes": "personalNotes",
}
_ADDRESSES = {"home": "homeAddress", "work": "businessAddress", "other": "otherAddress"}
_ADDRESS_PARTS = {
    "street_address": "street",
    "city": "city",
    "state": "state",
    "postal_code": "postalCode",
    "country": "countryOrRegion",
}
BIRTHDAY_TIME = "T11:59:00Z"


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [s for s in (_text(v) for v in value) if s]


def birthday_from_graph(value: Any) -> dt.date | None:
    """The date part as written: "1990-05-17T00:00:00+02:00" is the 17th, not the 16th."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def birthday_to_graph(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat() + BIRTHDAY_TIME


def to_fields(item: dict[str, Any]) -> ContactFields:
    # The hot path of a first sync: plain loops, no helper per value.
    get = item.get
    scalars: dict[str, str | None] = {}
    for name, prop in _SCALARS.items():
        value = get(prop)
        scalars[name] = (value.strip() or None) if isinstance(value, str) else None
    emails = []
    for entry in get("emailAddresses") or ():
        address = entry.get("address") if isinstance(entry, dict) else None
        if isinstance(address, str) and (address := address.strip()):
            emails.append(Email(None, address))
    phones = []
    for prop, kind in (("businessPhones", "business"), ("homePhones", "home")):
        values = get(prop)
        if isinstance(values, list):
            for number in values:
                if isinstance(number, str) and (number := number.strip()):
                    phones.append(PhoneNumber(kind, number))
    mobile = get("mobilePhone")
    if isinstance(mobile, str) and (mobile := mobile.strip()):
        phones.append(PhoneNumber("mobile", mobile))
    addresses = []
    for kind, prop in _ADDRESSES.items():
        raw = get(prop)
        if not raw or not isinstance(raw, dict):
            continue
        parts = [_text(raw.get(graph)) for graph in _ADDRESS_PARTS.values()]
        if any(parts):
            street, city, state, postal, country = parts
            addresses.append(
                PhysicalAddress(
                    type=kind,
                    street_address=street,
                    city=city,
                    postal_code=postal,
                    state=state,
                    country=country,
                )
            )
    page = _text(get("businessHomePage"))
    return ContactFields(
        **scalars,
        birthday=birthday_from_graph(get("birthday")),
        emails=tuple(emails),
        im_addresses=tuple(IMAddress(None, a) for a in _strings(get("imAddresses"))),
        phone_numbers=tuple(phones),
        physical_addresses=tuple(addresses),
        web_pages=(WebPage("work", page),) if page else (),
    )


# The writable v1.0 contact properties that Rolodex does not map (DOC contact-update,
# "Request body"; parentFolderId left out, the folder being the create's): what a contact
# made again in another folder carries over. Named one by one, so that what an answer holds
# besides (annotations, read-only or beta properties such as flag or
# primaryEmailAddress, relationships) is never sent back to be refused.
_CARRIED = frozenset(
    {
        "assistantName",
        "categories",
        "children",
        "department",
        "displayName",
        "fileAs",
        "initials",
        "profession",
        "spouseName",
        "title",
        "yomiCompanyName",
        "yomiGivenName",
        "yomiSurname",
    }
)


def unmapped(entry: dict[str, Any]) -> dict[str, Any]:
    """The properties of a contact as Graph answered it that Rolodex does not map and a
    create may write (categories, spouseName, ...), with a value."""
    return {k: v for k, v in entry.items() if k in _CARRIED and not is_empty(v)}


def is_empty(value: Any) -> bool:
    """A property value that says nothing, which a create need not send: null, an empty
    string or list, an address whose parts are all null."""
    if isinstance(value, dict):
        return not any(v not in (None, "") for v in value.values())
    return value in (None, [], "")


def to_graph(
    fields: ContactFields, touched: Iterable[str] | None, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Graph properties for ``touched`` wire fields (None: every mapped field), as a
    PATCH or POST body. ``current`` is the item as last read: display names of email
    addresses that stay are kept."""
    names = set(PROPERTIES) if touched is None else set(touched) & set(PROPERTIES)
    body: dict[str, Any] = {}
    for name in names:
        if name in _SCALARS:
            body[_SCALARS[name]] = getattr(fields, name)
    if "birthday" in names:
        body["birthday"] = birthday_to_graph(fields.birthday)
    if "emails" in names:
        known = {}
        for entry in (current or {}).get("emailAddresses") or []:
            if isinstance(entry, dict) and isinstance(entry.get("address"), str):
                known[entry["address"].casefold()] = entry.get("name")
        body["emailAddresses"] = [
            {"address": e.email, "name": known.get(e.email.casefold()) or e.email}
            for e in fields.emails
        ]
    if "im_addresses" in names:
        body["imAddresses"] = [im.im_address for im in fields.im_addresses]
    if "phone_numbers" in names:
        by_type: dict[str, list[str]] = {"business": [], "home": [], "mobile": []}
        for phone in fields.phone_numbers:
            by_type.setdefault(phone.type or "", []).append(phone.number)
        body["businessPhones"] = by_type["business"]
        body["homePhones"] = by_type["home"]
        body["mobilePhone"] = by_type["mobile"][0] if by_type["mobile"] else None
    if "physical_addresses" in names:
        # Every part, null where there is none: "When you update structured properties such
        # as homeAddress, you must pass the full property set" (DOC contact-update), and an
        # empty object would clear nothing where Graph merges it into the address.
        for kind, prop in _ADDRESSES.items():
            found = next((a for a in fields.physical_addresses if a.type == kind), None)
            body[prop] = {
                graph: getattr(found, name) if found is not None else None
                for name, graph in _ADDRESS_PARTS.items()
            }
    if "web_pages" in names:
        body["businessHomePage"] = fields.web_pages[0].url if fields.web_pages else None
    return body
