"""Hosted sign-in with Microsoft (the identity platform's v2.0 endpoints): its consent
screen, the code exchange and the user's address (Graph ``/me``), for
``rolodex.service.signin``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from rolodex.connectors import oauth
from rolodex.connectors.microsoft.client import DEFAULT_GRAPH_URL, SCOPE
from rolodex.connectors.microsoft.provider import GRAPH_URL_ENV
from rolodex.domain.errors import ProviderUnreachable, ScopeNotGranted
from rolodex.domain.signin import OAuthGrant

DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
CONTACTS = "https://graph.microsoft.com/Contacts.ReadWrite"


@dataclass(frozen=True)
class MicrosoftSignIn:
    client_id: str
    client_secret: str
    tenant: str
    login_url: str
    provider: str = "microsoft"
    title: str = "Microsoft"

    def _endpoint(self, name: str) -> str:
        return f"{self.login_url.rstrip('/')}/{self.tenant}/oauth2/v2.0/{name}"

    def consent_url(
        self, *, redirect_uri: str, state: str, code_verifier: str, login_hint: str | None
    ) -> str:
        extra = {"response_mode": "query", "prompt": "select_account"}
        if login_hint:
            extra["login_hint"] = login_hint
        return oauth.consent_url(
            self._endpoint("authorize"),
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            # offline_access: a refresh token, which the connector refreshes with the
            # contacts scope alone (a subset, as the refresh leg requires).
            scope=SCOPE,
            state=state,
            code_verifier=code_verifier,
            **extra,
        )

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str) -> OAuthGrant:
        token = oauth.exchange_code(
            self._endpoint("token"),
            title=self.title,
            client_id=self.client_id,
            client_secret=self.client_secret,
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            scope=SCOPE,
        )
        # The answer's scope lists the scopes granted ("scope: The scopes that the
        # access_token is valid for", learn.microsoft.com/entra/identity-platform/
        # v2-oauth2-auth-code-flow): an admin or consent policy may grant fewer.
        if oauth.missing_scopes(token, (CONTACTS,), prefix="https://graph.microsoft.com/"):
            raise ScopeNotGranted("Microsoft gave no access to the contacts")
        graph = os.environ.get(GRAPH_URL_ENV) or DEFAULT_GRAPH_URL
        me = oauth.get_json(
            graph.rstrip("/") + "/me", token["access_token"], title="Microsoft Graph"
        )
        # mail is empty for accounts without a mailbox licence; the sign-in name is the
        # address then (https://learn.microsoft.com/graph/api/resources/user).
        email = me.get("mail") or me.get("userPrincipalName")
        if not isinstance(email, str) or not email:
            raise ProviderUnreachable("Microsoft did not say which address signed in")
        settings = {
            "microsoft_client_id": self.client_id,
            "microsoft_client_secret": self.client_secret,
            "redirect_uri": redirect_uri,
            "tenant": self.tenant,
        }
        if isinstance(token.get("refresh_token"), str) and token["refresh_token"]:
            settings["microsoft_refresh_token"] = token["refresh_token"]
        name = me.get("displayName")
        return OAuthGrant(
            email_address=email,
            name=name if isinstance(name, str) else "",
            settings=settings,
            refresh_setting="microsoft_refresh_token",
        )
