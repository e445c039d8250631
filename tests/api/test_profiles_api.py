"""Provider profiles over HTTP: refused writes, their error body, and /account/capabilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rolodex.connectors.registry import catalog
from rolodex.domain.profiles import (
    MAX_LIST_ITEMS,
    MAX_NOTES_LENGTH,
    MAX_SCALAR_LENGTH,
    PROVIDERS,
    profile_for,
)
from tests.conftest import ApiAccount, App


def emails(count: int, kind: str | None = None) -> list[dict[str, Any]]:
    return [{"type": kind, "email": f"p{n}@example.com"} for n in range(count)]


def phone(kind: str | None, number: str = "+1 415 555 0100") -> dict[str, Any]:
    return {"type": kind, "number": number}


def address(kind: str | None) -> dict[str, Any]:
    return {"type": kind, "street_address": "1 Main St", "city": "Springfield"}


def violation(field: str, rule: str, message: str) -> dict[str, str]:
    return {"field": field, "rule": rule, "message": message}


def _generic(label: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A body breaking only the bounds every provider shares, and what it must answer."""
    body = {
        "surname": "s" * (MAX_SCALAR_LENGTH + 1),
        "notes": "n" * (MAX_NOTES_LENGTH + 1),
        "im_addresses": [{"type": None, "im_address": f"im{n}"} for n in range(MAX_LIST_ITEMS + 1)],
    }
    return body, [
        violation(
            "surname",
            "max_length",
            f"{label} contacts accept at most 1000 characters in surname; got 1001",
        ),
        violation(
            "notes",
            "max_length",
            f"{label} contacts accept at most 10000 characters in notes; got 10001",
        ),
        violation(
            "im_addresses",
            "max_items",
            f"{label} contacts accept at most 100 IM addresses; got 101",
        ),
    ]


# For each provider: a body that breaks several of its rules, and every violation it must
# report, in order.
REFUSED: dict[str, tuple[dict[str, Any], list[dict[str, str]]]] = {
    "exchange": (
        {
            "given_name": "Ada",
            "notes": "private",
            "emails": emails(4),
            "phone_numbers": [
                phone(None),
                phone("other fax"),
                phone("home"),
                phone("Home"),
                phone("home"),
            ],
            "physical_addresses": [address("vacation")],
            "web_pages": [
                {"type": None, "url": "https://a.example"},
                {"type": None, "url": "https://b.example"},
            ],
        },
        [
            violation("notes", "unsupported_field", "Exchange contacts have no notes field"),
            violation(
                "emails", "max_items", "Exchange contacts accept at most 3 email addresses; got 4"
            ),
            violation(
                "phone_numbers[0].type", "type_required", "Exchange phone numbers need a type"
            ),
            violation(
                "phone_numbers[1].type",
                "type_not_allowed",
                "Exchange does not accept phone numbers of type 'other fax'",
            ),
            violation(
                "phone_numbers",
                "max_per_type",
                "Exchange contacts accept at most 2 phone numbers of type 'home'; got 3",
            ),
            violation(
                "physical_addresses[0].type",
                "type_not_allowed",
                "Exchange does not accept addresses of type 'vacation'",
            ),
            violation(
                "web_pages", "max_items", "Exchange contacts accept at most 1 web page; got 2"
            ),
        ],
    ),
    "microsoft": (
        {
            "emails": emails(4, "work"),
            "phone_numbers": [phone("pager"), phone("mobile"), phone("cell")],
            "physical_addresses": [address("work"), address("business")],
        },
        [
            violation(
                "emails",
                "max_items",
                "Microsoft 365 contacts accept at most 3 email addresses; got 4",
            ),
            violation(
                "phone_numbers[0].type",
                "type_not_allowed",
                "Microsoft 365 does not accept phone numbers of type 'pager'",
            ),
            violation(
                "phone_numbers",
                "max_per_type",
                "Microsoft 365 contacts accept at most 1 phone number of type 'mobile'; got 2",
            ),
            violation(
                "physical_addresses",
                "max_per_type",
                "Microsoft 365 contacts accept at most 1 address of type 'work'; got 2",
            ),
        ],
    ),
    "google": (
        {
            "given_name": "g" * (MAX_SCALAR_LENGTH + 1),
            "phone_numbers": [phone("mobile"), phone("google_voice"), phone("Bat phone")],
        },
        [
            violation(
                "given_name",
                "max_length",
                "Google contacts accept at most 1000 characters in given_name; got 1001",
            ),
            violation(
                "phone_numbers[1].type",
                "type_not_allowed",
                "Google does not accept phone numbers of type 'google_voice'",
            ),
            violation(
                "phone_numbers[2].type",
                "type_not_allowed",
                "Google does not accept phone numbers of type 'Bat phone'",
            ),
        ],
    ),
    "carddav": _generic("CardDAV"),
    "local": _generic("Rolodex"),
}

# A contact each provider accepts, written with the spellings clients really send.
ACCEPTED: dict[str, dict[str, Any]] = {
    "exchange": {
        "given_name": "Ada",
        "emails": emails(2, "Personal") + emails(1),
        "phone_numbers": [phone("Business Fax"), phone("work"), phone("HOME"), phone("home")],
        "physical_addresses": [address("Business"), address("home")],
        "web_pages": [{"type": None, "url": "https://a.example"}],
    },
    "microsoft": {
        "given_name": "Ada",
        "notes": "Graph keeps notes",
        "emails": emails(3),
        "phone_numbers": [phone("work"), phone("business"), phone("Mobile")],
        "physical_addresses": [address("business"), address("other")],
    },
    "google": {
        "given_name": "Ada",
        "phone_numbers": [phone("workFax"), phone("main"), phone("other"), phone("otherFax")],
        "emails": emails(5, "any label"),
    },
    "carddav": {"given_name": "Ada", "phone_numbers": [phone("tty/tdd"), phone("x-bat-phone")]},
    "local": {"given_name": "Ada", "phone_numbers": [phone("google_voice"), phone(None)]},
}


NewAccount = Callable[[str], ApiAccount]


@pytest.fixture
def account_of(app: App) -> NewAccount:
    """A fresh account of a provider: a sandbox, so its contacts live only in Rolodex."""

    def make(provider: str) -> ApiAccount:
        return app.new_account(provider=provider)

    return make


def assert_refused(response: httpx.Response, expected: list[dict[str, str]]) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "invalid_request_error"
    assert body["violations"] == expected
    assert body["message"] == "; ".join(v["message"] for v in expected)


def test_every_provider_has_cases() -> None:
    assert set(REFUSED) == set(PROVIDERS) == set(ACCEPTED)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_accepted_contact_is_stored_with_the_types_as_sent(
    account_of: NewAccount, provider: str
) -> None:
    api = account_of(provider)
    assert api.account.sandbox == (provider != "local")
    created = api.client.post("/contacts", json=ACCEPTED[provider])
    assert created.status_code == 200, created.text
    sent = [p["type"] for p in ACCEPTED[provider]["phone_numbers"]]
    assert [p["type"] for p in created.json()["phone_numbers"]] == sent


@pytest.mark.parametrize("provider", PROVIDERS)
def test_refused_create_reports_every_violation_and_stores_nothing(
    account_of: NewAccount, provider: str
) -> None:
    api = account_of(provider)
    body, expected = REFUSED[provider]
    assert_refused(api.client.post("/contacts", json=body), expected)
    assert api.client.get("/contacts", params={"view": "count"}).json() == {"count": 0}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_refused_update_leaves_the_contact_unchanged(account_of: NewAccount, provider: str) -> None:
    api = account_of(provider)
    created = api.client.post("/contacts", json=ACCEPTED[provider])
    assert created.status_code == 200, created.text
    url = f"/contacts/{created.json()['id']}"
    before = api.client.get(url)
    assert before.status_code == 200
    body, expected = REFUSED[provider]
    assert_refused(api.client.put(url, json=body), expected)
    after = api.client.get(url)
    assert after.content == before.content


def test_update_is_judged_on_the_contact_it_would_produce(account_of: NewAccount) -> None:
    # The stored contact already has two home phones; a PUT that adds only a third one
    # (keeping the rest) breaks the slot limit although the body alone would not.
    api = account_of("exchange")
    created = api.client.post("/contacts", json={"phone_numbers": [phone("home"), phone("home")]})
    url = f"/contacts/{created.json()['id']}"
    before = api.client.get(url).content
    third = {"phone_numbers": [phone("home"), phone("home"), phone("home", "+1 415 555 0101")]}
    assert_refused(
        api.client.put(url, json=third),
        [
            violation(
                "phone_numbers",
                "max_per_type",
                "Exchange contacts accept at most 2 phone numbers of type 'home'; got 3",
            )
        ],
    )
    assert api.client.get(url).content == before
    # Notes are refused on an update too, even when nothing else changes.
    assert_refused(
        api.client.put(url, json={"notes": "n"}),
        [violation("notes", "unsupported_field", "Exchange contacts have no notes field")],
    )
    assert api.client.get(url).content == before


@pytest.mark.parametrize("provider", PROVIDERS)
def test_capabilities_are_the_profile(account_of: NewAccount, provider: str) -> None:
    api = account_of(provider)
    response = api.client.get("/account/capabilities")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.pop("sandbox") is api.account.sandbox
    connection = body.pop("connection")
    assert body == profile_for(provider).capabilities()
    # How an account of the provider connects, from its registry entry (none: local, and
    # providers Rolodex only emulates the rules of).
    spec = catalog().get(provider)
    if spec is None:
        assert connection is None
    else:
        assert connection["poll_interval"] == spec.poll_interval
        assert [s["name"] for s in connection["settings"]] == [s.name for s in spec.settings]
        assert {s["name"] for s in connection["settings"] if s["secret"]} == spec.secret_names
