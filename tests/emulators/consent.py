"""An OAuth 2.0 consent screen and the authorization-code grant, for the emulators of
Google and Microsoft (RFC 6749 section 4.1 with PKCE, RFC 7636).

``ConsentScreen.page`` answers the authorization endpoint: it checks the request as the
real ones do (known client, a registered redirect URI, response_type=code, an S256
challenge, a state), then "the user" decides at once: by default they allow, and the
browser is redirected back with a code; with ``refuse = True`` they decline and it gets
``error=access_denied``. ``ConsentScreen.redeem`` checks a code at the token endpoint: one
time, same client and redirect URI, and a verifier whose S256 matches the challenge.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.responses import HTMLResponse, RedirectResponse, Response

CODE_SECONDS = 600


@dataclass
class Consented:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str
    expires_at: float
    login_hint: str | None


@dataclass
class ConsentScreen:
    # client id -> redirect URIs registered for it at the provider
    redirect_uris: dict[str, set[str]] = field(default_factory=dict)
    refuse: bool = False
    no_refresh_token: bool = False  # the token endpoint keeps the refresh token back
    # Scopes "the user" unticks: Google's consent screen lets them grant some of the scopes
    # asked for, and the token answer's scope lists only those granted
    # (developers.google.com/identity/protocols/oauth2/resources/granular-permissions).
    withheld: set[str] = field(default_factory=set)
    codes: dict[str, Consented] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, client_id: str, redirect_uri: str) -> None:
        with self.lock:
            self.redirect_uris.setdefault(client_id, set()).add(redirect_uri)

    def page(self, query: dict[str, str], known_client: bool) -> Response:
        """The authorization endpoint. Errors about the client or the redirect URI are a
        page (never a redirect, as the real ones do); the rest go back to the client."""
        with self.lock:
            self.requests.append(dict(query))
            client_id = query.get("client_id", "")
            redirect_uri = query.get("redirect_uri", "")
            if not known_client:
                return _page(400, f"invalid_client: the OAuth client {client_id!r} was not found")
            if redirect_uri not in self.redirect_uris.get(client_id, set()):
                return _page(400, f"redirect_uri_mismatch: {redirect_uri!r} is not registered")
            state = query.get("state")

            def back(**params: str) -> Response:
                if state is not None:
                    params["state"] = state
                return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

            if query.get("response_type") != "code":
                return back(error="unsupported_response_type")
            challenge = query.get("code_challenge", "")
            if query.get("code_challenge_method") != "S256" or len(challenge) < 43:
                return back(error="invalid_request", error_description="PKCE S256 is required")
            if self.refuse:
                return back(error="access_denied", error_description="The user denied access")
            code = "4/0A" + secrets.token_urlsafe(32)
            self.codes[code] = Consented(
                client_id,
                redirect_uri,
                " ".join(s for s in query.get("scope", "").split() if s not in self.withheld),
                challenge,
                time.time() + CODE_SECONDS,
                query.get("login_hint"),
            )
            return back(code=code)

    def redeem(
        self, code: str, client_id: str, redirect_uri: str, verifier: str
    ) -> Consented | str:
        """The consent a code stands for, or the OAuth error to answer with."""
        with self.lock:
            consented = self.codes.pop(code, None)  # one time, even when it fails below
        if consented is None or consented.expires_at < time.time():
            return "invalid_grant"
        if consented.client_id != client_id or consented.redirect_uri != redirect_uri:
            return "invalid_grant"
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != consented.challenge:
            return "invalid_grant"
        return consented


def _page(status: int, message: str) -> Response:
    body = f"<!doctype html><title>Error</title><h1>Error</h1><p>{html.escape(message)}</p>"
    return HTMLResponse(body, status_code=status)
