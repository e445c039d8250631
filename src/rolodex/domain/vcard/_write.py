"""Rolodex fields -> vCard, as a set of replacements applied to the card last read."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import filetype

from rolodex.domain.contact import (
    LIST_FIELDS,
    WRITABLE_FIELDS,
    ContactFields,
    Email,
    IMAddress,
    ListItem,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from rolodex.domain.vcard import _types
from rolodex.domain.vcard._read import (
    GROUP_MEMBER_PROPERTIES,
    LIST_PROPERTIES,
    MANAGER_PROPERTY,
    NAME_PARTS,
    OFFICE_PROPERTY,
    SCALAR_PROPERTIES,
    Reading,
    bare_uid,
    display_name,
    read,
)
from rolodex.domain.vcard._syntax import (
    Prop,
    escape,
    join_components,
    new_prop,
    read_props,
    serialize,
    split_components,
    with_value,
)

PRODID = "-//Rolodex//Rolodex//EN"
VERSIONS = ("3.0", "4.0")
CARD_FIELDS = (*WRITABLE_FIELDS, "groups", "picture")
_NAME_FIELDS = ("given_name", "middle_name", "surname", "suffix")
_IM_URI_SAFE = "@:/+.-_~!$&'()*=?#[]"


@dataclass
class _Replacement:
    """Drop ``old`` and put ``new`` where the first of ``old`` stood (else at the end)."""

    old: list[Prop]
    new: list[Prop]


def empty_reading(uid: str, version: str) -> Reading:
    if version not in VERSIONS:
        raise ValueError(f"vCard version must be one of {VERSIONS}, not {version!r}")
    props = [
        new_prop("VERSION", version),
        new_prop("PRODID", PRODID),
        new_prop("UID", escape(uid)),
    ]
    return read(props)


def reading_of(base: bytes | None, uid: str, version: str) -> Reading:
    if base is None:
        return empty_reading(uid, version)
    reading = read(read_props(base))
    if reading.version not in VERSIONS:
        # 2.1 syntax cannot be written faithfully and CardDAV requires 3.0, so a 2.1 card is
        # upgraded; its bare parameters and quoted-printable values are rewritten on output.
        version_props = reading.named("VERSION")
        upgraded = [new_prop("VERSION", "3.0")]
        props = [p for p in reading.props if p not in version_props]
        reading = read(upgraded + props)
    return reading


def render(
    reading: Reading,
    fields: ContactFields,
    *,
    fresh: bool,
    touched: Iterable[str] | None,
    categories: Sequence[str],
    photo: bytes | None,
    photo_type: str | None,
    keep_photo: bool,
) -> bytes:
    wanted = set(CARD_FIELDS if touched is None else touched)
    unknown = wanted - set(CARD_FIELDS)
    if unknown:
        raise ValueError(f"not card fields: {sorted(unknown)}")
    base = reading.card
    # A touched field whose value equals the card's keeps its properties untouched, so an SDK
    # that sends the whole contact back does not strip labels, parameters or a year-less BDAY.
    changed = {
        f for f in WRITABLE_FIELDS if f in wanted and getattr(fields, f) != getattr(base.fields, f)
    }
    merged = dataclasses.replace(base.fields, **{f: getattr(fields, f) for f in changed})
    version = reading.version
    writer = _Writer(reading, version)
    replacements: list[_Replacement] = []
    name_changes = [f for f in _NAME_FIELDS if f in changed]
    if name_changes or (fresh and base.kind != "group"):
        replacements.append(writer.name(merged, name_changes))
    if not reading.named("FN") or display_name(merged) != display_name(base.fields):
        replacements.append(_Replacement(reading.named("FN"), [writer.fn(display_name(merged))]))
    if "company_name" in changed:
        replacements.append(writer.org(merged.company_name))
    for scalar in SCALAR_PROPERTIES:
        if scalar in changed:
            replacements.append(writer.scalar(scalar, getattr(merged, scalar)))
    for list_field in LIST_FIELDS:
        if list_field in changed:
            replacements.append(writer.items(list_field, getattr(merged, list_field)))
    wanted_categories = tuple(dict.fromkeys(c.strip() for c in categories if c.strip()))
    if "groups" in wanted and wanted_categories != base.categories:
        replacements.append(writer.categories(wanted_categories))
    photo_changed = photo != base.photo or (photo is None and base.photo_uri is not None)
    if "picture" in wanted and not (keep_photo and not fresh) and photo_changed:
        replacements.append(writer.photo(photo, photo_type))
    return serialize(_apply(reading.props, replacements))


def render_group(reading: Reading, name: str, member_uids: Sequence[str], *, fresh: bool) -> bytes:
    writer = _Writer(reading, reading.version)
    replacements: list[_Replacement] = []
    if not reading.named("FN") or reading.card.name != name:
        replacements.append(_Replacement(reading.named("FN"), [writer.fn(name)]))
    n_props = reading.named("N")
    four = reading.version == "4.0"
    if (fresh and not four) or (n_props and reading.name_parts[0] != name):
        # Apple's group cards repeat the name in N's family component.
        replacements.append(_Replacement(n_props, [writer.n_prop([name, "", "", "", ""])]))
    if fresh:
        kind = new_prop("KIND", "group") if four else new_prop("X-ADDRESSBOOKSERVER-KIND", "group")
        replacements.append(_Replacement([], [kind]))
    present = reading.named(*GROUP_MEMBER_PROPERTIES)
    apple = not four and all(p.name != "MEMBER" for p in present)
    style = GROUP_MEMBER_PROPERTIES[1] if apple else "MEMBER"
    kept: dict[str, Prop] = {}
    for prop in present:
        kept.setdefault(bare_uid(prop.raw), prop)
    members = [
        kept.get(uid) or new_prop(style, f"urn:uuid:{uid}")
        for uid in dict.fromkeys(bare_uid(u) for u in member_uids if u.strip())
    ]
    if [bare_uid(p.raw) for p in members] != [bare_uid(p.raw) for p in present]:
        replacements.append(_Replacement(present, members))
    return serialize(_apply(reading.props, replacements))


def _apply(props: list[Prop], replacements: list[_Replacement]) -> list[Prop]:
    dropped = {id(p) for r in replacements for p in r.old}
    position = {id(p): i for i, p in enumerate(props)}
    anchored: dict[int, list[_Replacement]] = {}
    trailing: list[_Replacement] = []
    for replacement in replacements:
        if replacement.old:
            first = min(replacement.old, key=lambda p: position[id(p)])
            anchored.setdefault(id(first), []).append(replacement)
        else:
            trailing.append(replacement)
    out: list[Prop] = []
    for prop in props:
        for replacement in anchored.get(id(prop), ()):
            out.extend(replacement.new)
        if id(prop) not in dropped:
            out.append(prop)
    for replacement in trailing:
        out.extend(replacement.new)
    return out


class _Writer:
    """Builds the new properties of one card, in that card's version and label style."""

    def __init__(self, reading: Reading, version: str) -> None:
        self.reading = reading
        self.four = version == "4.0"
        taken = {p.group for p in reading.props if p.group}
        self._groups = (f"item{n}" for n in range(1, 1_000_000) if f"item{n}" not in taken)

    def _case(self, token: str) -> str:
        # 4.0 examples spell parameter values in lower case, 3.0 ones in upper case.
        return token.lower() if self.four else token.upper()

    def fn(self, name: str) -> Prop:
        return new_prop("FN", escape(name))

    def n_prop(self, parts: list[str]) -> Prop:
        old = self.reading.named("N")
        value = join_components(parts)
        return with_value(old[0], value) if old else new_prop("N", value)

    def name(self, merged: ContactFields, changes: list[str]) -> _Replacement:
        parts = list(self.reading.name_parts)
        for index, part in enumerate(NAME_PARTS):
            if part in changes:
                parts[index] = getattr(merged, part) or ""
        return _Replacement(self.reading.named("N"), [self.n_prop(parts)])

    def org(self, company: str | None) -> _Replacement:
        old = self.reading.named("ORG")
        parts = split_components(old[0].raw) if old else [""]
        parts[0] = company or ""
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        if not any(parts):
            return _Replacement(old, [])
        value = join_components(parts)
        return _Replacement(old, [with_value(old[0], value) if old else new_prop("ORG", value)])

    def scalar(self, name: str, value: object) -> _Replacement:
        old = self.reading.named(*SCALAR_PROPERTIES[name])
        if value is None:
            return _Replacement(old, [])
        if name == "birthday":
            assert isinstance(value, dt.date)
            # 4.0 takes the basic ISO 8601 form, 3.0 the extended one (RFC 2426's example).
            text = value.isoformat().replace("-", "") if self.four else value.isoformat()
            return _Replacement(old, [new_prop("BDAY", text)])
        prop_name = {"manager_name": MANAGER_PROPERTY, "office_location": OFFICE_PROPERTY}.get(
            name, SCALAR_PROPERTIES[name][0]
        )
        return _Replacement(old, [new_prop(prop_name, escape(str(value)))])

    def items(self, list_field: str, items: tuple[ListItem, ...]) -> _Replacement:
        entries = list(self.reading.entries[list_field])
        old = self.reading.named(*LIST_PROPERTIES[list_field])
        old += [c for p in old for c in self.reading.companions(p)]
        new: list[Prop] = []
        for item in items:
            reused = next((e for e in entries if e.item == item), None)
            if reused is not None:
                entries.remove(reused)
                new.extend(reused.props)
            else:
                new.extend(self._item(item))
        return _Replacement(old, new)

    def _item(self, item: ListItem) -> list[Prop]:
        if isinstance(item, IMAddress):
            return [self._im(item)]
        if isinstance(item, Email):
            name, value = "EMAIL", escape(item.email)
        elif isinstance(item, PhoneNumber):
            name, value = "TEL", escape(item.number)
        elif isinstance(item, WebPage):
            name, value = "URL", escape(item.url)
        else:
            name, value = "ADR", _adr_value(item)
        spelled = _types.TOKENS_BY_PROPERTY[name]
        kind = item.type.lower() if item.type else None
        if kind is None or kind in spelled:
            tokens = list(spelled[kind]) if kind else []
            if name == "EMAIL" and not self.four:
                tokens.insert(0, "internet")  # what Apple and Google write in 3.0
            params = {"TYPE": [self._case(t) for t in tokens]} if tokens else {}
            return [new_prop(name, value, params=params)]
        group = next(self._groups)
        label = new_prop("X-ABLabel", escape(kind), group=group)
        params = {"TYPE": [self._case("internet")]} if name == "EMAIL" and not self.four else {}
        return [new_prop(name, value, group=group, params=params), label]

    def _im(self, item: IMAddress) -> Prop:
        address = urllib.parse.quote(item.im_address, safe=_IM_URI_SAFE)
        protocol = item.type
        scheme = _types.PROTOCOL_SCHEMES.get(protocol or "")
        service = _types.SERVICE_NAMES.get(protocol or "", protocol)
        params = {"X-SERVICE-TYPE": [service]} if service else {}
        return new_prop("IMPP", f"{scheme or _types.NO_SCHEME}:{address}", params=params)

    def categories(self, categories: tuple[str, ...]) -> _Replacement:
        old = self.reading.named("CATEGORIES")
        if not categories:
            return _Replacement(old, [])
        return _Replacement(old, [new_prop("CATEGORIES", ",".join(escape(c) for c in categories))])

    def photo(self, photo: bytes | None, photo_type: str | None) -> _Replacement:
        old = self.reading.named("PHOTO")
        if not photo:
            return _Replacement(old, [])
        media = (photo_type or filetype.guess_mime(photo) or "").lower() or None
        data = base64.b64encode(photo).decode("ascii")
        if self.four:
            prefix = f"data:{media or 'application/octet-stream'};base64,"
            return _Replacement(old, [new_prop("PHOTO", prefix + data)])
        params: dict[str, Sequence[str]] = {"ENCODING": ["b"]}
        if media:
            params["TYPE"] = [media.split("/", 1)[-1].upper()]
        return _Replacement(old, [new_prop("PHOTO", data, params=params)])


def _adr_value(address: PhysicalAddress) -> str:
    parts = (
        "",
        "",
        address.street_address or "",
        address.city or "",
        address.state or "",
        address.postal_code or "",
        address.country or "",
    )
    return join_components(parts)
