"""Hosted sign-in: an application sends its user to ``GET /oauth/authorize``, the user signs
in with Google, Microsoft or a CardDAV password, and the application gets back a one-time
code it trades for an access token at ``POST /oauth/token`` (Nylas v2's hosted
authentication, ``reference/nylas-v2-auth.md`` section 2).

The rules this enforces:

- a sign-in starts only for the application's client id and a redirect URI registered for
  it (exactly, ``rolodex app redirect-uri add``); anything else is an error page, and
  nothing is ever redirected to an address that is not registered;
- a sign-in is a server-side record (``sign_ins``), bound to the browser that started it
  (a cookie's hash) and expiring after ``SIGN_IN_SECONDS``; it carries, sealed, what the
  application asked for, the PKCE verifier of its consent screen and its forms' CSRF
  token; the state sent to Google or Microsoft is its key, so a callback finds it;
- codes are one-time, live ``CODE_SECONDS`` (the native-auth codes' table), and carry the
  account's new access token sealed; the application's ``state`` goes back untouched.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from rolodex.domain.errors import (
    BadCredentials,
    InvalidAccount,
    InvalidBody,
    InvalidSignIn,
    MissingFields,
    ProviderUnreachable,
    ScopeNotGranted,
    SignInExpired,
)
from rolodex.domain.ids import hash_token, new_token, same_secret
from rolodex.domain.providers import FORM, OAUTH
from rolodex.domain.signin import OAuthSignIn
from rolodex.service.accounts import AccountService, NewAccount
from rolodex.service.application import CODE_SECONDS, ApplicationService
from rolodex.service.credentials import CredentialBox
from rolodex.store import Store

SIGN_IN_SECONDS = 1800.0
MAX_STATE = 1000  # v2 documents 255; generous, but bounded (it travels in URLs)
MAX_REDIRECT_URI = 2000


@dataclass(frozen=True)
class AuthorizeRequest:
    """What an application asked ``GET /oauth/authorize`` for, checked."""

    client_id: str
    redirect_uri: str
    response_type: Literal["code", "token"]
    state: str | None
    login_hint: str | None
    scopes: str
    option: str | None
    redirect_on_error: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": self.response_type,
            "state": self.state,
            "login_hint": self.login_hint,
            "scopes": self.scopes,
            "option": self.option,
            "redirect_on_error": self.redirect_on_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuthorizeRequest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Choose:
    """Show the choice of providers (each continues with ``provider`` set)."""

    request: AuthorizeRequest
    options: tuple[str, ...]


@dataclass(frozen=True)
class Consent:
    """Send the browser to the provider's consent screen."""

    url: str


@dataclass(frozen=True)
class PasswordForm:
    """Show the form of a password provider; ``error`` says what went wrong last time."""

    request: AuthorizeRequest
    option: str
    sign_in: str  # the sign-in's key (a hidden field)
    csrf_token: str
    values: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class BackToApplication:
    """Send the browser back to the application (``redirect_uri``, registered)."""

    url: str


@dataclass(frozen=True)
class Refused:
    """The user refused consent: offer to try again, or to go back to the application
    with ``error=access_denied`` (at once when it asked for ``redirect_on_error``)."""

    request: AuthorizeRequest
    back: str
    provider_title: str


Step = Choose | Consent | PasswordForm | BackToApplication | Refused


def _one(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    if value is None or value == "":
        return None  # v2 SDKs send empty login_hint= and state= for "absent"
    if not isinstance(value, str):
        raise InvalidSignIn(f"{name} must be a string")
    return value


def check_redirect_uri(uri: str) -> str:
    """A redirect URI that can be registered: absolute, no fragment, no spaces or control
    characters, at most ``MAX_REDIRECT_URI`` characters."""
    if len(uri) > MAX_REDIRECT_URI or any(c.isspace() or ord(c) < 32 for c in uri):
        raise InvalidAccount("a redirect URI has no spaces and at most 2000 characters")
    parts = urlsplit(uri)
    if not parts.scheme or "#" in uri:
        raise InvalidAccount(f"not an absolute URI without a fragment: {uri!r}")
    if parts.scheme in ("http", "https") and not parts.netloc:
        raise InvalidAccount(f"an http(s) redirect URI needs a host: {uri!r}")
    if parts.scheme.lower() in ("javascript", "data", "file", "vbscript"):
        raise InvalidAccount(f"scheme {parts.scheme!r} cannot be a redirect URI")
    return uri


def with_params(uri: str, params: Mapping[str, str | None], *, fragment: bool = False) -> str:
    """``uri`` with ``params`` appended to its query (``&`` when it has one) or, with
    ``fragment``, as its fragment; None values are left out."""
    encoded = urlencode({k: v for k, v in params.items() if v is not None})
    if fragment:
        return f"{uri}#{encoded}"
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{encoded}"


def _pkce_verifier() -> str:
    return secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-] (RFC 7636 4.1)


class SignInService:
    def __init__(
        self,
        store: Store,
        application: ApplicationService,
        accounts: AccountService,
        credentials: CredentialBox,
        oauth: Mapping[str, OAuthSignIn],
    ) -> None:
        """``oauth``: the providers whose OAuth clients are configured, by provider name
        (from the composition root; the others are not offered)."""
        self.store = store
        self.application = application
        self.accounts = accounts
        self.credentials = credentials
        self.oauth = dict(oauth)

    # --- Registered redirect URIs ------------------------------------------------------------

    def redirect_uris(self) -> list[str]:
        client_id = self.application.client().client_id
        with self.store.read() as tx:
            return tx.redirect_uris.all(client_id)

    def add_redirect_uri(self, uri: str) -> bool:
        client_id = self.application.client().client_id
        with self.store.write() as tx:
            return tx.redirect_uris.add(client_id, check_redirect_uri(uri), time.time())

    def remove_redirect_uri(self, uri: str) -> bool:
        client_id = self.application.client().client_id
        with self.store.write() as tx:
            return tx.redirect_uris.remove(client_id, uri)

    # --- What the page offers ----------------------------------------------------------------

    # What the page offers, from the provider registry: the providers with a consent
    # screen whose OAuth client is configured, then those signed in with a form of their
    # settings, each alias a choice of its own (iCloud is CardDAV at Apple's address).

    def options(self) -> tuple[str, ...]:
        return (*self.oauth_options(), *self.form_options())

    def oauth_options(self) -> tuple[str, ...]:
        return tuple(
            spec.name
            for spec in self.accounts.providers.specs.values()
            if OAUTH in spec.sign_in and spec.name in self.oauth
        )

    def form_options(self) -> tuple[str, ...]:
        return tuple(
            option
            for spec in self.accounts.providers.specs.values()
            if FORM in spec.sign_in
            for option in (*spec.aliases, spec.name)
        )

    def all_options(self) -> tuple[str, ...]:
        """Every choice the page could offer, configured or not (``rolodex app show``)."""
        return (
            tuple(
                spec.name
                for spec in self.accounts.providers.specs.values()
                if OAUTH in spec.sign_in
            )
            + self.form_options()
        )

    def title(self, option: str) -> str:
        spec, _alias = self.accounts.providers.resolve(option)
        return spec.sign_in_title(option)

    def _option(self, provider: str) -> str | None:
        """The page's choice ``provider`` names, in v2's names or Rolodex's."""
        try:
            spec, alias = self.accounts.providers.resolve(provider.lower())
        except InvalidAccount:
            return None
        if FORM in spec.sign_in and alias is not None:
            return alias  # an alias with a form of its own (icloud)
        return spec.name

    # --- The flow ----------------------------------------------------------------------------

    def parse(self, params: Mapping[str, Any]) -> AuthorizeRequest:
        """The application's request, checked: an ``InvalidSignIn`` (an error page) for a
        client id that is not the application's or a redirect URI not registered for it."""
        client_id, redirect_uri = _one(params, "client_id"), _one(params, "redirect_uri")
        if client_id is None or redirect_uri is None:
            raise InvalidSignIn("The link that brought you here has no client_id or redirect_uri.")
        client = self.application.client()
        if not same_secret(client_id, client.client_id):
            raise InvalidSignIn("The link that brought you here names an unknown application.")
        with self.store.read() as tx:
            registered = tx.redirect_uris.has(client.client_id, redirect_uri)
        if not registered:
            raise InvalidSignIn(
                "Illegal redirect_uri: it is not one of the redirect URIs registered for "
                "this application (rolodex app redirect-uri add URL)."
            )
        response_type = _one(params, "response_type") or "code"
        if response_type not in ("code", "token"):
            raise InvalidSignIn("response_type must be code or token.")
        state = _one(params, "state")
        if state is not None and len(state) > MAX_STATE:
            raise InvalidSignIn(f"state is longer than {MAX_STATE} characters.")
        login_hint = _one(params, "login_hint")
        if login_hint is not None and len(login_hint) > 320:
            login_hint = None
        provider = _one(params, "provider")
        option = None
        if provider is not None:
            option = self._option(provider)
            if option not in self.options():
                raise InvalidSignIn(f"Signing in with {provider[:40]!r} is not offered here.")
        return AuthorizeRequest(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            response_type=response_type,  # type: ignore[arg-type]
            state=state,
            login_hint=login_hint,
            scopes=_one(params, "scopes") or _one(params, "scope") or "contacts",
            option=option,
            redirect_on_error=(_one(params, "redirect_on_error") or "").lower() == "true",
        )

    def authorize(self, params: Mapping[str, Any], browser: str, callbacks: str) -> Step:
        """``GET /oauth/authorize``: the choice, the consent screen or a password form.
        ``browser`` is the browser's cookie, ``callbacks`` where Rolodex's callbacks are
        (``.../oauth/callback/``, the provider's name follows)."""
        request = self.parse(params)
        if request.option is None:
            return Choose(request, self.options())
        key, csrf = new_token(), new_token()
        payload: dict[str, Any] = {"request": request.as_dict(), "csrf": csrf}
        if request.option in self.oauth_options():
            verifier, callback = _pkce_verifier(), callbacks + request.option
            payload |= {"code_verifier": verifier, "callback": callback}
            self._save(key, request.client_id, browser, payload)
            url = self.oauth[request.option].consent_url(
                redirect_uri=callback,
                state=key,
                code_verifier=verifier,
                login_hint=request.login_hint,
            )
            return Consent(url)
        self._save(key, request.client_id, browser, payload)
        values = {"email": request.login_hint or ""}
        return PasswordForm(request, request.option, key, csrf, values)

    def submit(self, key: str, browser: str, form: Mapping[str, str]) -> Step:
        """A password form posted: checked against the server before anything is saved; a
        refusal shows the form again with what went wrong."""
        payload = self._load(key, browser)
        request = AuthorizeRequest.from_dict(payload["request"])
        if not same_secret(str(form.get("csrf_token", "")), str(payload["csrf"])):
            raise InvalidSignIn("This form is not from this sign-in. Start again from the app.")
        option = request.option
        if option not in self.form_options():
            raise InvalidSignIn("This sign-in does not take a password.")
        # The form asks for the provider's settings that its choice does not fill in (the
        # server's address and a user name for CardDAV; nothing more for iCloud), with the
        # email address and the password.
        spec, alias = self.accounts.providers.resolve(option)
        preset = spec.aliases.get(alias or "", {})
        asked = [s.name for s in spec.settings if not s.secret and s.name not in preset]
        values = {name: form.get(name, "").strip() for name in ("email", *asked)}

        def again(error: str) -> PasswordForm:
            return PasswordForm(request, option, key, payload["csrf"], values, error)

        email, password = values["email"], form.get("password", "")
        if not email or "@" not in email or len(email) > 320:
            return again("Enter your email address.")
        if not password:
            return again("Enter your password.")
        settings = {"password": password, **{n: values[n] for n in asked}}
        if "url" in asked:
            if not values["url"]:
                return again("Enter the address of your server.")
            if urlsplit(values["url"]).scheme not in ("http", "https"):
                return again("The server address starts with https://.")
        try:
            provider, connection = self.accounts.connection_settings(option, email, settings)
            self.accounts.check_connection(provider, connection)
        except BadCredentials:
            return again(
                "The server did not accept this user name and password. Check them and try "
                "again" + (" (it needs an app-specific password)." if preset else ".")
            )
        except ProviderUnreachable as error:
            return again(f"The server could not be reached or answered an error: {error.message}")
        except InvalidAccount as error:
            return again(error.message)
        return self._finish(key, request, email, "", provider, connection)

    def callback(self, provider: str, params: Mapping[str, Any], browser: str) -> Step:
        """Google's or Microsoft's redirect back to ``/oauth/callback/{provider}``."""
        state = _one(params, "state")
        if state is None:
            raise SignInExpired()
        payload = self._load(state, browser)
        request = AuthorizeRequest.from_dict(payload["request"])
        if request.option != provider or provider not in self.oauth:
            raise SignInExpired()
        sign_in = self.oauth[provider]
        error = _one(params, "error")
        if error is not None:
            self._still_registered(request)
            answer = "access_denied" if error == "access_denied" else "server_error"
            return Refused(
                request,
                self._back(
                    request, answer, f"{sign_in.title} sign-in was not completed ({error[:60]})"
                ),
                sign_in.title,
            )
        code = _one(params, "code")
        if code is None:
            raise InvalidSignIn(f"{sign_in.title} came back without a code.")
        try:
            return self._connect(state, request, provider, sign_in, code, payload)
        except ScopeNotGranted as refused:
            # As a refused consent: nothing connected (an account signed in again keeps
            # the grant it has), a retry offered, or at once back with access_denied.
            self._still_registered(request)
            return Refused(
                request, self._back(request, "access_denied", refused.message), sign_in.title
            )
        except (BadCredentials, ProviderUnreachable, InvalidAccount) as failed:
            # redirect_on_error=true: "on failure send the user back to redirect_uri with
            # error params instead of a Nylas error page" (nylas-v2-auth.md 2.1, 2.3).
            if not request.redirect_on_error:
                raise
            self._still_registered(request)
            return BackToApplication(self._back(request, "server_error", failed.message))

    def _back(self, request: AuthorizeRequest, error: str, reason: str) -> str:
        """The application's redirect URI with an error (v2's ``error`` and ``reason``, and
        the application's state), in the fragment for response_type=token."""
        return with_params(
            request.redirect_uri,
            {"error": error, "reason": reason, "state": request.state},
            fragment=request.response_type == "token",
        )

    def _connect(
        self,
        state: str,
        request: AuthorizeRequest,
        provider: str,
        sign_in: OAuthSignIn,
        code: str,
        payload: dict[str, Any],
    ) -> BackToApplication:
        """The code traded for the grant, and the account connected with it."""
        grant = sign_in.exchange(
            code=code, redirect_uri=payload["callback"], code_verifier=payload["code_verifier"]
        )
        settings = dict(grant.settings)
        if not settings.get(grant.refresh_setting):
            # Google hands out a refresh token only at a user's first consent to a client:
            # the same user signing in again keeps the grant the account has.
            current = self.accounts.current_connection(grant.email_address, provider, settings)
            kept = (current or {}).get(grant.refresh_setting)
            if not kept:
                raise BadCredentials(
                    f"{sign_in.title} gave no refresh token; remove Rolodex's access in your "
                    "account's security settings and sign in again"
                )
            settings[grant.refresh_setting] = kept
        provider, connection = self.accounts.connection_settings(
            provider, grant.email_address, settings
        )
        return self._finish(state, request, grant.email_address, grant.name, provider, connection)

    def token(self, body: Mapping[str, Any]) -> dict[str, str]:
        """``POST /oauth/token``: a code for the access token of its account."""
        missing = [
            k for k in ("client_id", "client_secret", "grant_type", "code") if not body.get(k)
        ]
        if missing:
            raise MissingFields(missing)
        if body["grant_type"] != "authorization_code":
            raise InvalidBody("grant_type must be authorization_code")
        payload = self.application.redeem(body, hosted=True)
        return {
            "access_token": payload["access_token"],
            "account_id": payload["account_id"],
            "email_address": payload["email_address"],
            "provider": payload["provider"],
            "token_type": "bearer",
        }

    # --- Internals ---------------------------------------------------------------------------

    def _still_registered(self, request: AuthorizeRequest) -> None:
        """The redirect URI is registered still (it may have been removed since the
        sign-in started): the browser is sent to no other."""
        with self.store.read() as tx:
            if not tx.redirect_uris.has(request.client_id, request.redirect_uri):
                raise InvalidSignIn(
                    "The application's redirect URI is no longer registered; nothing was sent "
                    "to it."
                )

    def _save(self, key: str, client_id: str, browser: str, payload: dict[str, Any]) -> None:
        now = time.time()
        with self.store.write() as tx:
            tx.sign_ins.put(
                hash_token(key),
                client_id,
                hash_token(browser),
                self.credentials.seal(payload),
                now + SIGN_IN_SECONDS,
                now,
            )

    def _load(self, key: str, browser: str) -> dict[str, Any]:
        if not key or not browser:
            raise SignInExpired()
        with self.store.read() as tx:
            sealed = tx.sign_ins.get(hash_token(key), hash_token(browser), time.time())
        if sealed is None:
            raise SignInExpired()
        return self.credentials.open(sealed)

    def _finish(
        self,
        key: str,
        request: AuthorizeRequest,
        email: str,
        name: str,
        provider: str,
        connection: dict[str, str],
    ) -> BackToApplication:
        """The sign-in is over (once: a second request for it finds it gone); the account
        is created or re-linked, its first sync scheduled, and the browser goes back to
        the application with a code or, for response_type=token, the token."""
        with self.store.write() as tx:
            if not tx.sign_ins.finish(hash_token(key)):
                raise SignInExpired()
        self._still_registered(request)
        linked = self.accounts.link(email, name=name, provider=provider, connection=connection)
        if request.response_type == "token":
            params = {**self._token_fields(linked), "state": request.state}
            return BackToApplication(with_params(request.redirect_uri, params, fragment=True))
        code = new_token()
        sealed = self.credentials.seal({"kind": "hosted", **self._token_fields(linked)})
        with self.store.write() as tx:
            tx.auth_codes.put(
                hash_token(code), request.client_id, sealed, time.time() + CODE_SECONDS
            )
        return BackToApplication(
            with_params(request.redirect_uri, {"code": code, "state": request.state})
        )

    @staticmethod
    def _token_fields(linked: NewAccount) -> dict[str, str]:
        return {
            "access_token": linked.access_token,
            "account_id": linked.account.id,
            "email_address": linked.account.email_address,
            "provider": linked.account.provider,
            "token_type": "bearer",
        }
