"""The application's own credentials and v2 native authentication.

An application onboards its users without the CLI: ``POST /connect/authorize`` with the
provider settings (checked against the provider at once) gives a one-time code, and
``POST /connect/token`` with the application's client id and secret trades it for an
account and its access token.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rolodex.domain.errors import InvalidAccount, InvalidClient, InvalidCode, MissingFields
from rolodex.domain.ids import hash_token, new_token, same_secret
from rolodex.service.accounts import AccountService, NewAccount, checked_owner
from rolodex.service.credentials import SEALED_CLIENT_SECRET as _SEALED
from rolodex.service.credentials import CredentialBox
from rolodex.store import Store

CODE_SECONDS = 600.0


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str


class ApplicationService:
    def __init__(self, store: Store, accounts: AccountService, credentials: CredentialBox) -> None:
        self.store = store
        self.accounts = accounts
        self.credentials = credentials

    def client(self) -> ClientCredentials:
        """ROLODEX_CLIENT_ID / ROLODEX_CLIENT_SECRET, else a pair made once and kept in the
        database, the secret sealed with the credential key (``rolodex app show`` prints
        it, so it is encrypted rather than hashed); a plain one of an older database is
        sealed on first use."""
        env_id, env_secret = (
            os.environ.get("ROLODEX_CLIENT_ID"),
            os.environ.get("ROLODEX_CLIENT_SECRET"),
        )
        if env_id and env_secret:
            return ClientCredentials(env_id, env_secret)
        with self.store.write() as tx:
            client_id = tx.settings.get("client_id")
            stored = tx.settings.get("client_secret")
            if client_id is None or stored is None:
                client_id, client_secret = secrets.token_hex(12), new_token()
                tx.settings.put("client_id", client_id)
            elif stored.startswith(_SEALED):
                sealed = stored[len(_SEALED) :].encode()
                return ClientCredentials(client_id, self.credentials.open(sealed)["secret"])
            else:
                client_secret = stored
            sealed_now = self.credentials.seal({"secret": client_secret}).decode()
            tx.settings.put("client_secret", _SEALED + sealed_now)
        return ClientCredentials(client_id, client_secret)

    def check_client(self, client_id: Any, client_secret: Any | None = None) -> None:
        client = self.client()
        if not isinstance(client_id, str) or not same_secret(client_id, client.client_id):
            raise InvalidClient("Unknown client_id")
        if client_secret is not None and (
            not isinstance(client_secret, str)
            or not same_secret(client_secret, client.client_secret)
        ):
            raise InvalidClient("Invalid client_secret")

    def authorize(self, body: dict[str, Any]) -> str:
        """Check the provider settings and return a one-time code for them."""
        email = body.get("email_address") or body.get("email")
        missing = [
            name
            for name, value in (
                ("client_id", body.get("client_id")),
                ("email_address", email),
                ("provider", body.get("provider")),
                ("settings", body.get("settings")),
            )
            if not value
        ]
        if missing:
            raise MissingFields(missing)
        self.check_client(body["client_id"])
        if not isinstance(body["settings"], dict) or not isinstance(email, str):
            raise InvalidAccount("settings must be an object and email_address a string")
        email, name = checked_owner(email, body.get("name"))
        provider, settings = self.accounts.connection_settings(
            body["provider"], email, body["settings"]
        )
        self.accounts.check_connection(provider, settings)
        payload = {
            "email_address": email,
            "name": name,
            "provider": provider,
            "settings": settings,
        }
        code = new_token()
        with self.store.write() as tx:
            tx.auth_codes.put(
                hash_token(code),
                body["client_id"],
                self.credentials.seal(payload),
                time.time() + CODE_SECONDS,
            )
        return code

    def redeem(self, body: Mapping[str, Any], *, hosted: bool) -> dict[str, Any]:
        """What a one-time code stands for, taken (it works once) after the application's
        client id and secret are checked. Native-auth codes are redeemed at
        ``/connect/token`` and hosted sign-in's at ``/oauth/token``, never the other way."""
        missing = [k for k in ("client_id", "client_secret", "code") if not body.get(k)]
        if missing:
            raise MissingFields(missing)
        self.check_client(body["client_id"], body["client_secret"])
        code = body["code"]
        if not isinstance(code, str):
            raise InvalidCode()
        with self.store.write() as tx:
            sealed = tx.auth_codes.take(hash_token(code), body["client_id"], time.time())
        if sealed is None:
            raise InvalidCode()
        payload: dict[str, Any] = self.credentials.open(sealed)
        if (payload.get("kind") == "hosted") != hosted:
            raise InvalidCode()
        return payload

    def token(self, body: dict[str, Any]) -> NewAccount:
        payload = self.redeem(body, hosted=False)
        return self.accounts.link(
            payload["email_address"],
            name=payload["name"],
            provider=payload["provider"],
            connection=payload["settings"],
        )
