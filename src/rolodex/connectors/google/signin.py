"""Hosted sign-in with Google: its consent screen, the code exchange and the user's address
(People API ``people/me``), for ``rolodex.service.signin``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rolodex.connectors import oauth
from rolodex.connectors.google.provider import people_url
from rolodex.domain.errors import ProviderUnreachable, ScopeNotGranted
from rolodex.domain.signin import OAuthGrant

DEFAULT_AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
# The contacts (read and write) and "other contacts" the connector syncs, and who the user
# is. https://developers.google.com/people/api/rest/v1/people/get#authorization-scopes
CONTACTS = "https://www.googleapis.com/auth/contacts"
SCOPES = (
    "openid",
    "email",
    "profile",
    CONTACTS,
    "https://www.googleapis.com/auth/contacts.other.readonly",
)


@dataclass(frozen=True)
class GoogleSignIn:
    client_id: str
    client_secret: str
    auth_url: str
    token_url: str
    provider: str = "google"
    title: str = "Google"

    def consent_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, login_hint: str | None
    ) -> str:
        extra = {
            # A refresh token, and asked for again each time: Google gives one only at a
            # user's first consent to a client otherwise.
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
        }
        if login_hint:
            extra["login_hint"] = login_hint
        return oauth.consent_url(
            self.auth_url,
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            scope=" ".join(SCOPES),
            state=state,
            code_verifier=code_verifier,
            **extra,
        )

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> OAuthGrant:
        token = oauth.exchange_code(
            self.token_url,
            title=self.title,
            client_id=self.client_id,
            client_secret=self.client_secret,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
        # The consent screen lets the user untick each scope, and the answer's scope says
        # which were granted: "check which scopes the user has granted ... and handle the
        # denied ones" (developers.google.com/identity/protocols/oauth2/resources/
        # granular-permissions). Without contacts an account could not sync at all (other
        # contacts are optional: the connector skips them).
        if oauth.missing_scopes(token, (CONTACTS,)):
            raise ScopeNotGranted("Google gave no access to the contacts")
        email, name = _signed_in(token, self.client_id)
        if not email:
            raise ProviderUnreachable("Google did not say which address signed in")
        settings = {
            "google_client_id": self.client_id,
            "google_client_secret": self.client_secret,
            "google_access_token": token["access_token"],
        }
        if token.get("expires_in"):
            settings["google_access_token_expires_at"] = str(
                int(time.time() + float(token["expires_in"]))
            )
        if isinstance(token.get("refresh_token"), str) and token["refresh_token"]:
            settings["google_refresh_token"] = token["refresh_token"]
        return OAuthGrant(
            email_address=email,
            name=name,
            settings=settings,
            refresh_setting="google_refresh_token",
        )


def _signed_in(token: dict[str, Any], client_id: str) -> tuple[str, str]:
    """(address, name) of who consented: the ID token's verified ``email`` (the scopes ask
    for ``openid email profile``), else the People API's ``people/me``."""
    claims = oauth.id_token_claims(token, client_id)
    if claims is not None:
        email, verified = claims.get("email"), claims.get("email_verified")
        if isinstance(email, str) and email and verified in (True, "true"):
            name = claims.get("name")
            return email, name if isinstance(name, str) else ""
    me = oauth.get_json(
        people_url().rstrip("/") + "/v1/people/me",
        token["access_token"],
        title="Google People API",
        personFields="emailAddresses,names",
    )
    return _primary(me.get("emailAddresses"), "value"), _primary(me.get("names"), "displayName")


def _primary(items: Any, key: str) -> str:
    """``key`` of the item marked primary (else the first) of a People API list."""
    if not isinstance(items, list):
        return ""
    found = [i for i in items if isinstance(i, dict) and isinstance(i.get(key), str)]
    for item in found:
        if (item.get("metadata") or {}).get("primary"):
            return str(item[key])
    return str(found[0][key]) if found else ""
