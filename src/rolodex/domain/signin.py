"""Hosted sign-in with a provider's OAuth consent screen, as an interface.

The connector packages implement it (``rolodex.connectors.google.signin``...); the
service (``rolodex.service.signin``) drives it and knows no provider protocol. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OAuthGrant:
    """What a consent gave: the user's address and name, and the connection settings to
    store for the account (the provider's ``ProviderSpec`` settings)."""

    email_address: str
    name: str
    settings: dict[str, str]
    # The setting holding the refresh token. Google hands one out only at a user's first
    # consent to a client: when it is missing, the account's current grant is kept.
    refresh_setting: str


class OAuthSignIn(Protocol):
    """One provider's consent screen and code exchange (RFC 6749 with PKCE, RFC 7636)."""

    @property
    def provider(self) -> str:
        """The provider's name, as stored on accounts (``google``)."""

    @property
    def title(self) -> str:
        """For people: "Google"."""

    def consent_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, login_hint: str | None
    ) -> str:
        """Where to send the browser: offline access, the contacts scopes, PKCE S256."""

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> OAuthGrant:
        """Trade the code for tokens and read the user's address. Raises the domain's
        ``BadCredentials`` (the provider refused) or ``ProviderUnreachable``."""
