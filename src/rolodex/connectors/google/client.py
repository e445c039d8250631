"""A thin client of the Google People API v1 over httpx, with OAuth tokens from authlib.

Wire details from ``../shared/reference/google-microsoft.md`` §3.1 and
``providers.md`` §2a/§5.2. Every failure leaves here classified (``rolodex.connectors.base``):

- the token endpoint's ``invalid_grant`` / ``invalid_client``: ``InvalidCredentials``;
- 401: the access token is refreshed and the call repeated once;
- 429 and the rate-limit 403s: ``TransientError`` with the delay Google asks for, if any
  (``Retry-After``, or the body's ``google.rpc.RetryInfo``);
- 5xx, 409 ``ABORTED`` and network errors: ``TransientError`` (idempotent reads are
  retried a few times first); but a 409 ``ABORTED`` to a write made over an etag is
  ``PreconditionFailed``, as a stale etag is;
- an expired sync token (400 or 410 whose ``details[].reason`` is ``EXPIRED_SYNC_TOKEN``,
  whatever the status says), or any 400 or 410 to a request that sent a sync token:
  ``SyncTokenExpired``;
- 400 ``FAILED_PRECONDITION`` on a write made over an etag (a stale one):
  ``PreconditionFailed``;
- 404: ``RemoteNotFound``; any other 4xx: ``PermanentError``.

Why plain httpx rather than google-api-python-client: that package is 17 MB, sync over
httplib2, and hides none of the rules above (GM §5). authlib's ``OAuth2Client`` (an
``httpx.Client``) keeps the token, refreshes it before it expires and reports new tokens.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from rolodex.connectors.base import (
    InvalidCredentials,
    PermanentError,
    PreconditionFailed,
    RemoteNotFound,
    TransientError,
)
from rolodex.connectors.outbound import LIMITS

log = logging.getLogger(__name__)

DEFAULT_PEOPLE_URL = "https://people.googleapis.com"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"
# A token is refreshed this many seconds before Google says it expires.
REFRESH_LEEWAY = 60
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# A read answered 5xx is retried here after at most this many seconds; a Retry-After longer
# than that is handed to the engine, which comes back then.
INLINE_WAIT = 5.0
# 403 reasons that mean "too many requests", not "not allowed" (Google's error formats: the
# older ``errors[].reason`` and ErrorInfo's ``details[].reason``).
_RATE_LIMIT_REASONS = frozenset(
    {
        "rateLimitExceeded",
        "userRateLimitExceeded",
        "RATE_LIMIT_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "quotaExceeded",
    }
)
_CREDENTIAL_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})

TokenSaver = Callable[[dict[str, str]], None]


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client in the process: loading the CA bundle costs about
    0.2 s, which a sync would pay per client (each sync opens a connector)."""
    return httpx.create_ssl_context()


class ScopeMissing(InvalidCredentials):
    """The grant lacks the scope this call needs (403 ACCESS_TOKEN_SCOPE_INSUFFICIENT)."""


class PhotoUnreachable(TransientError):
    """A photo's host could not be reached (or its URL is not one): whether the person has
    a photo, and which, is not known now."""


class SyncTokenExpired(Exception):
    """The sync token is no longer valid: start a full sync."""


@dataclass(frozen=True)
class ApiError:
    status: int
    grpc_status: str
    message: str
    reasons: frozenset[str]
    # google.rpc.RetryInfo.retryDelay, in seconds: "Clients should wait at least this long
    # between retrying the same request" (cloud.google.com/apis/design/errors#error_details).
    retry_delay: float | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            body = orjson.loads(response.content)
            error = body.get("error") if isinstance(body, dict) else None
        except orjson.JSONDecodeError:
            error = None
        if not isinstance(error, dict):
            text = response.text[:200].strip()
            return cls(response.status_code, "", text or response.reason_phrase, frozenset())
        details = [d for d in error.get("details") or () if isinstance(d, dict)]
        reasons = {d.get("reason") for d in details} | {
            e.get("reason") for e in error.get("errors") or () if isinstance(e, dict)
        }
        delays = [
            _duration(d.get("retryDelay"))
            for d in details
            if str(d.get("@type", "")).endswith("google.rpc.RetryInfo")
        ]
        return cls(
            response.status_code,
            str(error.get("status") or ""),
            str(error.get("message") or response.reason_phrase),
            frozenset(r for r in reasons if isinstance(r, str)),
            next((d for d in delays if d is not None), None),
        )

    def __str__(self) -> str:
        status = f" {self.grpc_status}" if self.grpc_status else ""
        return f"Google People API {self.status}{status}: {self.message}"


def _duration(value: Any) -> float | None:
    """A google.protobuf.Duration in proto JSON ("30s", "1.5s"), in seconds."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        return max(0.0, float(value[:-1]))
    except ValueError:
        return None


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
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
    return max(0.0, when.timestamp() - time.time())


class PeopleClient:
    """The People API for one Google account."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        access_token: str | None = None,
        expires_at: int | None = None,
        people_url: str = DEFAULT_PEOPLE_URL,
        token_url: str = DEFAULT_TOKEN_URL,
        on_token: TokenSaver | None = None,
        read_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.people_url = people_url.rstrip("/")
        self.token_url = token_url
        self.read_retries = read_retries
        self._on_token = on_token
        self._refresh_token = refresh_token
        # One refresh at a time: the engine may read two listings at once (authlib's
        # client would refresh an expired token in each thread).
        self._token_lock = threading.RLock()
        token: dict[str, Any] = {
            "access_token": access_token or "",
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            # No stored access token: expired, so the first call refreshes.
            "expires_at": int(expires_at or 0) if access_token else 0,
        }
        self._http = OAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            token=token,
            token_endpoint=token_url,
            token_endpoint_auth_method="client_secret_post",
            update_token=self._token_updated,
            leeway=REFRESH_LEEWAY,
            timeout=TIMEOUT,
            limits=LIMITS,
            transport=transport,
            headers={"Accept-Encoding": "gzip"},
            verify=_tls(),
        )
        # Photos live on another host (googleusercontent.com) and need no token: a client
        # of their own, so the bearer token never leaves for it.
        self._photos = httpx.Client(
            timeout=TIMEOUT,
            limits=LIMITS,
            transport=transport,
            follow_redirects=True,
            verify=_tls(),
        )

    def close(self) -> None:
        self._http.close()
        self._photos.close()

    # --- Tokens -------------------------------------------------------------------------------

    def _token_updated(self, token: Mapping[str, Any], refresh_token: str | None = None) -> None:
        lifetime = token.get("expires_in")
        if isinstance(lifetime, int | float) and lifetime > 0:
            # A token granted for less than the leeway would count as expired at once, and
            # be refreshed before every call: a quarter of its life then.
            self._http.leeway = min(REFRESH_LEEWAY, int(lifetime) // 4)
        new_refresh = str(token.get("refresh_token") or self._refresh_token)
        self._refresh_token = new_refresh
        if self._on_token is not None:
            self._on_token(
                {
                    "google_access_token": str(token.get("access_token") or ""),
                    "google_access_token_expires_at": str(int(token.get("expires_at") or 0)),
                    "google_refresh_token": new_refresh,
                }
            )

    def refresh(self, stale: str | None = None) -> None:
        """A new access token now; with ``stale``, only if the one held is still that one
        (another thread may have refreshed it meanwhile)."""
        try:
            with self._token_lock:
                if stale is not None and self._http.token.get("access_token") != stale:
                    return
                self._http.refresh_token(self.token_url, refresh_token=self._refresh_token)
        except OAuthError as exc:
            raise _token_error(exc) from None
        except httpx.TransportError as exc:
            raise TransientError(f"Google's token endpoint is unreachable: {exc}") from None
        except httpx.HTTPStatusError as exc:  # authlib raises for a status it cannot parse
            raise _token_status(exc) from None
        except ValueError as exc:  # a body that is not JSON (a proxy's 502 page...)
            raise TransientError(f"Google's token endpoint answered garbage: {exc}") from None

    # --- Calls --------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | list[tuple[str, str]]) -> Any:
        return self.call("GET", path, params=params)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> Any:
        """One People API call; its JSON answer, or a classified error."""
        content = self._send(method, path, params=params, body=body).content
        return orjson.loads(content) if content else {}

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> httpx.Response:
        url = f"{self.people_url}/v1/{path}"
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempts = 1 + (self.read_retries if method == "GET" else 0)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._token_lock:
                    # Refreshed here when it expires, one thread at a time.
                    self._http.ensure_active_token(self._http.token)
                    sent_with = self._http.token.get("access_token")
                response: httpx.Response = self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except OAuthError as exc:
                raise _token_error(exc) from None
            except httpx.HTTPStatusError as exc:
                raise _token_status(exc) from None
            except httpx.TransportError as exc:
                if attempt < attempts:
                    time.sleep(0.2 * attempt)
                    continue
                raise TransientError(f"Google People API unreachable: {exc}") from None
            except ValueError as exc:  # the token endpoint answered something not JSON
                raise TransientError(f"Google's token endpoint answered garbage: {exc}") from None
            status = response.status_code
            if status < 300:
                return response
            if status == 401 and not refreshed:
                # Expired early or revoked server-side: one refresh, then one more try.
                refreshed = True
                self.refresh(stale=sent_with)
                attempt -= 1
                continue
            if status >= 500 and attempt < attempts:
                # As soon as Google asks, not sooner; a longer wait is the engine's back-off.
                wait = _wait(response, ApiError.of(response))
                if wait is None or wait <= INLINE_WAIT:
                    time.sleep(0.2 * attempt if wait is None else wait)
                    continue
            raise self._classify(response)

    def _classify(self, response: httpx.Response) -> Exception:
        error = ApiError.of(response)
        status = response.status_code
        if "EXPIRED_SYNC_TOKEN" in error.reasons and status in (400, 410):
            return SyncTokenExpired(str(error))
        if status in (400, 410) and "syncToken" in response.request.url.params:
            # A token Google no longer takes without saying it expired: a corrupt or unknown
            # one is 400 INVALID_ARGUMENT "Request contains an invalid argument." (GM §3.1,
            # fleapower#2), and one client fixture shows the expiry itself as INVALID_ARGUMENT
            # with no reason. KDE and Sailfish start over without the token on such a 400, as
            # here (and on a 410, the expiry "often described as" one, P §2a): a full sync
            # that fails the same way is then a plain PermanentError.
            return SyncTokenExpired(str(error))
        if status == 429 or (
            status == 403
            and (
                error.reasons & _RATE_LIMIT_REASONS
                # RESOURCE_EXHAUSTED is the quota's google.rpc.Code, whatever the details;
                # "Quota exceeded for quota metric ..." its message (GM §2 #7).
                or error.grpc_status == "RESOURCE_EXHAUSTED"
                or "quota exceeded" in error.message.lower()
            )
        ):
            return TransientError(str(error), _wait(response, error))
        if status == 409 and error.grpc_status == "ABORTED" and _over_etag(response.request):
            # google.rpc.Code: ABORTED "if the client should retry at a higher level (e.g.,
            # when a client-specified test-and-set fails, indicating the client should
            # restart a read-modify-write sequence)": a write made over an etag, sent again
            # unchanged, would be aborted again; re-read and re-applied, it is not.
            return PreconditionFailed(str(response.request.url))
        if status >= 500 or (status == 409 and error.grpc_status == "ABORTED"):
            # ABORTED: a concurrency conflict (google.rpc.Code: "retry at a higher level"),
            # unlike a 409 ALREADY_EXISTS (a contact group's name taken).
            return TransientError(str(error), _wait(response, error))
        if status == 401:
            return InvalidCredentials(
                f"Google refused the account's access token ({error.message}); reconnect the "
                "account"
            )
        if status == 403 and _scope_insufficient(response, error):
            return ScopeMissing(
                "Google's grant lacks the contacts scope "
                "(https://www.googleapis.com/auth/contacts); reconnect the account and allow "
                "access to contacts"
            )
        if status == 404:
            return RemoteNotFound(str(response.request.url))
        # A stale etag: updateContact's reference says "a 400 error with reason
        # "failedPrecondition"" (the service answers status FAILED_PRECONDITION, GM §3.1),
        # its older text "a 412 error".
        # Only for a write made over an etag: a create has none to re-read, and there
        # FAILED_PRECONDITION is google.rpc.Code's "not in a state required for the
        # operation", a refusal.
        if _over_etag(response.request) and (
            status == 412
            or (
                status == 400
                and (
                    error.grpc_status == "FAILED_PRECONDITION"
                    or "failedPrecondition" in error.reasons
                )
            )
        ):
            return PreconditionFailed(str(response.request.url))
        return PermanentError(str(error), status)

    def pages(
        self, path: str, params: Mapping[str, Any], key: str
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Every page of a listing: (its items, the sync token on the last page)."""
        query = dict(params)
        while True:
            page = self.get(path, query)
            token = page.get("nextPageToken")
            if token:
                yield page.get(key) or [], None
                query["pageToken"] = token
                continue
            yield page.get(key) or [], page.get("nextSyncToken")
            return

    def raw_pages(
        self, path: str, params: Mapping[str, Any], found: dict[str, str | None]
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Every page of a listing, as Google sent it and parsed;
        ``found["nextSyncToken"]`` is set before the last page is handed out."""
        query = dict(params)
        while True:
            content = self._send("GET", path, params=query).content
            page = orjson.loads(content)
            token = page.get("nextPageToken")
            if not token:
                found["nextSyncToken"] = page.get("nextSyncToken")
                yield content, page
                return
            yield content, page
            query["pageToken"] = token

    def photo(self, url: str) -> tuple[bytes, str] | None:
        """A photo's bytes and type; None if it is gone."""
        try:
            if self._same_origin(url):
                response = self._api_photo(url)
            else:
                response = self._photos.get(url)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise PhotoUnreachable(f"Google photo unreachable: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"Google photo {response.status_code}", retry_after(response))
        if response.status_code >= 400:
            return None
        ctype = response.headers.get("content-type", "image/jpeg").split(";")[0].strip()
        return response.content, ctype

    def _same_origin(self, url: str) -> bool:
        photo, api = httpx.URL(url), httpx.URL(self.people_url)
        return (photo.scheme, photo.host, photo.port) == (api.scheme, api.host, api.port)

    def _api_photo(self, url: str) -> httpx.Response:
        """A photo the People API's own host serves: with the access token, which may go
        there (Google's photos are on googleusercontent.com and need none, but a server
        that answers the API and its photos alike may want it), refreshed once on a 401."""
        for attempt in range(2):
            try:
                with self._token_lock:
                    self._http.ensure_active_token(self._http.token)
                    sent_with = self._http.token.get("access_token")
            except OAuthError as exc:
                raise _token_error(exc) from None
            response: httpx.Response = self._http.get(url, follow_redirects=True)
            if response.status_code != 401 or attempt:
                return response
            self.refresh(stale=sent_with)
        raise AssertionError("unreachable")


def _over_etag(request: httpx.Request) -> bool:
    """Whether a request writes over the etag it was read with: updateContact, and
    contactGroups.update (the API's one PUT)."""
    return (request.method == "PATCH" and request.url.path.endswith(":updateContact")) or (
        request.method == "PUT"
    )


def _wait(response: httpx.Response, error: ApiError) -> float | None:
    """How long Google asks a client to wait: its Retry-After header, else the body's
    RetryInfo."""
    header = retry_after(response)
    return header if header is not None else error.retry_delay


def _scope_insufficient(response: httpx.Response, error: ApiError) -> bool:
    """Whether a 403 says the grant lacks the call's scope: its ErrorInfo reason, or where a
    server leaves that out, the message Google sends with it ("Request had insufficient
    authentication scopes.") or the bearer challenge's error (RFC 6750 §3.1)."""
    return (
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in error.reasons
        or "insufficient authentication scopes" in error.message.lower()
        or "insufficient_scope" in response.headers.get("www-authenticate", "")
    )


_TRANSIENT_STATUSES = frozenset(
    {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"}
)


def _token_error(exc: OAuthError) -> Exception:
    error = getattr(exc, "error", "") or ""
    description = getattr(exc, "description", "") or ""
    if isinstance(error, dict):
        # The google.rpc.Status shape of Google's APIs ({"error": {"code", "message",
        # "status"}}), not RFC 6749's: a quota or an outage, or else a refusal of the grant.
        status, message = str(error.get("status") or ""), str(error.get("message") or "")
        if error.get("code") == 429 or status in _TRANSIENT_STATUSES:
            return TransientError(f"Google's token endpoint failed: {status} {message}".strip())
        return InvalidCredentials(
            f"Google refused the account's grant ({status or error.get('code')}: "
            f"{message or 'no message'}); reconnect the account to sign in to Google again"
        )
    if error in _CREDENTIAL_ERRORS:
        what = "client id or secret" if error == "invalid_client" else "refresh token"
        return InvalidCredentials(
            f"Google refused the {what} ({error}: {description or 'no description'}); "
            "reconnect the account to sign in to Google again"
        )
    return TransientError(f"Google's token endpoint failed: {error} {description}".strip())


def _token_status(exc: httpx.HTTPStatusError) -> Exception:
    status = exc.response.status_code
    message = f"Google's token endpoint answered {status}"
    if status >= 500 or status == 429:
        return TransientError(message, retry_after(exc.response))
    return PermanentError(message, status)
