"""Properties -> Rolodex fields, remembering which properties carry which wire field."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field

import filetype

from rolodex.domain.contact import (
    ContactFields,
    Email,
    IMAddress,
    ListItem,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from rolodex.domain.vcard import _types
from rolodex.domain.vcard._model import KIND_GROUP, KIND_INDIVIDUAL, Card
from rolodex.domain.vcard._syntax import (
    Prop,
    split_components,
    unescape,
    unescape_list,
)

MANAGER_PROPERTY = "X-MS-MANAGER"
OFFICE_PROPERTY = "X-ROLODEX-OFFICE-LOCATION"
# Written first, read in this order; the rest are other vendors' spellings, read only.
SCALAR_PROPERTIES: dict[str, tuple[str, ...]] = {
    "nickname": ("NICKNAME",),
    "job_title": ("TITLE",),
    "manager_name": (MANAGER_PROPERTY, "X-EVOLUTION-MANAGER", "X-KADDRESSBOOK-X-MANAGERSNAME"),
    "office_location": (OFFICE_PROPERTY, "X-KADDRESSBOOK-X-OFFICE"),
    "notes": ("NOTE",),
    "birthday": ("BDAY",),
}
LIST_PROPERTIES: dict[str, tuple[str, ...]] = {
    "emails": ("EMAIL",),
    "phone_numbers": ("TEL", "X-MS-TEL"),
    "im_addresses": ("IMPP", *_types.VENDOR_IM_PROPERTIES),
    "physical_addresses": ("ADR",),
    "web_pages": ("URL",),
}
_LIST_NAMES = frozenset(n for names in LIST_PROPERTIES.values() for n in names)
NAME_PARTS = ("surname", "given_name", "middle_name", "prefix", "suffix")  # N's order
GROUP_MEMBER_PROPERTIES = ("MEMBER", "X-ADDRESSBOOKSERVER-MEMBER")
_URN_UUID = "urn:uuid:"
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})(?:$|T)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)
_DATA_URI = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),(.*)$", re.DOTALL | re.IGNORECASE)


@dataclass
class Entry:
    """One list item and every property that carries it, with their item groups' labels."""

    item: ListItem
    props: list[Prop]


@dataclass
class Reading:
    """A parsed card: the fields, plus where each one came from."""

    props: list[Prop]
    card: Card
    name_parts: list[str]  # N's five components, unescaped, padded
    entries: dict[str, list[Entry]] = field(default_factory=dict)

    def named(self, *names: str) -> list[Prop]:
        return [p for p in self.props if not p.nested and p.name in names]

    def companions(self, prop: Prop) -> list[Prop]:
        """The other properties of ``prop``'s item group (its X-ABLabel, X-ABADR...)."""
        if prop.group is None or prop.nested:
            return []
        members = [p for p in self.props if p.group == prop.group and not p.nested]
        if sum(1 for p in members if p.name in _LIST_NAMES) > 1:
            return []  # a group holding two items is not one item's label
        return [p for p in members if p is not prop]

    @property
    def version(self) -> str:
        found = self.named("VERSION")
        return found[0].raw.strip() if found else "3.0"


_EMPTY_CARD = Card("", KIND_INDIVIDUAL, ContactFields(), (), None, None, None, "", ())


def bare_uid(value: str) -> str:
    value = value.strip()
    return value[len(_URN_UUID) :] if value.lower().startswith(_URN_UUID) else value


def display_name(fields: ContactFields) -> str:
    parts = (fields.given_name, fields.middle_name, fields.surname, fields.suffix)
    name = " ".join(p.strip() for p in parts if p and p.strip())
    if name:
        return name
    if fields.company_name and fields.company_name.strip():
        return fields.company_name.strip()
    return fields.emails[0].email if fields.emails else "Unnamed"


def read(props: list[Prop]) -> Reading:
    top = [p for p in props if not p.nested]
    groups: dict[str, list[Prop]] = {}
    for prop in top:
        if prop.group:
            groups.setdefault(prop.group, []).append(prop)

    def first(*names: str) -> Prop | None:
        return next((p for p in top if p.name in names), None)

    n_prop = first("N")
    name_parts = split_components(n_prop.raw) if n_prop else []
    name_parts = (name_parts + [""] * 5)[:5]
    name = dict(zip(NAME_PARTS, name_parts, strict=True))
    org = first("ORG")
    scalars = {f: _scalar(top, names) for f, names in SCALAR_PROPERTIES.items()}
    reading = Reading(props=props, card=_EMPTY_CARD, name_parts=name_parts)
    for list_field, names in LIST_PROPERTIES.items():
        found: list[Entry] = []
        for prop in top:
            if prop.name in names:
                item = _item(list_field, prop, groups.get(prop.group or "", []))
                if item is None:
                    continue
                carried = [prop, *reading.companions(prop)]
                same = next((e for e in found if e.item == item), None)
                if same is None:
                    found.append(Entry(item, carried))
                else:
                    # Apple writes an IM both as X-AIM and IMPP: one item, kept as both.
                    same.props.extend(carried)
        reading.entries[list_field] = found
    entries = reading.entries
    fields = ContactFields(
        given_name=name["given_name"] or None,
        middle_name=name["middle_name"] or None,
        surname=name["surname"] or None,
        suffix=name["suffix"] or None,
        nickname=", ".join(v for v in _values(top, "NICKNAME") if v) or None,
        birthday=_birthday(first("BDAY")),
        company_name=(split_components(org.raw)[0] or None) if org else None,
        job_title=scalars["job_title"],
        manager_name=scalars["manager_name"],
        office_location=scalars["office_location"],
        notes="\n".join(unescape(p.raw) for p in top if p.name == "NOTE") or None,
        emails=tuple(e.item for e in entries["emails"] if isinstance(e.item, Email)),
        im_addresses=tuple(
            e.item for e in entries["im_addresses"] if isinstance(e.item, IMAddress)
        ),
        phone_numbers=tuple(
            e.item for e in entries["phone_numbers"] if isinstance(e.item, PhoneNumber)
        ),
        physical_addresses=tuple(
            e.item for e in entries["physical_addresses"] if isinstance(e.item, PhysicalAddress)
        ),
        web_pages=tuple(e.item for e in entries["web_pages"] if isinstance(e.item, WebPage)),
    )
    photo, photo_type, photo_uri = _photo(top)
    fn = first("FN")
    reading.card = Card(
        uid=bare_uid(first("UID").raw) if first("UID") else "",  # type: ignore[union-attr]
        kind=_kind(top),
        fields=fields,
        categories=_categories(top),
        photo=photo,
        photo_type=photo_type,
        photo_uri=photo_uri,
        name=(unescape(fn.raw).strip() if fn else "") or display_name(fields),
        member_uids=tuple(
            dict.fromkeys(bare_uid(p.raw) for p in top if p.name in GROUP_MEMBER_PROPERTIES)
        ),
    )
    return reading


def _values(top: list[Prop], name: str) -> list[str]:
    return [v.strip() for p in top if p.name == name for v in unescape_list(p.raw)]


def _scalar(top: list[Prop], names: tuple[str, ...]) -> str | None:
    for name in names:
        for prop in top:
            if prop.name == name and unescape(prop.raw).strip():
                return unescape(prop.raw)
    return None


def _kind(top: list[Prop]) -> str:
    for prop in top:
        if prop.name in ("KIND", "X-ADDRESSBOOKSERVER-KIND"):
            return KIND_GROUP if prop.raw.strip().lower() == "group" else KIND_INDIVIDUAL
    return KIND_INDIVIDUAL


def _categories(top: list[Prop]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in _values(top, "CATEGORIES") if v))


def _birthday(prop: Prop | None) -> dt.date | None:
    """A full date, or None: a year-less 4.0 ``--MMDD`` has no wire form (it stays in the
    card), nor has Apple's year-less 3.0 date, a placeholder year named by X-APPLE-OMIT-YEAR."""
    if prop is None:
        return None
    match = _DATE.match(prop.raw.strip())
    if match is None:
        return None
    if match.group(1) in prop.param("X-APPLE-OMIT-YEAR"):
        return None
    try:
        return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


def _label(prop: Prop, group: list[Prop]) -> str | None:
    return next((p.raw for p in group if p.name == "X-ABLABEL" and p is not prop), None)


def _item_type(prop: Prop, group: list[Prop]) -> str | None:
    label = _label(prop, group) if prop.group else None
    if label is not None and label.strip():
        return _types.label_type(unescape(label), prop.name)
    return _types.tokens_type(prop.name, prop.type_tokens())


def _item(list_field: str, prop: Prop, group: list[Prop]) -> ListItem | None:
    if list_field == "physical_addresses":
        return _address(prop, _item_type(prop, group))
    if list_field == "im_addresses":
        return _im_address(prop)
    value = unescape(prop.raw).strip()
    if list_field == "phone_numbers":
        if value.lower().startswith("tel:"):
            value = value[4:].strip()
        if not value:
            return None
        if prop.name == "X-MS-TEL":
            return PhoneNumber(_types.ms_tel_type(prop.type_tokens()), value)
        return PhoneNumber(_item_type(prop, group), value)
    if not value:
        return None
    if list_field == "emails":
        if value.lower().startswith("mailto:"):
            value = value[7:].strip()
        return Email(_item_type(prop, group), value) if value else None
    return WebPage(_item_type(prop, group), value)


def _im_address(prop: Prop) -> IMAddress | None:
    if prop.name != "IMPP":
        value = unescape(prop.raw).strip()
        return IMAddress(_types.VENDOR_IM_PROPERTIES[prop.name], value) if value else None
    service = next(iter(prop.param("X-SERVICE-TYPE")), None)
    raw = prop.raw.strip()
    match = _SCHEME.match(raw)
    if match is None:
        protocol = _types.scheme_protocol("", service)
        address = raw
    else:
        protocol = _types.scheme_protocol(match.group(1), service)
        address = urllib.parse.unquote(match.group(2)).strip()
    return IMAddress(protocol, address) if address else None


def _address(prop: Prop, kind: str | None) -> PhysicalAddress | None:
    parts = [p.strip() for p in split_components(prop.raw)]
    box, extended, street, city, region, code, country = (parts + [""] * 7)[:7]
    # The unified model has one street field; extended address and PO box follow the street.
    street_lines = "\n".join(p for p in (street, extended, box) if p)
    values = (street_lines, city, code, region, country)
    if not any(values):
        return None
    return PhysicalAddress(
        type=kind,
        street_address=street_lines or None,
        city=city or None,
        postal_code=code or None,
        state=region or None,
        country=country or None,
    )


def _photo(top: list[Prop]) -> tuple[bytes | None, str | None, str | None]:
    """(image bytes, media type, URL) of the first PHOTO that holds something usable."""
    for prop in top:
        if prop.name != "PHOTO":
            continue
        raw = prop.raw.strip()
        encoding = [e.lower() for e in prop.param("ENCODING")]
        tokens = prop.type_tokens()
        inline = any(e in ("b", "base64") for e in encoding) or any(
            str(s).lower() in ("b", "base64") for s in prop.line.singletonparams
        )
        data_uri = _DATA_URI.match(raw)
        if inline:
            image = _b64(raw)
            if image:
                return image, _media_type(tokens, image), None
        elif data_uri is not None:
            params = data_uri.group(2).lower()
            payload = data_uri.group(3)
            image = _b64(payload) if ";base64" in params else urllib.parse.unquote_to_bytes(payload)
            if image:
                declared = data_uri.group(1).strip().lower()
                return image, declared or _media_type([], image), None
        elif _SCHEME.match(raw):
            return None, None, raw
    return None, None, None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()) + "==", validate=False) or None
    except (binascii.Error, ValueError):
        return None


def _media_type(tokens: list[str], image: bytes) -> str | None:
    for token in tokens:
        if "/" in token:
            return token
        if token.isalnum():
            return "image/jpeg" if token in ("jpg", "jpeg") else f"image/{token}"
    guessed = filetype.guess_mime(image)
    return str(guessed) if guessed else None
