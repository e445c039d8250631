"""Google Contacts as a provider: what connecting an account needs, and its connector.

Where Google is reached is configuration, so that a proxy or the test emulator can stand
in: ``ROLODEX_GOOGLE_PEOPLE_URL`` (default https://people.googleapis.com) and
``ROLODEX_GOOGLE_TOKEN_URL`` (default https://oauth2.googleapis.com/token).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rolodex.connectors.base import Connector, CredentialsChanged, Provider
from rolodex.domain.providers import NATIVE, OAUTH, ProviderSpec, Setting
from rolodex.domain.signin import OAuthSignIn

SPEC = ProviderSpec(
    name="google",
    title="Google Contacts",
    settings=(
        Setting("google_client_id", "The OAuth client id of your Google Cloud project."),
        Setting("google_client_secret", "That OAuth client's secret.", secret=True),
        Setting(
            "google_refresh_token",
            "A refresh token the account's user granted that client (scope "
            "https://www.googleapis.com/auth/contacts).",
            secret=True,
        ),
        # Kept by Rolodex between syncs (refreshed before they expire), never asked for.
        Setting("google_access_token", "A current access token.", secret=True, required=False),
        Setting(
            "google_access_token_expires_at",
            "When that access token expires (Unix time).",
            secret=True,
            required=False,
        ),
    ),
    # Nylas v2 polled Google every 60 s (providers.md §2a, N2).
    poll_interval=60.0,
    sign_in=(NATIVE, OAUTH),
    aliases={"gmail": {}},
    sign_in_titles={"google": "Google", "gmail": "Google"},
)


def people_url() -> str:
    return os.environ.get("ROLODEX_GOOGLE_PEOPLE_URL") or "https://people.googleapis.com"


def token_url() -> str:
    return os.environ.get("ROLODEX_GOOGLE_TOKEN_URL") or "https://oauth2.googleapis.com/token"


def _open(settings: dict[str, str], changed: CredentialsChanged) -> Connector:
    # Imported here: the registry is read by every CLI command, the protocol code only by
    # those that reach Google.
    from rolodex.connectors.google.client import PeopleClient
    from rolodex.connectors.google.connector import GoogleConnector

    def saved(tokens: dict[str, str]) -> None:
        settings.update(tokens)
        changed(dict(settings))

    expires = settings.get("google_access_token_expires_at")
    client = PeopleClient(
        settings["google_client_id"],
        settings["google_client_secret"],
        settings["google_refresh_token"],
        access_token=settings.get("google_access_token") or None,
        expires_at=int(float(expires)) if expires else None,
        people_url=people_url(),
        token_url=token_url(),
        on_token=saved,
    )
    return GoogleConnector(client)


def _oauth(config: Mapping[str, Any]) -> OAuthSignIn | None:
    """Google's consent screen, when the server has a Google OAuth client
    (ROLODEX_GOOGLE_CLIENT_ID and ROLODEX_GOOGLE_CLIENT_SECRET)."""
    if not (config.get("google_client_id") and config.get("google_client_secret")):
        return None
    from rolodex.connectors.google.signin import GoogleSignIn

    return GoogleSignIn(
        config["google_client_id"],
        config["google_client_secret"],
        config["google_auth_url"],
        config["google_token_url"],
    )


PROVIDER = Provider(spec=SPEC, open=_open, oauth=_oauth)
