"""Provider profiles: every rule of every provider, its exact message, and capabilities()."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from rolodex.domain.contact import (
    LIST_FIELDS,
    SCALAR_FIELDS,
    ContactFields,
    Email,
    IMAddress,
    ListItem,
    PhoneNumber,
    PhysicalAddress,
    WebPage,
)
from rolodex.domain.errors import Violation
from rolodex.domain.profiles import (
    MAX_ITEM_LENGTH,
    MAX_LIST_ITEMS,
    MAX_NOTES_LENGTH,
    MAX_SCALAR_LENGTH,
    PROVIDERS,
    GroupModel,
    ListRule,
    Profile,
    profile_for,
)

EXCHANGE = profile_for("exchange")
MICROSOFT = profile_for("microsoft")
GOOGLE = profile_for("google")


def item(name: str, kind: str | None, n: int = 0) -> ListItem:
    """A valid item of list ``name`` with type ``kind``; ``n`` keeps values distinct."""
    if name == "emails":
        return Email(kind, f"person{n}@example.com")
    if name == "im_addresses":
        return IMAddress(kind, f"person{n}")
    if name == "phone_numbers":
        return PhoneNumber(kind, f"+1 415 555 {n:04d}")
    if name == "physical_addresses":
        return PhysicalAddress(kind, street_address=f"{n} Main St", city="Springfield")
    if name == "web_pages":
        return WebPage(kind, f"https://example.com/{n}")
    raise AssertionError(name)


def make(**values: Any) -> ContactFields:
    """ContactFields with field names chosen at run time (parametrised tests)."""
    return ContactFields(**values)


def with_list(name: str, kinds: list[str | None]) -> ContactFields:
    return make(**{name: tuple(item(name, k, n) for n, k in enumerate(kinds))})


def phones(*kinds: str | None) -> ContactFields:
    return with_list("phone_numbers", list(kinds))


def messages(found: list[Violation]) -> list[str]:
    return [v.message for v in found]


def only(found: list[Violation]) -> Violation:
    assert len(found) == 1, found
    return found[0]


# -- the registry ---------------------------------------------------------------------------


def test_providers_are_the_five_in_their_order() -> None:
    assert PROVIDERS == ("local", "google", "microsoft", "exchange", "carddav")
    assert [profile_for(p).provider for p in PROVIDERS] == list(PROVIDERS)


def test_unknown_provider_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        profile_for("myspace")


@pytest.mark.parametrize(
    ("provider", "label", "max_groups"),
    [
        ("local", "Rolodex", None),
        ("google", "Google", None),
        ("microsoft", "Microsoft 365", 1),
        ("exchange", "Exchange", 1),
        ("carddav", "CardDAV", None),
    ],
)
def test_public_attributes(provider: str, label: str, max_groups: int | None) -> None:
    profile = profile_for(provider)
    assert profile.label == label
    assert profile.max_groups_per_contact == max_groups
    # CardDAV groups are names on cards: nothing to write by itself.
    assert profile.groups_writable is (provider != "carddav")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_empty_and_an_ordinary_contact_are_accepted_everywhere(provider: str) -> None:
    profile = profile_for(provider)
    ordinary = ContactFields(
        given_name="Ada",
        surname="Lovelace",
        birthday=dt.date(1815, 12, 10),
        company_name="Analytical Engines",
        emails=(Email("work", "ada@example.com"),),
        phone_numbers=(PhoneNumber("mobile", "+44 20 7946 0000"),),
        physical_addresses=(PhysicalAddress("home", city="London", country="UK"),),
        web_pages=(WebPage(None, "https://example.com"),),
        im_addresses=(IMAddress("jabber", "ada@jabber.example"),),
    )
    assert profile.violations(ContactFields()) == []
    assert profile.violations(ordinary, group_count=1) == []


def test_a_profile_naming_an_unknown_field_fails_at_import() -> None:
    groups = GroupModel("labels", None, False)
    with pytest.raises(ValueError, match="unknown fields"):
        Profile("x", "X", 9, groups, lists={"email": ListRule(max_items=3)})
    with pytest.raises(ValueError, match="unknown fields"):
        Profile("x", "X", 9, groups, unsupported=frozenset({"note"}))


def test_a_profile_with_an_ambiguous_type_spelling_fails_at_import() -> None:
    groups = GroupModel("labels", None, False)
    # "work" is the phone alias of "business", so listing both makes "work" mean two types.
    rule = ListRule(types={"business": 1, "Work": 1})
    with pytest.raises(ValueError, match="means two types"):
        Profile("x", "X", 9, groups, lists={"phone_numbers": rule})


# -- Exchange -------------------------------------------------------------------------------


def test_exchange_phone_numbers_need_a_type() -> None:
    found = EXCHANGE.violations(phones("mobile", None))
    assert found == [
        Violation("phone_numbers[1].type", "type_required", "Exchange phone numbers need a type")
    ]


@pytest.mark.parametrize(
    "kind",
    [
        "other",
        "Other",
        "other_fax",
        "other fax",
        "Other Fax",
        "otherFax",
        "callback",
        "Callback",
        "telex",
        "tty",
        "tdd",
        "tty/tdd",
        "TTY/TDD",
        "ttytdd",
        "tty_tdd",
        "google_voice",
        "my own type",
    ],
)
def test_exchange_refuses_phone_types_it_has_no_slot_for(kind: str) -> None:
    found = only(EXCHANGE.violations(phones("mobile", kind)))
    assert found == Violation(
        "phone_numbers[1].type",
        "type_not_allowed",
        f"Exchange does not accept phone numbers of type '{kind}'",
    )


@pytest.mark.parametrize(
    ("kinds", "message"),
    [
        (
            ["home", "home", "home"],
            "Exchange contacts accept at most 2 phone numbers of type 'home'; got 3",
        ),
        (
            ["business", "Business", "work"],
            "Exchange contacts accept at most 2 phone numbers of type 'business'; got 3",
        ),
        (
            ["mobile", "cell"],
            "Exchange contacts accept at most 1 phone number of type 'mobile'; got 2",
        ),
        (
            ["business_fax", "Business Fax"],
            "Exchange contacts accept at most 1 phone number of type 'business_fax'; got 2",
        ),
        (
            ["home_fax", "homeFax"],
            "Exchange contacts accept at most 1 phone number of type 'home_fax'; got 2",
        ),
        (
            ["organization_main", "main"],
            "Exchange contacts accept at most 1 phone number of type 'organization_main'; got 2",
        ),
        (
            ["pager", "page"],
            "Exchange contacts accept at most 1 phone number of type 'pager'; got 2",
        ),
        (
            ["assistant", "assistant"],
            "Exchange contacts accept at most 1 phone number of type 'assistant'; got 2",
        ),
        (
            ["radio", "RADIO"],
            "Exchange contacts accept at most 1 phone number of type 'radio'; got 2",
        ),
        (["car", "car"], "Exchange contacts accept at most 1 phone number of type 'car'; got 2"),
    ],
)
def test_exchange_phone_slots_per_type(kinds: list[str], message: str) -> None:
    found = only(EXCHANGE.violations(phones(*kinds)))
    assert found == Violation("phone_numbers", "max_per_type", message)
    # One fewer fits: the limit is exactly the slot count, not one below it.
    assert EXCHANGE.violations(phones(*kinds[:-1])) == []


def test_exchange_accepts_every_phone_slot_filled_once() -> None:
    full = phones(
        "business",
        "business",
        "home",
        "home",
        "mobile",
        "pager",
        "business_fax",
        "home_fax",
        "organization_main",
        "assistant",
        "radio",
        "car",
    )
    assert EXCHANGE.violations(full) == []
    assert EXCHANGE.capabilities()["lists"]["phone_numbers"]["max_items"] == 12


def test_exchange_emails() -> None:
    assert EXCHANGE.violations(with_list("emails", [None, "work", "Personal"])) == []
    assert messages(EXCHANGE.violations(with_list("emails", [None, None, None, "work"]))) == [
        "Exchange contacts accept at most 3 email addresses; got 4"
    ]
    found = only(EXCHANGE.violations(with_list("emails", ["work", "other"])))
    assert found == Violation(
        "emails[1].type",
        "type_not_allowed",
        "Exchange does not accept email addresses of type 'other'",
    )


def test_exchange_im_addresses_and_web_pages() -> None:
    assert EXCHANGE.violations(with_list("im_addresses", [None, "skype", "anything"])) == []
    assert only(EXCHANGE.violations(with_list("im_addresses", [None] * 4))) == Violation(
        "im_addresses", "max_items", "Exchange contacts accept at most 3 IM addresses; got 4"
    )
    assert EXCHANGE.violations(with_list("web_pages", [None])) == []
    assert only(EXCHANGE.violations(with_list("web_pages", [None, "blog"]))) == Violation(
        "web_pages", "max_items", "Exchange contacts accept at most 1 web page; got 2"
    )


def test_exchange_has_no_notes() -> None:
    assert only(EXCHANGE.violations(ContactFields(notes="met at the fair"))) == Violation(
        "notes", "unsupported_field", "Exchange contacts have no notes field"
    )
    # Too long as well, but that is beside the point when the field does not exist at all.
    long_notes = ContactFields(notes="x" * (MAX_NOTES_LENGTH + 1))
    assert [v.rule for v in EXCHANGE.violations(long_notes)] == ["unsupported_field"]


def test_exchange_addresses_one_per_type_and_a_type_required() -> None:
    name = "physical_addresses"
    assert EXCHANGE.violations(with_list(name, ["home", "work", "other"])) == []
    assert EXCHANGE.violations(with_list(name, ["Business"])) == []
    assert EXCHANGE.violations(with_list(name, ["work", "business"])) == [
        Violation(
            name, "max_per_type", "Exchange contacts accept at most 1 address of type 'work'; got 2"
        )
    ]
    assert EXCHANGE.violations(with_list(name, ["home", "vacation", None])) == [
        Violation(
            "physical_addresses[1].type",
            "type_not_allowed",
            "Exchange does not accept addresses of type 'vacation'",
        ),
        Violation("physical_addresses[2].type", "type_required", "Exchange addresses need a type"),
    ]


def test_exchange_one_folder_per_contact() -> None:
    assert EXCHANGE.violations(ContactFields(), group_count=1) == []
    assert EXCHANGE.violations(ContactFields(), group_count=2) == [
        Violation("groups", "max_groups", "Exchange contacts can be in at most 1 folder; got 2")
    ]


def test_exchange_reports_every_violation_of_one_write() -> None:
    fields = ContactFields(
        given_name="g" * (MAX_SCALAR_LENGTH + 1),
        notes="private",
        emails=tuple(Email(None, f"p{n}@example.com") for n in range(4)),
        phone_numbers=(
            PhoneNumber(None, "1"),
            PhoneNumber("other", "2"),
            PhoneNumber("home", "3"),
            PhoneNumber("home", "4"),
            PhoneNumber("Home", "5"),
            PhoneNumber("tty/tdd", "6"),
        ),
        web_pages=(WebPage(None, "https://a.example"), WebPage("work", "https://b.example")),
    )
    assert EXCHANGE.violations(fields, group_count=3) == [
        Violation(
            "given_name",
            "max_length",
            "Exchange contacts accept at most 1000 characters in given_name; got 1001",
        ),
        Violation("notes", "unsupported_field", "Exchange contacts have no notes field"),
        Violation(
            "emails", "max_items", "Exchange contacts accept at most 3 email addresses; got 4"
        ),
        Violation("phone_numbers[0].type", "type_required", "Exchange phone numbers need a type"),
        Violation(
            "phone_numbers[1].type",
            "type_not_allowed",
            "Exchange does not accept phone numbers of type 'other'",
        ),
        Violation(
            "phone_numbers[5].type",
            "type_not_allowed",
            "Exchange does not accept phone numbers of type 'tty/tdd'",
        ),
        Violation(
            "phone_numbers",
            "max_per_type",
            "Exchange contacts accept at most 2 phone numbers of type 'home'; got 3",
        ),
        Violation("web_pages", "max_items", "Exchange contacts accept at most 1 web page; got 2"),
        Violation("groups", "max_groups", "Exchange contacts can be in at most 1 folder; got 3"),
    ]


# -- Microsoft 365 (Graph v1.0) -------------------------------------------------------------


def test_microsoft_phone_slots() -> None:
    assert MICROSOFT.violations(phones("business", "work", "home", "Home", "mobile")) == []
    assert MICROSOFT.violations(phones("business", "business", "business")) == [
        Violation(
            "phone_numbers",
            "max_per_type",
            "Microsoft 365 contacts accept at most 2 phone numbers of type 'business'; got 3",
        )
    ]
    assert messages(MICROSOFT.violations(phones("home", "home", "home", "mobile", "Mobile"))) == [
        "Microsoft 365 contacts accept at most 2 phone numbers of type 'home'; got 3",
        "Microsoft 365 contacts accept at most 1 phone number of type 'mobile'; got 2",
    ]


@pytest.mark.parametrize(
    "kind",
    [
        "pager",
        "business_fax",
        "home_fax",
        "organization_main",
        "assistant",
        "radio",
        "other",
        "car",
    ],
)
def test_microsoft_refuses_phone_types_graph_v1_cannot_store(kind: str) -> None:
    assert MICROSOFT.violations(phones(kind)) == [
        Violation(
            "phone_numbers[0].type",
            "type_not_allowed",
            f"Microsoft 365 does not accept phone numbers of type '{kind}'",
        )
    ]


def test_microsoft_phone_numbers_need_a_type() -> None:
    assert messages(MICROSOFT.violations(phones(None))) == [
        "Microsoft 365 phone numbers need a type"
    ]


def test_microsoft_emails_ims_web_pages() -> None:
    assert MICROSOFT.violations(with_list("emails", [None, "work", "whatever"])) == []
    assert messages(MICROSOFT.violations(with_list("emails", ["work"] * 4))) == [
        "Microsoft 365 contacts accept at most 3 email addresses; got 4"
    ]
    assert messages(MICROSOFT.violations(with_list("im_addresses", ["skype"] * 4))) == [
        "Microsoft 365 contacts accept at most 3 IM addresses; got 4"
    ]
    assert messages(MICROSOFT.violations(with_list("web_pages", ["work", "blog"]))) == [
        "Microsoft 365 contacts accept at most 1 web page; got 2"
    ]


def test_microsoft_addresses() -> None:
    name = "physical_addresses"
    assert MICROSOFT.violations(with_list(name, ["home", "business", "other"])) == []
    assert MICROSOFT.violations(with_list(name, ["work", "Work"])) == [
        Violation(
            name,
            "max_per_type",
            "Microsoft 365 contacts accept at most 1 address of type 'work'; got 2",
        )
    ]
    assert messages(MICROSOFT.violations(with_list(name, ["holiday", None]))) == [
        "Microsoft 365 does not accept addresses of type 'holiday'",
        "Microsoft 365 addresses need a type",
    ]


def test_microsoft_keeps_notes_and_one_folder() -> None:
    assert MICROSOFT.violations(ContactFields(notes="n" * MAX_NOTES_LENGTH)) == []
    assert MICROSOFT.violations(ContactFields(), group_count=2) == [
        Violation(
            "groups", "max_groups", "Microsoft 365 contacts can be in at most 1 folder; got 2"
        )
    ]


# -- Google ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "business",
        "work",
        "Work",
        "home",
        "mobile",
        "pager",
        "business_fax",
        "workFax",
        "home_fax",
        "homeFax",
        "organization_main",
        "main",
        "other",
        "otherFax",
        "other fax",
        "workMobile",
        "work_pager",
        None,
    ],
)
def test_google_accepts_its_phone_types(kind: str | None) -> None:
    assert GOOGLE.violations(phones(kind)) == []


@pytest.mark.parametrize(
    "kind", ["google_voice", "googleVoice", "Google Voice", "assistant", "radio", "car", "my own"]
)
def test_google_refuses_google_voice_and_custom_phone_types(kind: str) -> None:
    assert GOOGLE.violations(phones("mobile", kind)) == [
        Violation(
            "phone_numbers[1].type",
            "type_not_allowed",
            f"Google does not accept phone numbers of type '{kind}'",
        )
    ]


def test_google_has_no_per_type_limits_and_free_types_elsewhere() -> None:
    assert GOOGLE.violations(phones(*["mobile"] * 10)) == []
    for name in ("emails", "im_addresses", "physical_addresses", "web_pages"):
        assert GOOGLE.violations(with_list(name, ["custom label", None, "other"])) == []


def test_google_groups_are_labels_without_limit() -> None:
    assert GOOGLE.violations(ContactFields(), group_count=50) == []
    assert GOOGLE.capabilities()["groups"] == {
        "model": "labels",
        "max_per_contact": None,
        "nested": False,
        "writable": True,
        "fixed": ["Coworkers", "Family", "Friends", "Starred"],
    }


# -- CardDAV and local ----------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["carddav", "local"])
def test_vcard_providers_take_any_type(provider: str) -> None:
    profile = profile_for(provider)
    for name in LIST_FIELDS:
        assert profile.violations(with_list(name, ["x-custom", None, "other", "other"])) == []
    assert profile.violations(phones("tty/tdd", "google_voice", "callback")) == []
    assert profile.violations(ContactFields(notes="fine"), group_count=20) == []


# -- generic bounds, on every provider ------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", [n for n in SCALAR_FIELDS if n != "notes"])
def test_scalar_length_bound(provider: str, name: str) -> None:
    profile = profile_for(provider)
    assert profile.violations(make(**{name: "a" * MAX_SCALAR_LENGTH})) == []
    found = profile.violations(make(**{name: "a" * (MAX_SCALAR_LENGTH + 1)}))
    assert found == [
        Violation(
            name,
            "max_length",
            f"{profile.label} contacts accept at most {MAX_SCALAR_LENGTH} characters in {name}; "
            f"got {MAX_SCALAR_LENGTH + 1}",
        )
    ]


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "exchange"])
def test_notes_length_bound(provider: str) -> None:
    profile = profile_for(provider)
    assert profile.violations(ContactFields(notes="n" * MAX_NOTES_LENGTH)) == []
    assert profile.violations(ContactFields(notes="n" * (MAX_NOTES_LENGTH + 1))) == [
        Violation(
            "notes",
            "max_length",
            f"{profile.label} contacts accept at most {MAX_NOTES_LENGTH} characters in notes; "
            f"got {MAX_NOTES_LENGTH + 1}",
        )
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_list_length_bound_on_free_lists(provider: str) -> None:
    profile = profile_for(provider)
    # IM addresses take any type on every provider, so only the count can be at fault.
    found = profile.violations(with_list("im_addresses", [None] * (MAX_LIST_ITEMS + 1)))
    limit = profile.capabilities()["lists"]["im_addresses"]["max_items"]
    assert limit <= MAX_LIST_ITEMS
    assert found == [
        Violation(
            "im_addresses",
            "max_items",
            f"{profile.label} contacts accept at most {limit} IM addresses; "
            f"got {MAX_LIST_ITEMS + 1}",
        )
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_local_google_carddav_hold_exactly_the_generic_list_bound(provider: str) -> None:
    profile = profile_for(provider)
    expected = MAX_LIST_ITEMS if provider in ("local", "google", "carddav") else 3
    assert profile.max_items("emails") == expected
    assert profile.violations(with_list("emails", [None] * expected)) == []


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("name", "slot", "sample"),
    [
        ("emails", "email", Email(None, "x")),
        ("im_addresses", "im_address", IMAddress(None, "x")),
        ("phone_numbers", "number", PhoneNumber("mobile", "x")),
        ("physical_addresses", "street_address", PhysicalAddress("home", street_address="x")),
        ("physical_addresses", "city", PhysicalAddress("home", city="x")),
        ("physical_addresses", "postal_code", PhysicalAddress("home", postal_code="x")),
        ("physical_addresses", "state", PhysicalAddress("home", state="x")),
        ("physical_addresses", "country", PhysicalAddress("home", country="x")),
        ("web_pages", "url", WebPage(None, "x")),
    ],
)
def test_item_value_length_bound(provider: str, name: str, slot: str, sample: ListItem) -> None:
    profile = profile_for(provider)
    at_limit = dataclasses.replace(sample, **{slot: "v" * MAX_ITEM_LENGTH})  # type: ignore[arg-type]
    over = dataclasses.replace(sample, **{slot: "v" * (MAX_ITEM_LENGTH + 1)})  # type: ignore[arg-type]
    assert profile.violations(make(**{name: (at_limit,)})) == []
    assert profile.violations(make(**{name: (over,)})) == [
        Violation(
            f"{name}[0].{slot}",
            "max_length",
            f"{profile.label} contacts accept at most {MAX_ITEM_LENGTH} characters in "
            f"{name}[0].{slot}; got {MAX_ITEM_LENGTH + 1}",
        )
    ]


def test_an_overlong_custom_type_is_bounded_too() -> None:
    kind = "t" * (MAX_ITEM_LENGTH + 1)
    assert [v.field for v in profile_for("carddav").violations(phones(kind))] == [
        "phone_numbers[0].type"
    ]


def test_blank_type_counts_as_no_type() -> None:
    # ContactFields can be built without the wire parser, which already turns "" into None.
    assert messages(EXCHANGE.violations(phones("  "))) == ["Exchange phone numbers need a type"]


# -- capabilities() and violations() agree --------------------------------------------------
# Every case below is generated from capabilities(), so a rule added to a profile is
# covered here without a new test, and a capability that is not enforced fails.


def _capability_cases() -> list[Any]:
    cases: list[Any] = []
    for provider in PROVIDERS:
        lists = profile_for(provider).capabilities()["lists"]
        for name, spec in lists.items():
            for kind, rule in (spec["types"]["allowed"] or {}).items():
                cases.append(
                    pytest.param(provider, name, kind, rule["max"], id=f"{provider}-{name}-{kind}")
                )
    return cases


@pytest.mark.parametrize(("provider", "name", "kind", "limit"), _capability_cases())
def test_each_allowed_type_holds_exactly_its_capacity(
    provider: str, name: str, kind: str, limit: int | None
) -> None:
    profile = profile_for(provider)
    max_items = profile.capabilities()["lists"][name]["max_items"]
    fits = min(limit, max_items) if limit is not None else max_items
    assert profile.violations(with_list(name, [kind] * fits)) == []
    over = profile.violations(with_list(name, [kind] * (fits + 1)))
    expected_rule = "max_per_type" if limit is not None and limit < max_items else "max_items"
    assert [v.rule for v in over] == [expected_rule]


@pytest.mark.parametrize(("provider", "name", "kind", "limit"), _capability_cases())
def test_each_alias_counts_as_its_type(
    provider: str, name: str, kind: str, limit: int | None
) -> None:
    profile = profile_for(provider)
    aliases = profile.capabilities()["lists"][name]["types"]["allowed"][kind]["aliases"]
    for alias in aliases:
        for spelling in (alias, alias.upper(), alias.replace("_", " ")):
            assert profile.violations(with_list(name, [spelling])) == []
            if limit is not None:
                mixed = profile.violations(with_list(name, [kind] * limit + [spelling]))
                assert "max_per_type" in [v.rule for v in mixed] or limit >= profile.max_items(name)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_type_rules_in_capabilities_are_enforced(provider: str) -> None:
    profile = profile_for(provider)
    for name, spec in profile.capabilities()["lists"].items():
        types = spec["types"]
        null_rules = [v.rule for v in profile.violations(with_list(name, [None]))]
        assert null_rules == ([] if types["null_allowed"] else ["type_required"]), name
        custom_rules = [v.rule for v in profile.violations(with_list(name, ["zz-custom"]))]
        assert custom_rules == ([] if types["free"] else ["type_not_allowed"]), name
        assert (types["allowed"] is None) == types["free"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_items_in_capabilities_is_enforced(provider: str) -> None:
    profile = profile_for(provider)
    for name, spec in profile.capabilities()["lists"].items():
        limit = spec["max_items"]
        assert 0 < limit <= MAX_LIST_ITEMS
        # Fill with allowed types round-robin; when the slots run out before the total (a
        # provider with per-type caps), per-type violations come too, but the total is reported.
        allowed = spec["types"]["allowed"]
        kinds: list[str | None] = list(allowed) if allowed else [None]
        filled = [kinds[n % len(kinds)] for n in range(limit + 1)]
        rules = [v.rule for v in profile.violations(with_list(name, filled))]
        assert "max_items" in rules, name
        assert spec["max_value_length"] == MAX_ITEM_LENGTH


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fields_in_capabilities_are_enforced(provider: str) -> None:
    profile = profile_for(provider)
    caps = profile.capabilities()
    values: dict[str, Any] = {n: "x" for n in SCALAR_FIELDS}
    values["birthday"] = dt.date(2000, 1, 1)
    for name in LIST_FIELDS:
        values[name] = (item(name, None),)
    for name in caps["fields"]["unsupported"]:
        found = profile.violations(make(**{name: values[name]}))
        assert [(v.field, v.rule) for v in found] == [(name, "unsupported_field")]
    for name in caps["fields"]["supported"]:
        found = profile.violations(make(**{name: values[name]}))
        assert "unsupported_field" not in [v.rule for v in found]
    assert sorted(caps["fields"]["supported"] + caps["fields"]["unsupported"]) == sorted(
        [*SCALAR_FIELDS, "birthday", *LIST_FIELDS]
    )
    for name, limit in caps["max_length"].items():
        assert profile.violations(make(**{name: "a" * limit})) == []
        over = profile.violations(make(**{name: "a" * (limit + 1)}))
        assert [(v.field, v.rule) for v in over] == [(name, "max_length")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_groups_in_capabilities_are_enforced(provider: str) -> None:
    profile = profile_for(provider)
    groups = profile.capabilities()["groups"]
    assert groups["model"] in ("labels", "folders", "categories")
    assert groups["max_per_contact"] == profile.max_groups_per_contact
    assert groups["writable"] == profile.groups_writable
    limit = groups["max_per_contact"]
    if limit is None:
        assert profile.violations(ContactFields(), group_count=1000) == []
    else:
        assert profile.violations(ContactFields(), group_count=limit) == []
        found = profile.violations(ContactFields(), group_count=limit + 1)
        assert [(v.field, v.rule) for v in found] == [("groups", "max_groups")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_capabilities_are_plain_json(provider: str) -> None:
    import json

    caps = profile_for(provider).capabilities()
    assert json.loads(json.dumps(caps)) == caps
    assert caps["provider"] == provider
    assert caps["label"] == profile_for(provider).label


def test_capabilities_describe_the_exchange_rules() -> None:
    caps = EXCHANGE.capabilities()
    assert caps["fields"]["unsupported"] == ["notes"]
    assert "notes" not in caps["max_length"]
    assert caps["groups"] == {
        "model": "folders",
        "max_per_contact": 1,
        "nested": True,
        "writable": True,
        "fixed": [],
    }
    phones_caps = caps["lists"]["phone_numbers"]
    assert phones_caps["types"]["null_allowed"] is False
    assert phones_caps["types"]["allowed"]["home"] == {"max": 2, "aliases": []}
    assert phones_caps["types"]["allowed"]["business"] == {"max": 2, "aliases": ["work"]}
    assert "other" not in phones_caps["types"]["allowed"]
    assert caps["lists"]["emails"]["types"]["allowed"].keys() == {"work", "personal"}
    assert caps["lists"]["emails"]["max_items"] == 3
    assert caps["lists"]["web_pages"]["max_items"] == 1
    assert caps["lists"]["physical_addresses"]["max_items"] == 3
