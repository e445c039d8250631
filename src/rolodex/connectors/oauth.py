"""The authorization-code grant with PKCE (RFC 6749 section 4.1, RFC 7636), through
authlib as the connectors' token refreshes are: the consent-screen URL and the code
exchange that hosted sign-in (``rolodex.service.signin``) needs of Google and Microsoft.
Failures leave as the domain's errors, which the sign-in page knows how to show."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import httpx
import orjson
from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from rolodex.domain.errors import BadCredentials, ProviderUnreachable

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# "Try again later" from a token endpoint, not a refusal (RFC 6749 §5.2 has server_error on
# the authorization endpoint; Microsoft's token endpoint documents temporarily_unavailable,
# "Retry the request").
_BUSY = frozenset({"temporarily_unavailable", "server_error"})


def consent_url(
    auth_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code_verifier: str,
    **extra: str,
) -> str:
    """The consent screen's URL: response_type=code, the state, and the S256 challenge of
    ``code_verifier`` (which stays with the server)."""
    with OAuth2Client(
        client_id, scope=scope, redirect_uri=redirect_uri, code_challenge_method="S256"
    ) as client:
        url, _ = client.create_authorization_url(
            auth_url, state=state, code_verifier=code_verifier, **extra
        )
    return str(url)


def exchange_code(
    token_url: str,
    *,
    title: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
    **extra: str,
) -> dict[str, Any]:
    """The token endpoint's answer for ``code`` (access_token, refresh_token if any,
    expires_in...). ``title`` names the provider in errors."""
    try:
        with OAuth2Client(
            client_id,
            client_secret,
            token_endpoint_auth_method="client_secret_post",
            redirect_uri=redirect_uri,
            timeout=TIMEOUT,
            headers={"Accept": "application/json"},
        ) as client:
            token: dict[str, Any] = client.fetch_token(
                token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                **extra,
            )
    except OAuthError as error:
        description = (error.description or "").split("\r\n", 1)[0]
        if error.error in _BUSY:
            raise ProviderUnreachable(
                f"{title}'s token endpoint is busy ({error.error}: {description}); try again"
            ) from None
        raise BadCredentials(
            f"{title} did not accept the sign-in ({error.error}: {description})"
        ) from None
    except httpx.HTTPStatusError as error:
        raise ProviderUnreachable(
            f"{title}'s token endpoint answered HTTP {error.response.status_code}"
        ) from None
    except httpx.HTTPError as error:
        raise ProviderUnreachable(f"{title}'s token endpoint is unreachable: {error}") from None
    if not isinstance(token.get("access_token"), str):
        raise ProviderUnreachable(f"{title}'s token endpoint answered no access token")
    return token


def missing_scopes(token: dict[str, Any], needed: tuple[str, ...], prefix: str = "") -> list[str]:
    """The scopes of ``needed`` that the token answer's ``scope`` (the granted ones, RFC 6749
    section 5.1) leaves out: none when it has no ``scope`` ("OPTIONAL, if identical to the
    scope requested"). Compared without letter case and without ``prefix`` (Microsoft
    answers Graph's scopes with or without ``https://graph.microsoft.com/``)."""
    granted = token.get("scope")
    if not isinstance(granted, str):
        return []

    def bare(scope: str) -> str:
        scope = scope.lower()
        return scope[len(prefix) :] if prefix and scope.startswith(prefix.lower()) else scope

    have = {bare(s) for s in granted.split()}
    return [s for s in needed if bare(s) not in have]


def get_json(url: str, access_token: str, *, title: str, **params: str) -> dict[str, Any]:
    """A GET with the access token (reading the signed-in user's profile)."""
    try:
        response = httpx.get(
            url,
            params=params,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as error:
        raise ProviderUnreachable(f"{title} is unreachable: {error}") from None
    if response.status_code in (401, 403):
        raise BadCredentials(f"{title} refused to show the user's profile ({response.status_code})")
    if response.status_code != 200:
        raise ProviderUnreachable(f"{title} answered HTTP {response.status_code}")
    body = response.json()
    if not isinstance(body, dict):
        raise ProviderUnreachable(f"{title} answered a profile that is not an object")
    return body


def id_token_claims(token: dict[str, Any], client_id: str) -> dict[str, Any] | None:
    """The claims of the OpenID Connect ID token in a token answer, if it has one meant for
    ``client_id``. Its signature is not checked: "If the ID Token is received via direct
    communication between the Client and the Token Endpoint ... the TLS server validation
    MAY be used to validate the issuer in place of checking the token signature" (OpenID
    Connect Core 1.0, 3.1.3.7); the audience still must be this client."""
    raw = token.get("id_token")
    if not isinstance(raw, str) or raw.count(".") != 2:
        return None
    payload = raw.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    audience = claims.get("aud")
    if audience != client_id and not (isinstance(audience, list) and client_id in audience):
        return None
    return claims
