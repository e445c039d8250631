"""A thin Microsoft Graph v1.0 client over httpx, with OAuth through authlib.

What it takes care of, so that the connector sees only answers or classified errors:

- Tokens: an access token (kept from an earlier sync when it still has a minute to live)
  or one got from the refresh token, again when it expires or Graph answers 401. Microsoft
  replaces the refresh token on every refresh ("Refresh tokens replace themselves with a
  fresh token upon every use"), so each new one, with the access token and its expiry, is
  handed to ``on_tokens`` at once; the old refresh token no longer works. Keeping the access
  token between syncs spares the token endpoint a call every poll interval.
- Throttling: at most ``max_in_flight`` (4) requests in flight per mailbox, Graph's
  MailboxConcurrency limit. 429 and 503 are retried after ``Retry-After`` (seconds; Graph
  may send none, or always 1), with exponential back-off without it, up to ``max_wait``;
  other 5xx and network failures are retried the same way, except for a POST, whose lost
  reply must not create a second contact (the caller looks for the item first instead).
- Errors: the Graph error body ``{"error": {"code", "message", "innerError"}}`` is read
  into the exception's message; ``classify`` is the one place statuses become connector
  errors.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from rolodex.connectors.base import (
    ConnectorError,
    CursorExpired,
    InvalidCredentials,
    PermanentError,
    PreconditionFailed,
    RemoteNotFound,
    TransientError,
)
from rolodex.connectors.outbound import KEEPALIVE_SECONDS

log = logging.getLogger(__name__)

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
# What a sync needs: delegated permission to read and write the user's contacts, and
# offline_access for the refresh token. A refresh asks for no more than that: "The scopes
# requested in this leg must be equivalent to or a subset of the scopes requested in the
# original authorization_code request leg" (identity platform, v2-oauth2-auth-code-flow,
# "Refresh the access token"), and a grant made as the account settings say covers these two.
REFRESH_SCOPE = "offline_access https://graph.microsoft.com/Contacts.ReadWrite"
# Hosted sign-in asks for User.Read besides, to read the address that signed in (/me).
SCOPE = REFRESH_SCOPE + " https://graph.microsoft.com/User.Read"
MAX_IN_FLIGHT = 4
# An access token is renewed this many seconds before it expires (at most a quarter of its
# lifetime), so that a request never leaves with one that expires on the way.
RENEW_BEFORE = 60.0
# Error codes that mean "start the delta over", in any letter case (google-microsoft.md §3.2:
# the doc says syncStateNotFound, the wire SyncStateNotFound; corso also resets on these).
RESET_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
# An id that cannot be an item's: no item has it, as for a 404 (Graph answers 400
# ErrorInvalidIdMalformed "Id is malformed.", invictus-ir/Microsoft-Extractor-Suite#146).
_NO_SUCH_ID = frozenset({"errorinvalididmalformed"})
# A version sent in If-Match that is not the item's: 412 (DOC concepts/errors, "412
# Precondition Failed: A precondition provided in the request (such as an if-match header)
# does not match"), but known by its code whatever the status: "resourceModified: The
# resource being updated has changed since the caller last read it, usually an eTag
# mismatch" (same page); Outlook's own code for a stale change key (microsoft-graph-docs-
# contrib#7934).
_STALE = frozenset({"resourcemodified", "errorirresolvableconflict"})
# A folder of that name is there already: 409 ErrorFolderExists (alcionai/corso#3278), or
# the generic "nameAlreadyExists: The specified item name already exists" (DOC
# concepts/errors); the folder code takes either as the 409 it handles.
_EXISTS = frozenset({"errorfolderexists", "namealreadyexists"})
# The mailbox itself is out of Graph's reach (inactive, soft-deleted, hosted on-premises,
# or an account without one): 404 MailboxNotEnabledForRESTAPI "REST API is not yet
# supported for this mailbox." (microsoft-graph-docs-contrib#6519), or
# MailboxNotSupportedForRESTAPI. A 404, but no item is missing: never RemoteNotFound, which
# would read as folders or contacts deleted.
_NO_MAILBOX = frozenset({"mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi"})
# AADSTS codes of a grant that is gone for good: reconnecting is the only way back.
_DEAD_GRANT = (
    "invalid_grant",
    "interaction_required",
    "consent_required",
    "invalid_client",
    "unauthorized_client",
)
# invalid_request is "Protocol error, such as a missing required parameter" (identity
# platform, "Error codes for token endpoint errors"), but these AADSTS codes name what the
# account's settings hold: the tenant (90002 "Tenant ... not found", 900023 "Specified
# tenant identifier ... is neither a valid DNS name, nor a valid external domain") or a
# refresh token that is not one (9002313 "Invalid request. Request is malformed or
# invalid."). Only new settings help, as for a dead grant.
_BAD_SETTINGS = ("AADSTS90002:", "AADSTS900023:", "AADSTS9002313:")
# The token endpoint's "retry later" (identity platform, "Error codes for token endpoint
# errors": temporarily_unavailable, "Retry the request"; RFC 6749's server_error).
_BUSY = ("temporarily_unavailable", "server_error")


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle costs about 50-150 ms, as
    much as the rest of a sync with nothing to do."""
    return httpx.create_ssl_context()


class GraphClient:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        tenant: str = "common",
        graph_url: str = DEFAULT_GRAPH_URL,
        login_url: str = DEFAULT_LOGIN_URL,
        on_tokens: Callable[[str, str, float], None] | None = None,
        access_token: str | None = None,
        expires_at: float | None = None,
        transport: httpx.BaseTransport | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        attempts: int = 5,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        timeout: float = 60.0,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.token_url = f"{login_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        self.refresh_token = refresh_token
        self._on_tokens = on_tokens
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._token_lock = threading.Lock()
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._max_wait = max_wait
        limits = httpx.Limits(
            max_connections=max_in_flight,
            max_keepalive_connections=max_in_flight,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        self._oauth = OAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method="client_secret_post",
            scope=REFRESH_SCOPE,
            token_endpoint=self.token_url,
            timeout=timeout,
            limits=limits,
            transport=transport,
            verify=_tls(),
            headers={"Accept": "application/json"},
        )
        self._access_token = access_token or None
        self._expires_at = expires_at or 0.0
        self._margin = RENEW_BEFORE  # renewed this long before it expires

    def close(self) -> None:
        self._oauth.close()

    # --- Tokens ----------------------------------------------------------------------------

    def _access(self, *, renew: bool = False, stale: str | None = None) -> str:
        """A live access token. ``renew``: the one in ``stale`` was refused; get another
        unless another thread already did."""
        with self._token_lock:
            if renew and self._access_token != stale:
                assert self._access_token is not None
                return self._access_token
            due = time.time() > self._expires_at - self._margin
            if renew or self._access_token is None or due:
                self._refresh()
            assert self._access_token is not None
            return self._access_token

    def _refresh(self) -> None:
        try:
            token: dict[str, Any] = self._oauth.refresh_token(
                self.token_url, refresh_token=self.refresh_token
            )
        except OAuthError as error:
            description = (error.description or "").split("\r\n", 1)[0]
            if error.error in _DEAD_GRANT or description.startswith(_BAD_SETTINGS):
                raise InvalidCredentials(
                    f"Microsoft refused the refresh token ({error.error}: {description}); "
                    "reconnect the account"
                ) from None
            if error.error in _BUSY:
                raise TransientError(
                    f"token refresh failed for now ({error.error}: {description})"
                ) from None
            raise PermanentError(f"token refresh failed ({error.error}: {description})") from None
        except httpx.HTTPStatusError as error:
            raise TransientError(
                f"token endpoint answered HTTP {error.response.status_code}",
                _retry_after(error.response),
            ) from None
        except httpx.HTTPError as error:
            raise TransientError(
                f"token endpoint unreachable: {type(error).__name__}: {error}"
            ) from None
        except ValueError as error:  # a 200 whose body is not JSON (a proxy's page...)
            raise TransientError(f"the token endpoint answered garbage: {error}") from None
        access = token.get("access_token")
        if not isinstance(access, str) or not access:
            raise PermanentError("the token endpoint answered no access token")
        self._access_token = access
        expires_in = token.get("expires_in")
        lifetime = float(expires_in) if expires_in else 3600.0
        self._expires_at = time.time() + lifetime
        # A token that lives less than four minutes is kept to its last quarter: with the
        # minute's margin, one of 60 s or less was due again at once, a refresh (and a
        # rotated refresh token stored) before every request.
        self._margin = min(RENEW_BEFORE, lifetime / 4)
        new = token.get("refresh_token")
        if isinstance(new, str) and new:
            self.refresh_token = new
        if self._on_tokens is not None:
            self._on_tokens(self.refresh_token, access, self._expires_at)

    def verify_grant(self) -> None:
        """A token refresh now, whatever the cached token (checks the grant itself)."""
        with self._token_lock:
            self._refresh()

    # --- Requests --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.graph_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        delta: bool = False,
    ) -> httpx.Response:
        """One Graph call; a success (2xx) or a raised ``ConnectorError``. ``path`` is
        relative to the Graph URL or a link Graph gave (followed as given). ``delta``:
        the call follows a delta token, so a reset answer is ``CursorExpired``."""
        url = self.url(path)
        body = orjson.dumps(json) if json is not None else content
        send_headers = dict(headers or {})
        if json is not None:
            send_headers["Content-Type"] = "application/json"
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._access()
            send_headers["Authorization"] = f"Bearer {token}"
            try:
                with self._slots:
                    response: httpx.Response = self._oauth.request(
                        method,
                        url,
                        content=body,
                        headers=send_headers,
                        params=params,
                        withhold_token=True,
                    )
            except httpx.HTTPError as error:
                if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
                    raise PermanentError(f"bad Graph URL {url}: {error}") from None
                failure: ConnectorError = TransientError(
                    f"{type(error).__name__} on {method} {_short(url)}: {error}"
                )
                if method != "POST" and attempt < self._attempts:
                    self._sleep(attempt, None)
                    continue
                raise failure from None
            status = response.status_code
            if status < 300:
                return response
            if status == 401 and not renewed:
                renewed = True  # expired or revoked early: one new token, then it counts
                self._access(renew=True, stale=token)
                continue
            refused = classify(response, delta=delta)
            if isinstance(refused, TransientError) and attempt < self._attempts:
                throttled = status in (429, 503)
                if method != "POST" or throttled:
                    # A 429/503 was not processed, so even a create may be sent again.
                    wait = self._wait(attempt, refused.retry_after)
                    if wait is not None:
                        log.info("Graph %s on %s; retrying in %.1fs", status, method, wait)
                        time.sleep(wait)
                        continue
            raise refused

    def _wait(self, attempt: int, retry_after: float | None) -> float | None:
        if retry_after is not None:
            return retry_after if retry_after <= self._max_wait else None
        wait: float = self._backoff * 2.0 ** (attempt - 1) * (0.5 + random.random())
        return min(self._max_wait, wait)

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        wait = self._wait(attempt, retry_after)
        time.sleep(wait or 0.0)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return orjson.loads(self.request("GET", path, **kwargs).content)

    def pages(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a (non-delta) collection, following @odata.nextLink."""
        items: list[dict[str, Any]] = []
        page = self.get_json(path, params=params)
        while True:
            items.extend(page.get("value") or [])
            nxt = page.get("@odata.nextLink")
            if not nxt:
                return items
            page = self.get_json(nxt)


def graph_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a Graph error body; empty strings when it is not one."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def classify(response: httpx.Response, *, delta: bool = False) -> ConnectorError:
    """The connector error a failed Graph answer means; success never reaches here."""
    status = response.status_code
    code, message = graph_error(response)
    request = response.request
    what = f"HTTP {status} {code or ''} on {request.method} {_short(str(request.url))}".replace(
        "  ", " "
    )
    if message:
        what += f": {message}"
    known = code.lower()
    if known in _NO_MAILBOX:
        return PermanentError(what, status)
    if delta and (
        status == 410 or known in RESET_CODES or (status in (400, 404) and _follows_token(request))
    ):
        # "In case of an expired token, the service should respond with a 40X-series error
        # with error codes such as syncStateNotFound" (DOC delta-query-overview, "Token
        # duration"): the code is only an example, so a 400 or 404 to a link Graph gave
        # (which names a folder still listed) means the token, and a round from scratch
        # tells a folder gone since by its own 404.
        return CursorExpired(str(request.url))
    if status == 429 or status >= 500:
        return TransientError(what, _retry_after(response))
    if status == 401:
        return InvalidCredentials(what)
    if status == 412 or known in _STALE:
        return PreconditionFailed(str(request.url))
    if status == 404 or known in _NO_SUCH_ID:
        return RemoteNotFound(str(request.url))
    if known in _EXISTS:
        return PermanentError(what, 409)
    return PermanentError(what, status)


def _follows_token(request: httpx.Request) -> bool:
    """The request follows a deltaLink or nextLink: its query holds a state token."""
    query = unquote(request.url.query.decode("ascii", "replace")).lower()
    return "$deltatoken=" in query or "$skiptoken=" in query


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: Graph sends delay-seconds, but the header may be an HTTP-date
    (RFC 9110 §10.2.3), as from a proxy in front of it; a date is not "no header"."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - time.time())


def _short(url: str) -> str:
    return url.split("?", 1)[0]
