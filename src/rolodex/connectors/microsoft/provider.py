"""Microsoft (Graph) as a provider: what connecting an account needs, and its connector.

Where Microsoft is reached is configuration, read when a connector opens:
``ROLODEX_MICROSOFT_GRAPH_URL`` (default ``https://graph.microsoft.com/v1.0``) and
``ROLODEX_MICROSOFT_LOGIN_URL`` (default ``https://login.microsoftonline.com``; the token
endpoint is ``{login}/{tenant}/oauth2/v2.0/token``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rolodex.connectors.base import Connector, CredentialsChanged, Provider
from rolodex.domain.providers import NATIVE, OAUTH, ProviderSpec, Setting
from rolodex.domain.signin import OAuthSignIn

GRAPH_URL_ENV = "ROLODEX_MICROSOFT_GRAPH_URL"
LOGIN_URL_ENV = "ROLODEX_MICROSOFT_LOGIN_URL"

SPEC = ProviderSpec(
    name="microsoft",
    title="Microsoft 365 / Outlook.com",
    settings=(
        Setting("microsoft_client_id", "The application (client) id of your Microsoft Entra app."),
        Setting("microsoft_client_secret", "A client secret of that app.", secret=True),
        Setting(
            "microsoft_refresh_token",
            "A refresh token the mailbox's owner granted the app (scopes Contacts.ReadWrite "
            "and offline_access); Rolodex stores each new one Microsoft hands out.",
            secret=True,
        ),
        Setting("redirect_uri", "The redirect URI the refresh token was obtained with."),
        Setting(
            "tenant",
            "The directory: common, organizations, consumers or a tenant id.",
            required=False,
            default="common",
        ),
        # Kept by Rolodex between syncs (an access token lives about an hour).
        Setting("microsoft_access_token", "A current access token.", secret=True, required=False),
        Setting(
            "microsoft_access_token_expires_at",
            "When that access token expires (Unix time).",
            required=False,
        ),
    ),
    poll_interval=30.0,
    sign_in=(NATIVE, OAUTH),
    sign_in_titles={
        "microsoft": "Microsoft 365 / Outlook.com",
        "office365": "Microsoft 365 / Outlook.com",
        "outlook": "Microsoft 365 / Outlook.com",
    },
    # v2's name for Exchange Online / Microsoft 365 accounts.
    aliases={"office365": {}, "outlook": {}},
)


def _open(settings: dict[str, str], changed: CredentialsChanged) -> Connector:
    # Imported here: the registry is read by every CLI command, the protocol code only by
    # those that reach Microsoft.
    from rolodex.connectors.microsoft.client import (
        DEFAULT_GRAPH_URL,
        DEFAULT_LOGIN_URL,
        GraphClient,
    )
    from rolodex.connectors.microsoft.connector import MicrosoftConnector

    current = dict(settings)

    def handed_out(refresh_token: str, access_token: str, expires_at: float) -> None:
        # Microsoft replaces the refresh token on every refresh and the old one stops
        # working: the new one is stored at once, before anything else happens. The
        # caller's dict is updated too, so that settings checked by ``verify`` before an
        # account is saved are saved with the token that still works.
        fresh = {
            "microsoft_refresh_token": refresh_token,
            "microsoft_access_token": access_token,
            "microsoft_access_token_expires_at": str(int(expires_at)),
        }
        current.update(fresh)
        settings.update(fresh)
        changed(dict(current))

    expires = settings.get("microsoft_access_token_expires_at")
    try:
        expires_at = float(expires) if expires else None
    except ValueError:
        expires_at = None
    client = GraphClient(
        client_id=settings["microsoft_client_id"],
        client_secret=settings["microsoft_client_secret"],
        refresh_token=settings["microsoft_refresh_token"],
        tenant=settings.get("tenant") or "common",
        graph_url=os.environ.get(GRAPH_URL_ENV) or DEFAULT_GRAPH_URL,
        login_url=os.environ.get(LOGIN_URL_ENV) or DEFAULT_LOGIN_URL,
        on_tokens=handed_out,
        access_token=settings.get("microsoft_access_token"),
        expires_at=expires_at,
    )
    return MicrosoftConnector(client)


def _oauth(config: Mapping[str, Any]) -> OAuthSignIn | None:
    """Microsoft's consent screen, when the server has an Entra app registration
    (ROLODEX_MICROSOFT_CLIENT_ID and ROLODEX_MICROSOFT_CLIENT_SECRET)."""
    if not (config.get("microsoft_client_id") and config.get("microsoft_client_secret")):
        return None
    from rolodex.connectors.microsoft.signin import MicrosoftSignIn

    return MicrosoftSignIn(
        config["microsoft_client_id"],
        config["microsoft_client_secret"],
        config["microsoft_tenant"],
        config["microsoft_login_url"],
    )


PROVIDER = Provider(spec=SPEC, open=_open, oauth=_oauth)
