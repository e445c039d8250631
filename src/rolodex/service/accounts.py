"""Accounts and access tokens."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import Any

from rolodex.domain.account import SYNC_RUNNING, Account
from rolodex.domain.errors import InvalidAccount, NoSuchAccount, NoSuchToken, Unauthenticated
from rolodex.domain.ids import hash_token, new_id, new_token
from rolodex.domain.profiles import PROVIDERS
from rolodex.domain.providers import ProviderCatalog
from rolodex.service.credentials import CredentialBox
from rolodex.store import Store, Tx
from rolodex.store.authepoch import AuthEpoch

# How long a process trusts a token it has already checked while no token is revoked and
# no account deleted anywhere (rolodex.store.authepoch): revocation is immediate in every
# process; this only bounds how stale the cached Account's other fields may get.
TOKEN_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class NewAccount:
    account: Account
    access_token: str


# Checks that connection settings reach the provider and the credentials work; raises
# BadCredentials or ProviderUnreachable. Given by the composition root (the connectors'
# registry), so this layer does not depend on provider protocols.
Verifier = Callable[[str, dict[str, str]], None]


# What the accounts table holds (rolodex.store.schema).
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 1000


def checked_owner(email_address: Any, name: Any) -> tuple[str, str]:
    """An account's email address and owner's name as they can be stored, else
    ``InvalidAccount``: checked before a provider is asked, not found out by the insert
    (PostgreSQL refuses NUL and what is longer than its column)."""
    if not isinstance(email_address, str):
        raise InvalidAccount("email_address must be a string")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise InvalidAccount("name must be a string")
    email_address, name = email_address.strip(), name.strip()
    if (
        not email_address
        or "@" not in email_address
        or len(email_address) > MAX_EMAIL_LENGTH
        or any(c.isspace() or _control(c) for c in email_address)
    ):
        raise InvalidAccount(f"not an email address: {email_address[:MAX_EMAIL_LENGTH]!r}")
    if len(name) > MAX_NAME_LENGTH or any(_control(c) for c in name):
        raise InvalidAccount(
            f"name must be at most {MAX_NAME_LENGTH} characters, without control characters"
        )
    return email_address, name


def _control(char: str) -> bool:
    # Cc only: joiners and other format characters belong in many names.
    return unicodedata.category(char) == "Cc"


class AccountService:
    def __init__(
        self,
        store: Store,
        credentials: CredentialBox | None = None,
        verify: Verifier | None = None,
        providers: ProviderCatalog | None = None,
    ) -> None:
        """``providers`` and ``verify`` come from the connectors' registry (the
        composition root passes them); without them accounts can live only in Rolodex."""
        self.store = store
        self.credentials = credentials
        self.verify = verify
        self.providers = providers or ProviderCatalog(())
        # token -> (when checked, auth epoch it was checked under, its account)
        self._token_cache: dict[str, tuple[float, str, Account]] = {}
        self._epoch = AuthEpoch(store)
        self._lock = Lock()

    def create(
        self,
        email_address: str,
        *,
        name: str = "",
        provider: str = "local",
        connection: dict[str, Any] | None = None,
    ) -> NewAccount:
        email_address, name = checked_owner(email_address, name)
        if provider not in PROVIDERS:
            raise InvalidAccount(
                f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}"
            )
        sealed = None
        if connection is not None:
            if self.credentials is None:
                raise InvalidAccount("no secret key configured to seal provider credentials")
            sealed = self.credentials.seal(connection)
        account = Account(
            id=new_id(),
            email_address=email_address,
            name=name,
            provider=provider,
            sandbox=provider != "local" and connection is None,
            linked_at=time.time(),
        )
        token = new_token()
        with self.store.write() as tx:
            tx.accounts.insert(account, sealed)
            tx.accounts.add_token(hash_token(token), account.id, account.linked_at)
            if account.is_connected:
                tx.accounts.schedule_sync(account.id, account.linked_at)
        return NewAccount(account, token)

    def connect(
        self, email_address: str, *, name: str, provider: str, settings: dict[str, Any]
    ) -> NewAccount:
        """Connect an account whose address book lives at a provider, after checking that
        the settings reach it and the credentials work: nothing is saved otherwise.
        ``provider`` may be any name the provider is known by (v2's ``gmail``...)."""
        provider, settings = self.connection_settings(provider, email_address, settings)
        self.check_connection(provider, settings)
        return self.link(email_address, name=name, provider=provider, connection=settings)

    def connection_settings(
        self, provider: Any, email_address: str, settings: dict[str, Any]
    ) -> tuple[str, dict[str, str]]:
        """The provider's own name and the settings to store, checked for completeness."""
        spec, alias = self.providers.resolve(provider)
        return spec.name, spec.normalize(settings, email_address.strip(), alias=alias)

    def check_connection(self, provider: str, settings: dict[str, str]) -> None:
        if self.verify is None:
            raise InvalidAccount("this server was started without provider connectors")
        self.verify(provider, settings)

    def link(
        self, email_address: str, *, name: str, provider: str, connection: dict[str, str]
    ) -> NewAccount:
        """Create a connected account, or, when this address is connected at this provider
        already, to the same account there, re-link that account (same id, same contacts)
        with the new credentials; a sync that stopped for bad credentials resumes.

        The same account there is the same non-secret settings the provider requires (a
        CardDAV server and user name, an OAuth client): the address alone is whatever the
        person connecting typed, and re-linked by it anyone with a server of their own
        would take over the account of any address, contacts and all."""
        credentials = self.credentials
        if credentials is None:
            raise InvalidAccount("no secret key configured to seal provider credentials")
        sealed = credentials.seal(connection)
        token = new_token()
        now = time.time()
        with self.store.write() as tx:
            existing = self._same_account(tx, email_address, provider, connection)
            if existing is None:
                account = None
            else:
                tx.accounts.set_sync_status(
                    existing.id, connection=sealed, sync_state=SYNC_RUNNING, last_error=None
                )
                tx.accounts.schedule_sync(existing.id, now)
                tx.accounts.add_token(hash_token(token), existing.id, now)
                account = tx.accounts.get(existing.id)
        if account is not None:
            return NewAccount(account, token)
        return self.create(email_address, name=name, provider=provider, connection=connection)

    def update_connection(self, account_id: str, connection: dict[str, str]) -> bytes:
        """Store credentials the provider handed out mid-sync (a refreshed access token, a
        rotated refresh token) at once, encrypted: a restart never goes back to old ones.
        Returns what was stored (``sealed_connection`` reads it back while nobody else
        changes them)."""
        if self.credentials is None:
            raise InvalidAccount("no secret key configured to seal provider credentials")
        sealed = self.credentials.seal(connection)
        with self.store.write() as tx:
            tx.accounts.set_sync_status(account_id, connection=sealed)
        return sealed

    def current_connection(
        self, email_address: str, provider: str, settings: dict[str, str]
    ) -> dict[str, Any] | None:
        """The stored settings of the account that connecting this address at this provider
        with ``settings`` would re-link (``connect``), if there is one."""
        with self.store.read() as tx:
            existing = self._same_account(tx, email_address, provider, settings)
        return None if existing is None else self.connection(existing.id)

    def _same_account(
        self, tx: Tx, email_address: str, provider: str, connection: dict[str, str]
    ) -> Account | None:
        """The account connected for this address at this provider that is the same account
        there as ``connection`` names: the same non-secret settings the provider requires
        (a CardDAV server and user name, an OAuth client)."""
        if self.credentials is None:
            return None
        spec = self.providers.get(provider)
        identity = [s.name for s in spec.settings if s.required and not s.secret] if spec else []
        for account in tx.accounts.all_connected(email_address.strip(), provider):
            stored = tx.accounts.connection(account.id)
            if stored is None:
                continue
            before = self.credentials.open(stored)
            if all(before.get(name) == connection.get(name) for name in identity):
                return account
        return None

    def get(self, account_id: str) -> Account:
        with self.store.read() as tx:
            return tx.accounts.get(account_id)

    def list(self) -> list[Account]:
        with self.store.read() as tx:
            return tx.accounts.all()

    def connection(self, account_id: str) -> dict[str, Any] | None:
        with self.store.read() as tx:
            sealed = tx.accounts.connection(account_id)
        return None if sealed is None else self.unseal(sealed)

    def sealed_connection(self, account_id: str) -> bytes | None:
        """The account's settings as stored, encrypted (``unseal`` opens them)."""
        with self.store.read() as tx:
            return tx.accounts.connection(account_id)

    def unseal(self, sealed: bytes) -> dict[str, Any] | None:
        """Stored settings, decrypted (``AccountRepository.connection``); None without a
        key to open them."""
        if self.credentials is None:
            return None
        return self.credentials.open(sealed)

    def issue_token(self, account_id: str) -> str:
        token = new_token()
        with self.store.write() as tx:
            tx.accounts.get(account_id)
            tx.accounts.add_token(hash_token(token), account_id, time.time())
        return token

    def revoke(self, token: str) -> None:
        digest = hash_token(token)
        with self._epoch.revoking() as tx:
            if not tx.accounts.delete_token(digest):
                raise NoSuchToken()
        with self._lock:
            self._token_cache.pop(token, None)

    def token_created_at(self, account_id: str, token: str) -> float:
        """When ``token`` was issued to the account; ``NoSuchToken`` if it was not (or is
        revoked)."""
        with self.store.read() as tx:
            tx.accounts.get(account_id)
            created = tx.accounts.token_created_at(hash_token(token), account_id)
        if created is None:
            raise NoSuchToken()
        return created

    def revoke_all(self, account_id: str, keep: str | None = None) -> int:
        """Revoke every token of the account but the one hashed ``keep``, in every process
        at once (as ``revoke``); how many were revoked."""
        with self._epoch.revoking() as tx:
            tx.accounts.get(account_id)
            count = tx.accounts.delete_tokens(account_id, keep=keep)
        with self._lock:
            self._token_cache = {
                k: v
                for k, v in self._token_cache.items()
                if v[2].id != account_id or hash_token(k) == keep
            }
        return count

    def delete(self, account_id: str) -> None:
        with self._epoch.revoking() as tx:
            tx.accounts.delete(account_id)
        with self._lock:
            self._token_cache = {
                k: v for k, v in self._token_cache.items() if v[2].id != account_id
            }

    def authenticate(self, token: str | None) -> Account:
        """The account a token belongs to; ``Unauthenticated`` for anything else.

        The account is cached with the token while no token is revoked anywhere (and for
        at most a minute): the hot read paths need only its id, and ``GET /account`` reads
        it afresh.
        """
        if not token:
            raise Unauthenticated()
        now = time.monotonic()
        epoch = self._epoch.current()
        # Keyed by the token itself: hashing it costs as much as the rest of a cached read.
        cached = self._token_cache.get(token)
        if cached is not None and cached[1] == epoch and now - cached[0] < TOKEN_CACHE_SECONDS:
            return cached[2]
        digest = hash_token(token)
        with self.store.read() as tx:
            account_id = tx.accounts.account_id_for_token(digest)
            if account_id is None:
                raise Unauthenticated()
            try:
                account = tx.accounts.get(account_id)
            except NoSuchAccount:
                raise Unauthenticated() from None
        with self._lock:
            if len(self._token_cache) > 10_000:
                self._token_cache.clear()
            self._token_cache[token] = (now, epoch, account)
        return account
