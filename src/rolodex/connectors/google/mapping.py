"""People API ``Person`` <-> the unified contact model (``providers.md`` §1, §5.2).

Reading maps what v2 can show and ignores the rest; writing (``person_patch``) builds only
the Person fields that the local change touched, starting from the person as last read
(``raw``), so that everything Rolodex does not map survives: other names' parts, events,
relations other than the manager, user-defined fields, external ids, the extra keys of list
items, unchanged or edited in place (``_reuse``). A birthday without a year (Google's year 0
or no year) reads as None, since v2's ``YYYY-MM-DD`` cannot hold it; it is rewritten only
when the birthday itself is given a date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rolodex.domain.contact import (
    ContactFields,
    Email,
    IMAddress,
    ListItem,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)

CLIENT_DATA_KEY = "rolodex.id"
# Every person field Rolodex reads (connections.list personFields); the same on every page
# and every sync-token call, as Google requires (GM §3.1).
READ_FIELDS = (
    "addresses,biographies,birthdays,clientData,emailAddresses,imClients,memberships,"
    "metadata,names,nicknames,organizations,phoneNumbers,photos,relations,urls"
)

# v2 type <-> Google type, per list (providers.md §1b-§1f); other strings pass through.
_EMAIL_TYPES = {"personal": "home"}
_PHONE_TYPES = {
    "business": "work",
    "business_fax": "workFax",
    "home_fax": "homeFax",
    "organization_main": "main",
    "other_fax": "otherFax",
    "work_mobile": "workMobile",
    "work_pager": "workPager",
}
_IM_PROTOCOLS = {"gtalk": "googleTalk", "netmeeting": "netMeeting"}
_URL_TYPES = {"homepage": "homePage"}


def _reverse(table: Mapping[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


_EMAIL_READ = _reverse(_EMAIL_TYPES)
_PHONE_READ = _reverse(_PHONE_TYPES)
_IM_READ = _reverse(_IM_PROTOCOLS)
_URL_READ = _reverse(_URL_TYPES)
# Fields of the unified model -> the Person field that holds them.
PERSON_FIELD_OF = {
    "given_name": "names",
    "middle_name": "names",
    "surname": "names",
    "suffix": "names",
    "nickname": "nicknames",
    "birthday": "birthdays",
    "company_name": "organizations",
    "job_title": "organizations",
    "office_location": "organizations",
    "manager_name": "relations",
    "notes": "biographies",
    "emails": "emailAddresses",
    "phone_numbers": "phoneNumbers",
    "im_addresses": "imClients",
    "physical_addresses": "addresses",
    "web_pages": "urls",
    "groups": "memberships",
}


# The unified fields a Person's fields are read as (``fields_of``): all but groups.
_READ_AS = frozenset(PERSON_FIELD_OF) - {"groups"}

# Field sources that are not the contact's own: a Google profile (or Workspace directory
# entry) linked to it, which People merges into the person when ``sources`` includes
# profiles, its default (people.get, connections.list, batchGet...). Their items say so in
# metadata.source; updateContact writes the contact source only ("Any non-contact data in
# the person to update will be ignored").
_NOT_CONTACT = frozenset({"PROFILE", "DOMAIN_PROFILE", "ACCOUNT"})


def _from_contact(item: Any) -> bool:
    if not isinstance(item, dict):
        return True
    metadata = item.get("metadata")
    if not metadata:
        return True
    return ((metadata.get("source") or {}).get("type")) not in _NOT_CONTACT


def contact_data(person: Mapping[str, Any], *, shown: bool = False) -> Mapping[str, Any]:
    """The person with the items of its lists that a linked profile gave left out: what
    the contact itself holds (``photos`` aside, which ``photo_url_of`` sorts).

    ``shown``: as it is read, a field the contact holds nothing of keeps the profile's
    items, as Google Contacts shows them: a contact added by its address alone is named by
    its profile, not shown unnamed. (Written back, the contact's own items are the base:
    a field the user edits here then becomes the contact's own, and hides the profile's.)
    """
    if not any(
        isinstance(v, list) and not all(_from_contact(i) for i in v)
        for k, v in person.items()
        if k != "photos"
    ):
        return person
    out: dict[str, Any] = {}
    for k, v in person.items():
        if isinstance(v, list) and k != "photos":
            own = [i for i in v if _from_contact(i)]
            out[k] = own if own or not shown else v
        else:
            out[k] = v
    return out


def _first(person: Mapping[str, Any], key: str) -> dict[str, Any]:
    values = person.get(key)
    if values and isinstance(values, list) and isinstance(values[0], dict):
        return values[0]
    return {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _type(value: Any, table: Mapping[str, str]) -> str | None:
    kind = _text(value)
    return table.get(kind, kind) if kind else None


_NAME_PARTS = ("givenName", "middleName", "familyName", "honorificSuffix")


def _unstructured_name(name: Mapping[str, Any]) -> str | None:
    """A name Google holds as free text only (Name.unstructuredName, "The free form name
    value"): shown as the given name, the whole of it."""
    if any(name.get(k) for k in _NAME_PARTS):
        return None
    return _text(name.get("unstructuredName"))


_ADDRESS_PARTS = ("streetAddress", "city", "postalCode", "region", "country")
_ADDRESS_SHOWN = (*_ADDRESS_PARTS, "formattedValue")


def _unstructured(address: Mapping[str, Any]) -> str | None:
    """An address Google holds as one text only (Address.formattedValue: "The unstructured
    value of the address. If this is not set by the user it will be automatically
    constructed from structured values"), typed or imported so: shown as its street, v2's
    one free-text part. Where there are structured parts, the text is only made of them."""
    if any(address.get(k) for k in _ADDRESS_PARTS):
        return None
    return _text(address.get("formattedValue"))


def birthday_of(person: Mapping[str, Any]) -> dt.date | None:
    date = _first(person, "birthdays").get("date") or {}
    try:
        year, month, day = int(date.get("year") or 0), int(date["month"]), int(date["day"])
    except (KeyError, TypeError, ValueError):
        return None
    if not year:
        return None  # no year: v2's YYYY-MM-DD cannot hold it
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def manager_of(person: Mapping[str, Any]) -> str | None:
    for relation in person.get("relations") or ():
        if isinstance(relation, dict) and relation.get("type") == "manager":
            return _text(relation.get("person"))
    return None


def fields_of(person: Mapping[str, Any]) -> ContactFields:
    person = contact_data(person, shown=True)
    name = _first(person, "names")
    org = _first(person, "organizations")
    emails = tuple(
        Email(_type(e.get("type"), _EMAIL_READ), e["value"])
        for e in person.get("emailAddresses") or ()
        if _text(e.get("value"))
    )
    phones = tuple(
        PhoneNumber(_type(p.get("type"), _PHONE_READ), p["value"])
        for p in person.get("phoneNumbers") or ()
        if _text(p.get("value"))
    )
    ims = tuple(
        IMAddress(_type(i.get("protocol"), _IM_READ), i["username"])
        for i in person.get("imClients") or ()
        if _text(i.get("username"))
    )
    addresses = tuple(
        PhysicalAddress(
            _text(a.get("type")),
            street_address=_text(a.get("streetAddress")) or _unstructured(a),
            city=_text(a.get("city")),
            postal_code=_text(a.get("postalCode")),
            state=_text(a.get("region")),
            country=_text(a.get("country")) or _text(a.get("countryCode")),
        )
        for a in person.get("addresses") or ()
        if any(a.get(k) for k in _ADDRESS_SHOWN)
    )
    urls = tuple(
        WebPage(_type(u.get("type"), _URL_READ), u["value"])
        for u in person.get("urls") or ()
        if _text(u.get("value"))
    )
    return ContactFields(
        given_name=_text(name.get("givenName")) or _unstructured_name(name),
        middle_name=_text(name.get("middleName")),
        surname=_text(name.get("familyName")),
        suffix=_text(name.get("honorificSuffix")),
        nickname=_text(_first(person, "nicknames").get("value")),
        birthday=birthday_of(person),
        company_name=_text(org.get("name")),
        job_title=_text(org.get("title")),
        manager_name=manager_of(person),
        office_location=_text(org.get("location")),
        notes=_text(_first(person, "biographies").get("value")),
        emails=emails,
        im_addresses=ims,
        phone_numbers=phones,
        physical_addresses=addresses,
        web_pages=urls,
    )


def rolodex_id_of(person: Mapping[str, Any]) -> str | None:
    for entry in person.get("clientData") or ():
        if isinstance(entry, dict) and entry.get("key") == CLIENT_DATA_KEY:
            return _text(entry.get("value"))
    return None


def contact_sources(person: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The person's contact sources as updateContact wants them named
    (``person.metadata.sources``: type, id and the etag they were read with)."""
    out = []
    for source in (person.get("metadata") or {}).get("sources") or ():
        if isinstance(source, dict) and source.get("type") == "CONTACT":
            out.append({k: source[k] for k in ("type", "id", "etag") if k in source})
    return out


def group_names_of(person: Mapping[str, Any]) -> list[str]:
    """The contact group resource names the person belongs to."""
    names = []
    for membership in person.get("memberships") or ():
        cgm = membership.get("contactGroupMembership") if isinstance(membership, dict) else None
        if isinstance(cgm, dict):
            rn = cgm.get("contactGroupResourceName") or (
                f"contactGroups/{cgm['contactGroupId']}" if cgm.get("contactGroupId") else None
            )
            if rn:
                names.append(rn)
    return names


def photo_url_of(person: Mapping[str, Any]) -> str | None:
    """The person's own photo (not Google's generated monogram, flagged ``default``)."""
    for photo in person.get("photos") or ():
        if isinstance(photo, dict) and not photo.get("default") and _text(photo.get("url")):
            source = (photo.get("metadata") or {}).get("source") or {}
            # A profile photo is the person's own Google profile's, not the contact's; an
            # other contact's own photo is of source OTHER_CONTACT.
            if source.get("type") not in _NOT_CONTACT:
                return str(photo["url"])
    return None


# --- Writing -----------------------------------------------------------------------------------


def _reuse(
    key: str,
    items: Iterable[ListItem],
    raw_items: list[dict[str, Any]],
    read: Callable[[dict[str, Any]], ListItem | None],
    write: Callable[[ListItem], dict[str, Any]],
) -> list[dict[str, Any]]:
    """The Person list ``key`` for ``items``: an item that reads the same as one already
    there is sent back as it was (keeping keys Rolodex does not map); an item the client
    edited is built, with what Rolodex does not map of the one it replaced (``_edited``);
    the others are built.

    Which original an item replaces is decided in three passes over the originals as v2
    reads them, the same for the same input: (1) an item that reads the same as an
    original pairs with the first such one; (2) of what is left, an item pairs with the
    original of its type when that type is left once on each side; (3) what is left then
    pairs in order, only when as many are left on each side (each edited in place).
    Otherwise (items added and removed in one write) a left-over item is a new one:
    nothing of an original is guessed onto it. Originals v2 does not show are kept, last.
    """
    items = list(items)
    pool = [(read(raw), raw) for raw in raw_items if isinstance(raw, dict)]
    used: set[int] = set()
    same: dict[int, int] = {}  # items index -> pool index, for items that read the same
    for i, item in enumerate(items):
        for j, (seen, _) in enumerate(pool):
            if seen == item and j not in used:
                same[i] = j
                used.add(j)
                break
    new = [i for i in range(len(items)) if i not in same]
    # An original v2 does not show (read as None) was never seen, so never edited.
    old = [(j, seen) for j, (seen, _) in enumerate(pool) if seen is not None and j not in used]
    edited: dict[int, int] = {}  # items index -> pool index, for items edited in place
    for i in new:
        kind = items[i].type
        theirs = [j for j, seen in old if seen.type == kind]
        if len(theirs) == 1 and sum(items[k].type == kind for k in new) == 1:
            edited[i] = theirs[0]
    new = [i for i in new if i not in edited]
    rest = [j for j, _ in old if j not in edited.values()]
    if len(new) == len(rest):
        edited.update(zip(new, rest, strict=True))
    out = []
    for i, item in enumerate(items):
        if i in same:
            out.append(_strip(pool[same[i]][1]))
        elif i in edited:
            seen, raw = pool[edited[i]]
            out.append(_edited(key, item, seen, raw, write(item)))
        else:
            out.append(write(item))
    # What v2 does not show of the list (an address of a PO box alone, an email without
    # an address) the client never saw, so never removed: it stays as Google held it.
    out += [_strip(raw) for seen, raw in pool if seen is None]
    return out


# Keys of a list item that Rolodex does not map and that an edit of what it maps leaves
# true: carried over to the edited item, since what Rolodex does not map survives an
# update (issue 10). Person schema (developers.google.com/people/api/rest/v1/people;
# providers.md §1d, §1e): EmailAddress.displayName ("The display name of the email");
# ImClient.type (home, work, other: v2's IM type is ImClient.protocol);
# Address.extendedAddress ("for example, the apartment number") and Address.poBox.
# PhoneNumber and Url hold nothing else a client writes (canonicalForm, formattedType:
# "Output only"). Never carried: what Google computes (``_COMPUTED``), metadata, and
# Address.formattedValue, the text of the parts as they were, which Google would keep as
# the user's own once sent ("If this is not set by the user it will be automatically
# constructed from structured values").
_KEPT_ON_EDIT: dict[str, tuple[str, ...]] = {
    "emailAddresses": ("displayName",),
    "imClients": ("type",),
    "addresses": ("extendedAddress", "poBox"),
}


def _edited(
    key: str, item: ListItem, seen: ListItem | None, raw: dict[str, Any], built: dict[str, Any]
) -> dict[str, Any]:
    """``built`` (the edited ``item`` as Rolodex writes it) with what Rolodex does not map
    of ``raw``, the item it replaces (``seen`` as read)."""
    out = dict(built)
    for k in _KEPT_ON_EDIT.get(key, ()):
        if raw.get(k) and k not in out:
            out[k] = raw[k]
    # Still the source's primary one (FieldMetadata.sourcePrimary, as ``_strip`` keeps it):
    # the primary email with its address edited stays the primary email.
    primary = _strip(raw).get("metadata")
    if primary is not None:
        out["metadata"] = primary
    if (
        isinstance(item, PhysicalAddress)
        and isinstance(seen, PhysicalAddress)
        and item.country == seen.country
    ):
        # The country unchanged, it is written as Google held it: Address.countryCode (ISO
        # 3166-1 alpha-2, providers.md §1e) then still names it, and a country read from
        # the code alone stays the code. A country edited makes the old code stale.
        for k in ("country", "countryCode"):
            if raw.get(k):
                out[k] = raw[k]
            else:
                out.pop(k, None)
    return out


def _email_read(raw: dict[str, Any]) -> ListItem | None:
    found = fields_of({"emailAddresses": [raw]}).emails
    return found[0] if found else None


def _phone_read(raw: dict[str, Any]) -> ListItem | None:
    found = fields_of({"phoneNumbers": [raw]}).phone_numbers
    return found[0] if found else None


def _im_read(raw: dict[str, Any]) -> ListItem | None:
    found = fields_of({"imClients": [raw]}).im_addresses
    return found[0] if found else None


def _address_read(raw: dict[str, Any]) -> ListItem | None:
    found = fields_of({"addresses": [raw]}).physical_addresses
    return found[0] if found else None


def _url_read(raw: dict[str, Any]) -> ListItem | None:
    found = fields_of({"urls": [raw]}).web_pages
    return found[0] if found else None


def _typed(value: dict[str, Any], kind: str | None, table: Mapping[str, str]) -> dict[str, Any]:
    if kind:
        value["type"] = table.get(kind, kind)
    return value


def _email_write(item: ListItem) -> dict[str, Any]:
    assert isinstance(item, Email)
    return _typed({"value": item.email}, item.type, _EMAIL_TYPES)


def _phone_write(item: ListItem) -> dict[str, Any]:
    assert isinstance(item, PhoneNumber)
    return _typed({"value": item.number}, item.type, _PHONE_TYPES)


def _im_write(item: ListItem) -> dict[str, Any]:
    assert isinstance(item, IMAddress)
    out: dict[str, Any] = {"username": item.im_address}
    if item.type:
        out["protocol"] = _IM_PROTOCOLS.get(item.type, item.type)
    return out


def _address_write(item: ListItem) -> dict[str, Any]:
    assert isinstance(item, PhysicalAddress)
    out: dict[str, Any] = {}
    for key, value in (
        ("streetAddress", item.street_address),
        ("city", item.city),
        ("postalCode", item.postal_code),
        ("region", item.state),
        ("country", item.country),
    ):
        if value:
            out[key] = value
    if item.type:
        out["type"] = item.type
    return out


def _url_write(item: ListItem) -> dict[str, Any]:
    assert isinstance(item, WebPage)
    return _typed({"value": item.url}, item.type, _URL_TYPES)


_LISTS: dict[str, tuple[str, Any, Any]] = {
    "emails": ("emailAddresses", _email_read, _email_write),
    "phone_numbers": ("phoneNumbers", _phone_read, _phone_write),
    "im_addresses": ("imClients", _im_read, _im_write),
    "physical_addresses": ("addresses", _address_read, _address_write),
    "web_pages": ("urls", _url_read, _url_write),
}


# Keys of a Person's list items that Google computes ("Output only" in the Person schema):
# not sent back, Google fills them in again.
_COMPUTED = frozenset({"metadata", "formattedType", "canonicalForm", "formattedProtocol"})


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    """An item as read, to be written back: without what Google computes, but still the
    source's primary one if it was (FieldMetadata.sourcePrimary, the one key of an item's
    metadata a client writes)."""
    out = {k: v for k, v in item.items() if k not in _COMPUTED}
    metadata = item.get("metadata")
    if isinstance(metadata, dict) and metadata.get("sourcePrimary"):
        out["metadata"] = {"sourcePrimary": True}
    return out


def person_patch(
    fields: ContactFields,
    touched: Iterable[str],
    raw: Mapping[str, Any],
) -> dict[str, Any]:
    """The Person fields that hold the ``touched`` unified fields (``groups`` and
    ``picture`` excluded: memberships and photos are written apart), built over ``raw``.
    Every key of the answer belongs in ``updatePersonFields``; an empty list clears."""
    touched = set(touched)
    if raw:
        # A touched field that still reads as it did is no change (a client saving back
        # the whole contact it read, with one edit): left out, it keeps at Google what v2
        # cannot show of it (a nickname's type, an HTML biography, a birthday's text).
        shown = fields_of(raw)
        touched = {
            f for f in touched if f not in _READ_AS or getattr(shown, f) != getattr(fields, f)
        }
    raw = contact_data(raw)
    out: dict[str, Any] = {}
    if touched & {"given_name", "middle_name", "surname", "suffix"}:
        name = _strip(_first(raw, "names"))
        name.pop("displayName", None)  # output only; Google recomputes it
        name.pop("displayNameLastFirst", None)
        free = _unstructured_name(name)
        name.pop("unstructuredName", None)
        if free is not None:
            name["givenName"] = free  # as it was read, the parts now hold it
        for key, field_name, value in (
            ("givenName", "given_name", fields.given_name),
            ("middleName", "middle_name", fields.middle_name),
            ("familyName", "surname", fields.surname),
            ("honorificSuffix", "suffix", fields.suffix),
        ):
            if field_name not in touched:
                continue  # one Person field holds four of ours: only the touched change
            if value:
                name[key] = value
            else:
                name.pop(key, None)
        keep = {k for k in name if k not in ("metadata",)}
        out["names"] = [name] if keep else []
    if "nickname" in touched:
        rest = [_strip(n) for n in (raw.get("nicknames") or ())[1:]]
        out["nicknames"] = ([{"value": fields.nickname}] if fields.nickname else []) + rest
    if "birthday" in touched:
        if fields.birthday is None:
            # A birthday v2 cannot show (no year) reads as null: a null written back, as a
            # client saving the whole contact it read does, is no change to it.
            if birthday_of(raw) is not None:
                out["birthdays"] = []
        else:
            b = fields.birthday
            out["birthdays"] = [{"date": {"year": b.year, "month": b.month, "day": b.day}}]
    if touched & {"company_name", "job_title", "office_location"}:
        orgs = [_strip(o) for o in raw.get("organizations") or () if isinstance(o, dict)]
        org = orgs[0] if orgs else {}
        for key, field_name, value in (
            ("name", "company_name", fields.company_name),
            ("title", "job_title", fields.job_title),
            ("location", "office_location", fields.office_location),
        ):
            if field_name not in touched:
                continue
            if value:
                org[key] = value
            else:
                org.pop(key, None)
        org.pop("formattedType", None)
        rest = orgs[1:]
        kept = any(org.get(k) for k in org if k not in ("type", "metadata"))
        out["organizations"] = ([org] if kept else []) + rest
    if "manager_name" in touched:
        others = [
            _strip(r)
            for r in raw.get("relations") or ()
            if isinstance(r, dict) and r.get("type") != "manager"
        ]
        manager = (
            [{"person": fields.manager_name, "type": "manager"}] if fields.manager_name else []
        )
        out["relations"] = manager + others
    if "notes" in touched:
        out["biographies"] = (
            [{"value": fields.notes, "contentType": "TEXT_PLAIN"}] if fields.notes else []
        )
    for field_name, (key, read, write) in _LISTS.items():
        if field_name in touched:
            items = getattr(fields, field_name)
            out[key] = _reuse(key, items, list(raw.get(key) or ()), read, write)
    return out


def memberships(group_resource_names: Iterable[str]) -> list[Any]:
    """``memberships`` for these groups. Contact groups' only: a Workspace colleague's
    ``domainMembership`` is "Output only" and "Only contact group memberships can be
    modified" (Person.memberships), so Google keeps it whatever is sent, and a server that
    holds to the schema refuses a membership without a contact group."""
    return [
        {"contactGroupMembership": {"contactGroupResourceName": rn}}
        for rn in dict.fromkeys(group_resource_names)
    ]
