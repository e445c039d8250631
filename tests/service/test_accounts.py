"""Connected accounts: which connection re-links an account already there."""

from __future__ import annotations

import uuid

from cryptography.fernet import Fernet

from rolodex.connectors.registry import catalog
from rolodex.service.accounts import AccountService
from rolodex.service.credentials import CredentialBox
from rolodex.store import Store


def accounts(store: Store) -> AccountService:
    # Every connection "works": what is tested is what is done with it.
    return AccountService(
        store, CredentialBox(Fernet.generate_key()), lambda _p, _s: None, catalog()
    )


def carddav(url: str, username: str, password: str) -> dict[str, str]:
    return {"url": url, "username": username, "password": password}


def test_a_carddav_account_is_re_linked_only_by_its_own_server_and_user(
    sqlite_store: Store,
) -> None:
    # The email address of a CardDAV connection is whatever the person signing in types
    # (hosted sign-in's form): it proves nothing. Re-linked by it alone, anyone with a
    # server of their own took over the account of any address, with its contacts.
    service = accounts(sqlite_store)
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    settings = carddav("https://dav.example.com/", "victim", "first")
    victim = service.connect(email, name="", provider="carddav", settings=settings)
    stolen = service.connect(
        email,
        name="",
        provider="carddav",
        settings=carddav("https://attacker.example.net/", "mallory", "x"),
    )
    assert stolen.account.id != victim.account.id
    assert service.connection(victim.account.id) == settings
    same_user = carddav("https://dav.example.com/", "victim", "second")
    again = service.connect(email, name="", provider="carddav", settings=same_user)
    assert again.account.id == victim.account.id  # a new password re-links, as before
    assert service.connection(victim.account.id) == same_user
    other_user = carddav("https://dav.example.com/", "mallory", "x")
    third = service.connect(email, name="", provider="carddav", settings=other_user)
    assert third.account.id not in (victim.account.id, stolen.account.id)
