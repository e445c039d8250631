"""The Nylas v2 wire shape of contacts and groups: parsing lenient write bodies, rendering.

Parsing follows what the real SDKs send (``../shared/reference/nylas-v2-wire.md`` §9):
read-only and unknown keys are ignored, ``""`` means empty, ``null`` is accepted, Node's
camelCase item keys are understood. It checks shape and types only; what a provider can hold
is the provider profile's business (``rolodex.domain.profiles``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from rolodex.domain.contact import (
    ADDRESS_PARTS,
    LIST_FIELDS,
    LIST_VALUE_KEYS,
    SCALAR_FIELDS,
    Contact,
    ContactFields,
    Email,
    Group,
    IMAddress,
    ListItem,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from rolodex.domain.errors import InvalidBody, InvalidContact, Violation

# Node's model-less items keep camelCase keys (wire reference §9.5).
_ITEM_ALIASES = {
    "imAddress": "im_address",
    "streetAddress": "street_address",
    "postalCode": "postal_code",
    "emailAddress": "email",
    "phoneNumber": "number",
}
# Hard ceilings of the wire format itself; provider profiles set the (lower) real limits.
MAX_LIST_ITEMS_PARSED = 1000
PICTURE_PATH_PREFIX = "/contacts/"


@dataclass
class ContactPatch:
    """The writable fields a request sent, parsed; omitted fields are absent from ``values``."""

    values: dict[str, Any] = field(default_factory=dict)
    group_id: str | None = None

    def apply(self, base: ContactFields) -> ContactFields:
        return dataclasses.replace(base, **self.values)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidBody("Empty request body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidBody("Request body must be a JSON object")
    return body


def parse_contact_patch(body: Mapping[str, Any]) -> ContactPatch:
    """Parse a POST/PUT body; every problem is collected, then raised together."""
    errors: list[Violation] = []
    patch = ContactPatch()
    for name in SCALAR_FIELDS:
        if name in body:
            patch.values[name] = _string(body[name], name, errors)
    if "birthday" in body:
        patch.values["birthday"] = _birthday(body["birthday"], errors)
    for name in LIST_FIELDS:
        if name in body:
            patch.values[name] = _items(name, body[name], errors)
    group = body.get("group")
    if group not in (None, ""):
        if isinstance(group, str):
            if _nul_free(group, "group", errors):
                patch.group_id = group
        else:
            errors.append(Violation("group", "type", "group must be a contact group id (a string)"))
    if errors:
        raise InvalidContact(errors)
    return patch


def _string(value: Any, name: str, errors: list[Violation]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(Violation(name, "type", f"{name} must be a string or null"))
        return None
    if not _nul_free(value, name, errors):
        return None
    return value if value.strip() else None


def _nul_free(value: str, name: str, errors: list[Violation]) -> bool:
    """NUL has no place in contact data: PostgreSQL text and vCard cannot carry it, so it
    is refused here, naming the field, rather than failing deep in a write."""
    if "\x00" in value:
        errors.append(Violation(name, "characters", f"{name} may not contain NUL characters"))
        return False
    return True


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _birthday(value: Any, errors: list[Violation]) -> dt.date | None:
    if value is None or value == "":
        return None
    # Only YYYY-MM-DD: fromisoformat also takes ISO week dates (2024-W01-1) and basic
    # forms (20240101T0), which no client means as this date.
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    errors.append(
        Violation("birthday", "format", f"birthday must be a date as YYYY-MM-DD; got {value!r}")
    )
    return None


def _items(name: str, value: Any, errors: list[Violation]) -> tuple[ListItem, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.append(Violation(name, "type", f"{name} must be a list"))
        return ()
    if len(value) > MAX_LIST_ITEMS_PARSED:
        errors.append(
            Violation(name, "count", f"{name} may hold at most {MAX_LIST_ITEMS_PARSED} items")
        )
        return ()
    items: list[ListItem] = []
    for index, raw in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(raw, dict):
            errors.append(Violation(where, "type", f"{where} must be an object"))
            continue
        item: dict[str, Any] = {_ITEM_ALIASES.get(str(k), str(k)): v for k, v in raw.items()}
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            errors.append(Violation(f"{where}.type", "type", f"{where}.type must be a string"))
            continue
        if kind is not None and not _nul_free(kind, f"{where}.type", errors):
            continue
        kind = kind.strip() if kind and kind.strip() else None
        if name == "physical_addresses":
            address = _address(where, kind, item, errors)
            if address is not None:
                items.append(address)
            continue
        key = LIST_VALUE_KEYS[name]
        text = item.get(key)
        if not isinstance(text, str) or not text.strip():
            errors.append(
                Violation(f"{where}.{key}", "required", f"{where}.{key} must be a non-empty string")
            )
            continue
        if not _nul_free(text, f"{where}.{key}", errors):
            continue
        items.append(_ITEM_CLASSES[name](kind, text.strip()))
    return tuple(items)


def _address(
    where: str, kind: str | None, item: Mapping[str, Any], errors: list[Violation]
) -> PhysicalAddress | None:
    fmt = item.get("format") or "structured"
    if fmt != "structured":
        errors.append(
            Violation(
                f"{where}.format",
                "structured",
                f"{where}: only structured addresses can be written (format 'structured' with "
                f"street_address, city, postal_code, state, country); got format {fmt!r}",
            )
        )
        return None
    parts = [_string(item.get(part), f"{where}.{part}", errors) for part in ADDRESS_PARTS]
    if not any(parts):
        errors.append(Violation(where, "required", f"{where} has no address parts"))
        return None
    street_address, city, postal_code, state, country = parts
    return PhysicalAddress(kind, street_address, city, postal_code, state, country)


_ITEM_CLASSES: dict[str, Any] = {
    "emails": Email,
    "im_addresses": IMAddress,
    "phone_numbers": PhoneNumber,
    "web_pages": WebPage,
}


def picture_path(contact_id: str) -> str:
    return f"{PICTURE_PATH_PREFIX}{contact_id}/picture"


def render_group(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "object": "contact_group",
        "account_id": group.account_id,
        "name": group.name,
        "path": group.path,
    }


def render_contact(contact: Contact, groups: Mapping[str, Group]) -> dict[str, Any]:
    """The v2 contact object. ``picture_url`` is a path here; the API makes it absolute."""
    f = contact.fields
    doc: dict[str, Any] = {"id": contact.id, "object": "contact", "account_id": contact.account_id}
    for name in SCALAR_FIELDS:
        doc[name] = getattr(f, name)
    doc["birthday"] = f.birthday.isoformat() if f.birthday else None
    doc["emails"] = [{"type": e.type, "email": e.email} for e in f.emails]
    doc["im_addresses"] = [{"type": i.type, "im_address": i.im_address} for i in f.im_addresses]
    doc["phone_numbers"] = [{"type": p.type, "number": p.number} for p in f.phone_numbers]
    doc["physical_addresses"] = [
        {
            "type": a.type,
            "format": a.format,
            "street_address": a.street_address,
            "city": a.city,
            "postal_code": a.postal_code,
            "state": a.state,
            "country": a.country,
        }
        for a in f.physical_addresses
    ]
    doc["web_pages"] = [{"type": w.type, "url": w.url} for w in f.web_pages]
    doc["groups"] = [render_group(groups[g]) for g in contact.group_ids if g in groups]
    doc["picture_url"] = picture_path(contact.id) if contact.has_picture else None
    doc["source"] = contact.source
    return doc


def contact_document(contact: Contact, groups: Mapping[str, Group]) -> bytes:
    return orjson.dumps(render_contact(contact, groups))


def fields_from_document(doc: Mapping[str, Any]) -> ContactFields:
    """Rebuild the writable fields from a stored document (the inverse of render)."""
    values: dict[str, Any] = {name: doc.get(name) for name in SCALAR_FIELDS}
    birthday = doc.get("birthday")
    values["birthday"] = dt.date.fromisoformat(birthday) if birthday else None
    values["emails"] = tuple(Email(e["type"], e["email"]) for e in doc.get("emails", ()))
    values["im_addresses"] = tuple(
        IMAddress(i["type"], i["im_address"]) for i in doc.get("im_addresses", ())
    )
    values["phone_numbers"] = tuple(
        PhoneNumber(p["type"], p["number"]) for p in doc.get("phone_numbers", ())
    )
    values["physical_addresses"] = tuple(
        PhysicalAddress(
            type=a.get("type"),
            format=a.get("format") or "structured",
            **{part: a.get(part) for part in ADDRESS_PARTS},
        )
        for a in doc.get("physical_addresses", ())
    )
    values["web_pages"] = tuple(WebPage(w["type"], w["url"]) for w in doc.get("web_pages", ()))
    return ContactFields(**values)


def contact_from_document(doc: Mapping[str, Any]) -> Contact:
    return Contact(
        id=doc["id"],
        account_id=doc["account_id"],
        fields=fields_from_document(doc),
        group_ids=tuple(g["id"] for g in doc.get("groups", ())),
        has_picture=doc.get("picture_url") is not None,
        source=doc.get("source") or "address_book",
    )
