"""The vCard mapping: real-world cards, round trips, lossless updates, garbage."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vobject.base import getLogicalLines, textLineToContentLine

from rolodex.domain.contact import (
    WRITABLE_FIELDS,
    ContactFields,
    Email,
    IMAddress,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from rolodex.domain.vcard import (
    InvalidCard,
    parse_card,
    render_card,
    render_group_card,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "vcards"
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSor"
    "LC0uLzAxMjM0NTY3ODk6Ozw9Pj//2Q=="
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def properties(
    card: bytes,
) -> Counter[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...], str]]:
    """The card's properties as comparable (group, name, params, raw value) tuples.

    Read with vobject's line layer independently of the module under test, normalised only
    where vCard itself says case or order does not matter.
    """
    found: Counter[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...], str]] = Counter()
    text = card.decode("utf-8")
    for logical, number in getLogicalLines(io.StringIO(text), False):
        line = textLineToContentLine(logical, number)
        if line.name.upper() in ("BEGIN", "END"):
            continue
        params = tuple(
            sorted(
                (k.upper(), tuple(sorted(v.upper() for v in vs))) for k, vs in line.params.items()
            )
        )
        found[((line.group or "").lower(), line.name.upper(), params, line.value)] += 1
    return found


def named(card: bytes, name: str) -> list[str]:
    return [value for (_, n, _, value) in properties(card) if n == name]


# --- real-world cards -------------------------------------------------------------------


def test_apple_contacts_export() -> None:
    card = parse_card(fixture("apple-contacts.vcf"))

    assert card.uid == "5AD380FD-B2DE-4261-BA99-DE1D1DB52FBE"
    assert card.kind == "individual"
    assert card.name == "Dr. Johnny Q. Appleseed Jr."
    f = card.fields
    assert (f.given_name, f.middle_name, f.surname, f.suffix) == (
        "Johnny",
        "Quincy",
        "Appleseed",
        "Jr.",
    )
    assert (f.nickname, f.company_name, f.job_title) == ("Jo", "Apple Inc.", "Orchard Engineer")
    assert f.birthday == dt.date(1955, 2, 24)
    assert f.notes == "Plants trees.\nLoves apples, pears and plums."
    assert f.emails == (
        Email("work", "johnny@apple.example"),
        Email("personal", "johnny.appleseed@icloud.example"),
        Email("other", "jq@orchard.example"),
        Email("seed club", "seeds@orchard.example"),
    )
    assert f.phone_numbers == (
        PhoneNumber("mobile", "+1 (408) 555-0101"),
        PhoneNumber("business", "+1 (408) 555-0102"),
        PhoneNumber("organization_main", "+1 (408) 555-0100"),
        PhoneNumber("business_fax", "+1 (408) 555-0103"),
        PhoneNumber("pager", "+1 (408) 555-0104"),
        PhoneNumber("orchard hut", "+1 (408) 555-0105"),
    )
    # X-AIM and the IMPP beside it (Apple writes both) are one address.
    assert f.im_addresses == (
        IMAddress("skype", "johnny.appleseed"),
        IMAddress("jabber", "johnny@jabber.example"),
        IMAddress("aim", "johnnyaim"),
    )
    assert f.physical_addresses == (
        PhysicalAddress("work", "1 Infinite Loop", "Cupertino", "95014", "CA", "United States"),
        PhysicalAddress(
            "home", "20 Orchard Lane\nCottage 3", "Los Gatos", "95030", "CA", "United States"
        ),
    )
    assert f.web_pages == (
        WebPage("homepage", "https://johnny.example/"),
        WebPage("blog", "https://blog.johnny.example/"),
        WebPage("work", "https://apple.example/"),
    )
    assert card.categories == ("Friends", "Orchard")
    assert card.photo == JPEG
    assert card.photo_type == "image/jpeg"
    assert card.photo_uri is None
    assert card.member_uids == ()


def test_apple_group_card() -> None:
    card = parse_card(fixture("apple-group.vcf"))

    assert card.kind == "group"
    assert card.name == "Orchard Friends"
    assert card.uid == "E1B2C3D4-0000-4000-8000-000000000001"
    assert card.member_uids == (
        "5AD380FD-B2DE-4261-BA99-DE1D1DB52FBE",
        "8F5A4B2C-1D3E-4F60-9A7B-0C1D2E3F4A5B",
    )


def test_google_contacts_export() -> None:
    card = parse_card(fixture("google-contacts.vcf"))

    assert card.uid == ""
    f = card.fields
    assert (f.given_name, f.surname, f.nickname) == ("Ada", "Lovelace", "Countess")
    assert f.emails == (
        Email("personal", "ada@home.example"),
        Email("work", "ada@analytical.example"),
        Email("poetry", "ada@poetry.example"),
    )
    assert f.phone_numbers == (
        PhoneNumber("mobile", "+44 20 7946 0000"),
        PhoneNumber("business", "+44 20 7946 0001"),
        PhoneNumber("workshop", "+44 20 7946 0002"),
    )
    assert f.physical_addresses == (
        PhysicalAddress(
            "home", "12 St James's Square", "London", "SW1Y 4JH", None, "United Kingdom"
        ),
    )
    # Google escapes the colon in URLs.
    assert f.web_pages == (WebPage("homepage", "http://ada.example.org"),)
    assert f.birthday == dt.date(1815, 12, 10)
    assert card.categories == ("myContacts", "Friends")


def test_outlook_21_export() -> None:
    card = parse_card(fixture("outlook-export.vcf"))

    f = card.fields
    assert (f.given_name, f.middle_name, f.surname, f.suffix) == ("John", "Quentin", "Smith", "Jr.")
    assert (f.company_name, f.job_title) == ("Contoso", "Account Manager")
    assert f.manager_name == "Jane Doe"
    # Quoted-printable in the declared Windows code page, soft line break included.
    assert f.notes == "Met at the Café in Berlin,\nsee follow-up."
    assert f.birthday == dt.date(1960, 12, 31)
    assert f.phone_numbers == (
        PhoneNumber("business", "+1 (425) 555-0100"),
        PhoneNumber("home", "+1 (425) 555-0101"),
        PhoneNumber("mobile", "+1 (425) 555-0102"),
        PhoneNumber("business_fax", "+1 (425) 555-0103"),
        PhoneNumber("assistant", "+1 (425) 555-0104"),
        PhoneNumber("organization_main", "+1 (425) 555-0105"),
    )
    assert f.emails == (Email(None, "john.smith@contoso.example"),)
    assert f.im_addresses == (IMAddress(None, "john@contoso.example"),)
    assert f.physical_addresses == (
        PhysicalAddress(
            "work", "One Microsoft Way", "Redmond", "98052", "WA", "United States of America"
        ),
    )
    assert f.web_pages == (WebPage("work", "http://www.contoso.example"),)
    assert card.photo == JPEG
    assert card.photo_type == "image/jpeg"


def test_vcard_40() -> None:
    card = parse_card(fixture("rfc6350.vcf"))

    assert card.uid == "4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"  # urn:uuid: removed
    assert card.kind == "individual"
    f = card.fields
    assert f.suffix == "ing. jr,M.Sc."
    assert f.birthday is None  # --0203 has no year
    assert f.company_name == "Viagenie"
    assert f.phone_numbers == (
        PhoneNumber("business", "+1-418-656-9254;ext=102"),
        PhoneNumber("mobile", "+1-418-262-6501"),
    )
    assert f.im_addresses == (
        IMAddress("jabber", "simon@viagenie.example"),
        IMAddress("lync", "simon@sip.viagenie.example"),
        IMAddress("yahoo", "simonp"),
    )
    assert f.physical_addresses == (
        PhysicalAddress("work", "2875 Laurier\nSuite D2-630", "Quebec", "G1V 2M2", "QC", "Canada"),
    )
    assert f.web_pages == (WebPage("homepage", "http://nomis80.example"),)
    assert card.categories == ("Work", "Friends")
    assert card.photo is not None and card.photo.startswith(b"\x89PNG")
    assert card.photo_type == "image/png"


def test_vcard_40_group() -> None:
    card = parse_card(fixture("rfc6350-group.vcf"))

    assert card.kind == "group"
    assert card.name == "The Doe family"
    assert card.member_uids == (
        "03a0e51f-d1aa-4385-8a53-e29025acd8af",
        "b8767877-b4a1-4c70-9acc-505d3819e519",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("TEL;TYPE=work,voice:1", "business"),
        ("TEL;TYPE=HOME:1", "home"),
        ("TEL;TYPE=cell:1", "mobile"),
        ("TEL;type=IPHONE;type=CELL;type=VOICE:1", "mobile"),
        ('TEL;TYPE="work,cell":1', "mobile"),
        ("TEL;TYPE=pager:1", "pager"),
        ("TEL;TYPE=work,fax:1", "business_fax"),
        ("TEL;TYPE=home,fax:1", "home_fax"),
        ("TEL;TYPE=fax:1", "other_fax"),
        ("TEL;TYPE=car:1", "car"),
        ("TEL;TYPE=main:1", "organization_main"),
        ("TEL;TYPE=other:1", "other"),
        ("TEL;TYPE=voice:1", None),
        ("TEL;TYPE=pref:1", None),
        ("TEL:1", None),
        ("TEL;TYPE=ISDN:1", "isdn"),
        ("X-MS-TEL;TYPE=RADIO:1", "radio"),
        ("item1.TEL:1\r\nitem1.X-ABLabel:_$!<HomeFAX>!$_", "home_fax"),
        ("item1.TEL:1\r\nitem1.X-ABLabel:_$!<Mobile>!$_", "mobile"),
        ("item1.TEL;TYPE=WORK:1\r\nitem1.X-ABLabel:Night Line", "night line"),
    ],
)
def test_phone_types(line: str, expected: str | None) -> None:
    card = parse_card(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n{line}\r\nEND:VCARD\r\n")
    assert card.fields.phone_numbers == (PhoneNumber(expected, "1"),)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("EMAIL;TYPE=INTERNET,WORK:a@b", "work"),
        ("EMAIL;TYPE=home:a@b", "personal"),
        ("EMAIL;TYPE=INTERNET;TYPE=pref:a@b", None),
        ("EMAIL;TYPE=School:a@b", "school"),
        ("item1.EMAIL;TYPE=INTERNET:a@b\r\nitem1.X-ABLabel:_$!<Other>!$_", "other"),
        ("item1.EMAIL;TYPE=INTERNET:a@b\r\nitem1.X-ABLabel:_$!<Home>!$_", "personal"),
    ],
)
def test_email_types(line: str, expected: str | None) -> None:
    card = parse_card(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n{line}\r\nEND:VCARD\r\n")
    assert card.fields.emails == (Email(expected, "a@b"),)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("IMPP:xmpp:a@b", IMAddress("jabber", "a@b")),
        ("IMPP:sip:a@b", IMAddress("lync", "a@b")),
        ("IMPP:msnim:a@b", IMAddress("msn", "a@b")),
        ("IMPP:icq:123", IMAddress("icq", "123")),
        ("IMPP:qq:123", IMAddress("qq", "123")),
        ("IMPP;X-SERVICE-TYPE=GoogleTalk:x-apple:a@b", IMAddress("gtalk", "a@b")),
        ("IMPP;X-SERVICE-TYPE=Signal:x-apple:%2B1%20555", IMAddress("signal", "+1 555")),
        ("IMPP:matrix:u/a:b.org", IMAddress("matrix", "u/a:b.org")),
        ("IMPP:plain", IMAddress(None, "plain")),
        ("X-JABBER:a@b", IMAddress("jabber", "a@b")),
        ("X-SKYPE:a.b", IMAddress("skype", "a.b")),
        ("X-ICQ:1", IMAddress("icq", "1")),
        ("X-MSN:a@b", IMAddress("msn", "a@b")),
        ("X-YAHOO:a", IMAddress("yahoo", "a")),
        ("X-QQ:1", IMAddress("qq", "1")),
        ("X-GTALK:a@b", IMAddress("gtalk", "a@b")),
    ],
)
def test_im_protocols(line: str, expected: IMAddress) -> None:
    card = parse_card(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n{line}\r\nEND:VCARD\r\n")
    assert card.fields.im_addresses == (expected,)


@pytest.mark.parametrize(
    ("bday", "expected"),
    [
        ("BDAY:1960-12-31", dt.date(1960, 12, 31)),
        ("BDAY:19601231", dt.date(1960, 12, 31)),
        ("BDAY:1960-12-31T00:00:00Z", dt.date(1960, 12, 31)),
        ("BDAY;VALUE=date:1960-12-31", dt.date(1960, 12, 31)),
        ("BDAY:--1231", None),
        ("BDAY;X-APPLE-OMIT-YEAR=1604:1604-12-31", None),
        ("BDAY;VALUE=text:circa 1800", None),
        ("BDAY:1960-02-30", None),
    ],
)
def test_birthday_forms(bday: str, expected: dt.date | None) -> None:
    card = parse_card(f"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\n{bday}\r\nEND:VCARD\r\n")
    assert card.fields.birthday == expected


@pytest.mark.parametrize(
    ("line", "photo", "photo_type", "uri"),
    [
        ("PHOTO;ENCODING=b;TYPE=JPEG:{b64}", JPEG, "image/jpeg", None),
        ("PHOTO;ENCODING=BASE64;TYPE=PNG:{b64}", JPEG, "image/png", None),
        ("PHOTO;JPEG;ENCODING=BASE64:{b64}", JPEG, "image/jpeg", None),
        ("PHOTO:data:image/jpeg;base64,{b64}", JPEG, "image/jpeg", None),
        ("PHOTO;ENCODING=b:{b64}", JPEG, "image/jpeg", None),  # type sniffed
        ("PHOTO;VALUE=uri:https://img.example/a.jpg", None, None, "https://img.example/a.jpg"),
        ("PHOTO:https://img.example/a.jpg", None, None, "https://img.example/a.jpg"),
    ],
)
def test_photo_forms(
    line: str, photo: bytes | None, photo_type: str | None, uri: str | None
) -> None:
    text = line.format(b64=base64.b64encode(JPEG).decode())
    card = parse_card(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n{text}\r\nEND:VCARD\r\n")
    assert (card.photo, card.photo_type, card.photo_uri) == (photo, photo_type, uri)


def test_display_name_falls_back_to_company_then_email_then_unnamed() -> None:
    company = ContactFields(company_name="Acme", emails=(Email(None, "a@b"),))
    assert named(render_card(company, uid="1"), "FN") == ["Acme"]
    assert named(render_card(ContactFields(emails=(Email(None, "a@b"),)), uid="1"), "FN") == ["a@b"]
    assert named(render_card(ContactFields(), uid="1"), "FN") == ["Unnamed"]


# --- round trips --------------------------------------------------------------------------

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.vcf"))


@pytest.mark.parametrize("name", ALL_FIXTURES)
@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_fixture_round_trips_through_a_new_card(name: str, version: str) -> None:
    card = parse_card(fixture(name))

    again = parse_card(
        render_card(
            card.fields,
            uid=card.uid or "generated",
            categories=card.categories,
            photo=card.photo,
            photo_type=card.photo_type,
            version=version,
        )
    )

    assert again.fields == card.fields
    assert again.categories == card.categories
    assert (again.photo, again.photo_type) == (card.photo, card.photo_type)


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_rewriting_every_field_unchanged_keeps_every_property(name: str) -> None:
    base = fixture(name)
    card = parse_card(base)

    out = render_card(
        card.fields,
        uid="ignored",
        categories=card.categories,
        photo=card.photo,
        photo_type=card.photo_type,
        base=base,
    )

    assert parse_card(out).fields == card.fields
    if b"VERSION:2.1" not in base:  # 2.1 is upgraded, so its lines change spelling
        assert properties(out) == properties(base)


def test_outlook_21_card_is_upgraded_to_30_on_update() -> None:
    base = fixture("outlook-export.vcf")
    card = parse_card(base)

    out = render_card(
        dataclasses.replace(card.fields, job_title="Director"),
        uid="x",
        base=base,
        touched=["job_title"],
    )

    assert named(out, "VERSION") == ["3.0"]
    assert b"QUOTED-PRINTABLE" not in out and b"CHARSET" not in out
    again = parse_card(out)
    assert again.fields == dataclasses.replace(card.fields, job_title="Director")
    assert again.photo == card.photo
    assert "X-MS-OL-DESIGN" in {n for (_, n, _, _) in properties(out)}


# --- lossless update ----------------------------------------------------------------------


def changed_lines(before: bytes, after: bytes) -> tuple[Counter[str], Counter[str]]:
    """(property names only in ``before``, property names only in ``after``)."""
    old, new = properties(before), properties(after)
    gone = Counter({key[1]: 0 for key in old})
    added = Counter({key[1]: 0 for key in new})
    for key, count in (old - new).items():
        gone[key[1]] += count
    for key, count in (new - old).items():
        added[key[1]] += count
    return +gone, +added


def test_touching_job_title_changes_title_only() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)

    out = render_card(
        dataclasses.replace(card.fields, job_title="Head Gardener"),
        uid=card.uid,
        base=base,
        touched=["job_title"],
    )

    assert changed_lines(base, out) == (Counter({"TITLE": 1}), Counter({"TITLE": 1}))
    assert named(out, "TITLE") == ["Head Gardener"]


def test_adding_an_email_keeps_the_others_with_their_labels() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)
    emails = (*card.fields.emails, Email("work", "new@apple.example"))

    out = render_card(
        dataclasses.replace(card.fields, emails=emails), uid=card.uid, base=base, touched=["emails"]
    )

    assert changed_lines(base, out) == (Counter(), Counter({"EMAIL": 1}))
    again = parse_card(out)
    assert again.fields.emails == emails
    assert again.photo == card.photo


def test_changing_an_items_type_drops_its_old_label_only() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)
    emails = list(card.fields.emails)
    emails[2] = Email("work", emails[2].email)  # was Apple's _$!<Other>!$_

    out = render_card(
        dataclasses.replace(card.fields, emails=tuple(emails)),
        uid=card.uid,
        base=base,
        touched=["emails"],
    )

    gone, added = changed_lines(base, out)
    assert gone == Counter({"EMAIL": 1, "X-ABLABEL": 1})
    assert added == Counter({"EMAIL": 1})
    assert parse_card(out).fields.emails == tuple(emails)
    assert "Seed Club" in named(out, "X-ABLABEL")


def test_removing_an_address_drops_its_item_group() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)

    out = render_card(
        dataclasses.replace(card.fields, physical_addresses=card.fields.physical_addresses[:1]),
        uid=card.uid,
        base=base,
        touched=["physical_addresses"],
    )

    assert changed_lines(base, out) == (Counter({"ADR": 1, "X-ABADR": 1}), Counter())


def test_untouched_fields_come_from_the_base_even_when_the_fields_differ() -> None:
    # The conflict path: the base was re-read after a 412 and someone else renamed the contact.
    base = fixture("apple-contacts.vcf")
    stale = dataclasses.replace(
        parse_card(base).fields, surname="Oldname", job_title="Head Gardener"
    )

    out = parse_card(render_card(stale, uid="x", base=base, touched=["job_title"]))

    assert out.fields.surname == "Appleseed"
    assert out.fields.job_title == "Head Gardener"


def test_name_change_keeps_prefix_and_rebuilds_fn() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)

    out = render_card(
        dataclasses.replace(card.fields, given_name="John"),
        uid="x",
        base=base,
        touched=["given_name"],
    )

    assert named(out, "N") == ["Appleseed;John;Quincy;Dr.;Jr."]
    assert named(out, "FN") == ["John Quincy Appleseed Jr."]


def test_hand_written_fn_survives_unrelated_edits() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)

    out = render_card(
        dataclasses.replace(card.fields, notes="x"), uid="x", base=base, touched=["notes"]
    )

    assert named(out, "FN") == ["Dr. Johnny Q. Appleseed Jr."]


def test_company_change_keeps_the_department() -> None:
    base = fixture("apple-contacts.vcf")
    card = parse_card(base)

    out = render_card(
        dataclasses.replace(card.fields, company_name="Pear, Ltd."),
        uid="x",
        base=base,
        touched=["company_name"],
    )

    assert named(out, "ORG") == ["Pear\\, Ltd.;Cupertino Engineering"]


def test_yearless_birthday_survives_a_full_save() -> None:
    base = fixture("rfc6350.vcf")
    card = parse_card(base)

    unchanged = render_card(card.fields, uid="x", base=base, touched=WRITABLE_FIELDS)
    dated = render_card(
        dataclasses.replace(card.fields, birthday=dt.date(1980, 2, 3)),
        uid="x",
        base=base,
        touched=["birthday"],
    )

    assert named(unchanged, "BDAY") == ["--0203"]
    assert named(dated, "BDAY") == ["19800203"]  # the base is 4.0, so 4.0's form
    assert named(dated, "VERSION") == ["4.0"]
    assert named(dated, "UID") == ["urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"]


def test_categories_change_only_when_groups_are_touched() -> None:
    base = fixture("google-contacts.vcf")
    fields = parse_card(base).fields

    kept = render_card(fields, uid="x", base=base, touched=["notes"], categories=())
    rewritten = render_card(fields, uid="x", base=base, touched=["groups"], categories=["VIP"])

    assert parse_card(kept).categories == ("myContacts", "Friends")
    assert parse_card(rewritten).categories == ("VIP",)
    assert changed_lines(base, rewritten) == (
        Counter({"CATEGORIES": 1}),
        Counter({"CATEGORIES": 1}),
    )


def test_photo_changes_only_when_picture_is_touched() -> None:
    base = fixture("apple-contacts.vcf")
    fields = parse_card(base).fields
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    )

    kept = render_card(fields, uid="x", base=base, touched=["notes"])
    kept_on_purpose = render_card(fields, uid="x", base=base, keep_photo=True)
    removed = render_card(fields, uid="x", base=base, touched=["picture"])
    replaced = render_card(
        fields, uid="x", base=base, touched=["picture"], photo=png, photo_type="image/png"
    )

    assert parse_card(kept).photo == JPEG
    assert parse_card(kept_on_purpose).photo == JPEG
    assert parse_card(removed).photo is None
    assert named(removed, "PHOTO") == []
    assert (parse_card(replaced).photo, parse_card(replaced).photo_type) == (png, "image/png")
    assert changed_lines(base, replaced) == (Counter({"PHOTO": 1}), Counter({"PHOTO": 1}))


def test_im_addresses_written_as_impp_and_removed_in_every_spelling() -> None:
    base = fixture("apple-contacts.vcf")
    fields = parse_card(base).fields
    ims = (*fields.im_addresses[:2], IMAddress("icq", "12345"))  # AIM (X-AIM + IMPP) removed

    out = render_card(
        dataclasses.replace(fields, im_addresses=ims), uid="x", base=base, touched=["im_addresses"]
    )

    assert changed_lines(base, out) == (Counter({"X-AIM": 1, "IMPP": 1}), Counter({"IMPP": 1}))
    assert "icq:12345" in named(out, "IMPP")
    assert parse_card(out).fields.im_addresses == ims


def test_manager_and_office_use_their_x_properties() -> None:
    base = fixture("outlook-export.vcf")
    fields = dataclasses.replace(
        parse_card(base).fields, manager_name="Kim Lee", office_location="Building 7"
    )

    out = render_card(fields, uid="x", base=base, touched=["manager_name", "office_location"])

    assert named(out, "X-MS-MANAGER") == ["Kim Lee"]
    assert named(out, "X-ROLODEX-OFFICE-LOCATION") == ["Building 7"]
    again = parse_card(out).fields
    assert (again.manager_name, again.office_location) == ("Kim Lee", "Building 7")


def test_unknown_touched_field_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="picturez"):
        render_card(ContactFields(), uid="x", touched=["picturez"])


# --- group cards ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_new_group_card_round_trips(version: str) -> None:
    out = render_group_card("g-1", "Book Club", ["a-1", "b-2", "a-1"], version=version)

    card = parse_card(out)
    assert (card.kind, card.uid, card.name, card.member_uids) == (
        "group",
        "g-1",
        "Book Club",
        ("a-1", "b-2"),
    )
    member_property = "MEMBER" if version == "4.0" else "X-ADDRESSBOOKSERVER-MEMBER"
    assert named(out, member_property) == ["urn:uuid:a-1", "urn:uuid:b-2"]


@pytest.mark.parametrize(
    ("name", "member_property"),
    [("apple-group.vcf", "X-ADDRESSBOOKSERVER-MEMBER"), ("rfc6350-group.vcf", "MEMBER")],
)
def test_group_update_keeps_style_and_other_members(name: str, member_property: str) -> None:
    base = fixture(name)
    card = parse_card(base)

    out = render_group_card(card.uid, card.name, [*card.member_uids[1:], "new-1"], base=base)

    again = parse_card(out)
    assert again.member_uids == (*card.member_uids[1:], "new-1")
    assert again.uid == card.uid
    gone, added = changed_lines(base, out)
    assert gone == Counter({member_property: 1})
    assert added == Counter({member_property: 1})


def test_group_rename_rewrites_fn_and_apples_n() -> None:
    base = fixture("apple-group.vcf")
    card = parse_card(base)

    out = render_group_card(card.uid, "Neighbours", card.member_uids, base=base)

    assert parse_card(out).name == "Neighbours"
    assert changed_lines(base, out) == (Counter({"FN": 1, "N": 1}), Counter({"FN": 1, "N": 1}))


# --- garbage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        "",
        b"hello world",
        b"\x00\x01\x02\xff\xfe",
        b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\n",
        b"BEGIN:VCARD\r\nnot a content line\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\r\nEND:VCALENDAR\r\n",
        b"FN:x\r\nBEGIN:VCARD\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\r\nNOTE;CHARSET=no-such-charset;ENCODING=QUOTED-PRINTABLE:a=E9\r\nEND:VCARD",
        b"BEGIN:VCARD\r\nNOTE;ENCODING=QUOTED-PRINTABLE:=FF=FE\r\nEND:VCARD",
    ],
)
def test_garbage_is_an_invalid_card(data: bytes | str) -> None:
    with pytest.raises(InvalidCard) as caught:
        parse_card(data)
    assert caught.value.reason


def assert_foreseen(exc: InvalidCard) -> None:
    # parse_card turns any exception into InvalidCard as a last resort, chaining it; a chained
    # cause means the reader met input it did not expect, which these tests exist to find.
    assert exc.__cause__ is None, f"unforeseen {exc.__cause__!r}"


@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
@settings(max_examples=300)
def test_any_input_parses_or_is_an_invalid_card(data: bytes | str) -> None:
    try:
        parse_card(data)
    except InvalidCard as exc:
        assert_foreseen(exc)


_VCARD_ALPHABET = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"
)


@st.composite
def card_lines(draw: st.DrawFn) -> str:
    """Lines that look like vCard properties, to reach past the syntax checks."""
    name = draw(
        st.sampled_from(
            ["N", "FN", "TEL", "EMAIL", "ADR", "BDAY", "PHOTO", "IMPP", "X-AIM", "ORG", "URL"]
        )
    )
    group = draw(st.sampled_from(["", "item1.", "item2."]))
    params = draw(st.sampled_from(["", ";TYPE=work", ";ENCODING=b", ";TYPE=x;VALUE=uri", ";PREF"]))
    value = draw(st.text(alphabet=_VCARD_ALPHABET, max_size=40))
    return f"{group}{name}{params}:{value}"


@given(st.lists(card_lines(), max_size=8))
@settings(max_examples=300)
def test_card_like_input_parses_or_is_an_invalid_card(lines: list[str]) -> None:
    text = "\r\n".join(["BEGIN:VCARD", "VERSION:3.0", *lines, "END:VCARD"])
    try:
        parse_card(text)
    except InvalidCard as exc:
        assert_foreseen(exc)


# --- any fields survive render -> parse --------------------------------------------------

_TEXT = st.text(alphabet=_VCARD_ALPHABET, min_size=1, max_size=30).filter(
    lambda s: s == s.strip() and s.strip()
)
_OPTIONAL_TEXT = st.none() | _TEXT
# An EMAIL written as a mailto: URI (vCard 4) is read as the bare address, by design.
_EMAIL = _TEXT.filter(lambda s: not s.lower().startswith("mailto:"))
# Likewise a TEL written as a tel: URI is read as the bare number.
_PHONE = _TEXT.filter(lambda s: not s.lower().startswith("tel:"))
_NOTES = st.none() | st.lists(_TEXT, min_size=1, max_size=3).map("\n".join)
# Types read from a card are lowercase (TYPE is case-insensitive), so only those round-trip.
_CUSTOM_TYPE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz _-", min_size=1, max_size=12).filter(
    lambda s: s == s.strip()
)


def _types(*known: str) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from(known) | _CUSTOM_TYPE


_FIELDS = st.builds(
    ContactFields,
    given_name=_OPTIONAL_TEXT,
    middle_name=_OPTIONAL_TEXT,
    surname=_OPTIONAL_TEXT,
    suffix=_OPTIONAL_TEXT,
    nickname=_OPTIONAL_TEXT,
    birthday=st.none() | st.dates(),
    company_name=_OPTIONAL_TEXT,
    job_title=_OPTIONAL_TEXT,
    manager_name=_OPTIONAL_TEXT,
    office_location=_OPTIONAL_TEXT,
    notes=_NOTES,
    emails=st.lists(
        st.builds(Email, _types("work", "personal", "other"), _EMAIL), max_size=3, unique=True
    ).map(tuple),
    im_addresses=st.lists(
        st.builds(
            IMAddress,
            _types("gtalk", "aim", "yahoo", "lync", "skype", "qq", "msn", "icq", "jabber"),
            _TEXT,
        ),
        max_size=3,
        unique=True,
    ).map(tuple),
    phone_numbers=st.lists(
        st.builds(
            PhoneNumber,
            _types(
                "business",
                "home",
                "mobile",
                "pager",
                "business_fax",
                "home_fax",
                "organization_main",
                "assistant",
                "radio",
                "car",
                "other",
            ),
            _PHONE,
        ),
        max_size=3,
        unique=True,
    ).map(tuple),
    physical_addresses=st.lists(
        st.builds(
            PhysicalAddress,
            _types("work", "home", "other"),
            _TEXT,
            _OPTIONAL_TEXT,
            _OPTIONAL_TEXT,
            _OPTIONAL_TEXT,
            _OPTIONAL_TEXT,
        ),
        max_size=2,
        unique=True,
    ).map(tuple),
    web_pages=st.lists(
        st.builds(WebPage, _types("profile", "blog", "homepage", "work"), _TEXT),
        max_size=2,
        unique=True,
    ).map(tuple),
)


@given(_FIELDS, st.sampled_from(["3.0", "4.0"]))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_fields_survive_render_and_parse(fields: ContactFields, version: str) -> None:
    assert parse_card(render_card(fields, uid="u", version=version)).fields == fields


@given(_FIELDS, st.sampled_from(ALL_FIXTURES))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_any_fields_written_over_a_real_card_read_back(fields: ContactFields, name: str) -> None:
    base = fixture(name)

    out = render_card(fields, uid="u", base=base)

    assert parse_card(out).fields == fields
    assert parse_card(out).uid == parse_card(base).uid


def test_text_that_mentions_quoted_printable_is_not_decoded_as_such() -> None:
    fields = ContactFields(notes="see ENCODING=QUOTED-PRINTABLE:\nand a line ending in =")

    assert parse_card(render_card(fields, uid="u")).fields == fields
