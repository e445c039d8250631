"""The one place where CardDAV HTTP outcomes become classified connector errors."""

from __future__ import annotations

import email.utils
import enum
import time

import httpx

from rolodex.connectors.base import (
    ConnectorError,
    CursorExpired,
    InvalidCredentials,
    PermanentError,
    PreconditionFailed,
    RemoteNotFound,
    TransientError,
)
from rolodex.connectors.carddav.xml import DAV, error_conditions, q


class Phase(enum.Enum):
    """What the request was for; the same status means different things per phase."""

    DISCOVERY = "discovery"  # finding principal, home set, address books
    SYNC = "sync"  # sync-collection REPORT carrying a token
    READ = "read"  # other PROPFIND / REPORT / GET
    WRITE = "write"  # PUT / DELETE / MKCOL


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is malformed but common
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(
    outcome: httpx.Response | httpx.HTTPError, *, href: str, phase: Phase
) -> ConnectorError:
    """Map a failed request to the error the sync engine acts on.

    Callers raise the result; a success status never reaches here.
    """
    if isinstance(outcome, httpx.HTTPError):
        if isinstance(outcome, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return PermanentError(f"bad CardDAV URL {href}: {outcome}")
        # Connection refused/reset, DNS, timeouts, broken bodies: the network, not the request.
        return TransientError(f"{type(outcome).__name__} on {href}: {outcome}")

    status = outcome.status_code
    what = f"HTTP {status} on {outcome.request.method} {href}"
    if status == 429 or status >= 500:
        return TransientError(what, parse_retry_after(outcome.headers.get("Retry-After")))
    if status == 401:
        return InvalidCredentials(what)
    if phase is Phase.SYNC:
        # RFC 6578 names the precondition, but servers disagree on the status: Radicale and
        # sabre 403, others 409/410, Xandikos 412. Any refusal of a tokened REPORT is
        # recoverable by a full sync, which is cheaper than stopping the account.
        invalid = q(DAV, "valid-sync-token") in error_conditions(outcome.content)
        if invalid or status in (403, 409, 410, 412):
            return CursorExpired(href)
    if status == 403 and phase is Phase.DISCOVERY:
        # A principal we may not read means these credentials do not belong to it.
        return InvalidCredentials(what)
    if status == 412:
        return PreconditionFailed(href)
    if status in (404, 410):
        return RemoteNotFound(href)
    return PermanentError(what, status)
