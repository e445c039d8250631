"""The microsoft profile enforces the Exchange rules of the guide, every violation at once."""

from __future__ import annotations

from rolodex.domain.contact import ContactFields, Email, IMAddress, PhoneNumber, WebPage
from rolodex.domain.profiles import profile_for

MICROSOFT = profile_for("microsoft")


def test_every_exchange_rule_is_named_at_once() -> None:
    fields = ContactFields(
        emails=tuple(Email(None, f"e{i}@example.com") for i in range(4)),
        im_addresses=tuple(IMAddress(None, f"im{i}") for i in range(4)),
        phone_numbers=(
            *(PhoneNumber("home", f"+1 415 555 010{i}") for i in range(3)),
            *(PhoneNumber("business", f"+1 415 555 020{i}") for i in range(3)),
        ),
        web_pages=(WebPage("work", "https://a.example"), WebPage("blog", "https://b.example")),
    )
    found = {v.field for v in MICROSOFT.violations(fields)}
    assert {"emails", "im_addresses", "web_pages"} <= found
    messages = " | ".join(v.message for v in MICROSOFT.violations(fields))
    assert "3 email addresses" in messages and "3 IM addresses" in messages
    assert "2 phone numbers of type 'home'" in messages
    assert "2 phone numbers of type 'business'" in messages


def test_the_exchange_limits_are_accepted_exactly() -> None:
    fields = ContactFields(
        emails=tuple(Email(None, f"e{i}@example.com") for i in range(3)),
        im_addresses=tuple(IMAddress(None, f"im{i}") for i in range(3)),
        phone_numbers=(
            PhoneNumber("home", "+1 415 555 0101"),
            PhoneNumber("home", "+1 415 555 0102"),
            PhoneNumber("business", "+1 415 555 0201"),
            PhoneNumber("business", "+1 415 555 0202"),
            PhoneNumber("mobile", "+1 415 555 0301"),
        ),
        web_pages=(WebPage("work", "https://a.example"),),
    )
    assert MICROSOFT.violations(fields) == []


def test_a_contact_is_in_one_folder_and_its_picture_cannot_be_deleted() -> None:
    assert [v.rule for v in MICROSOFT.violations(ContactFields(), group_count=2)] == ["max_groups"]
    assert [v.rule for v in MICROSOFT.picture_delete_violations()] == ["picture_not_deletable"]
    assert MICROSOFT.capabilities()["pictures"] == {"deletable": False}
    assert profile_for("carddav").picture_delete_violations() == []
