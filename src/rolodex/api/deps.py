"""What every route needs: the services, the caller's account, its body, its base URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from starlette.requests import ClientDisconnect

from rolodex.api.auth import token_from_authorization
from rolodex.config import Settings
from rolodex.domain.account import Account
from rolodex.domain.errors import BodyTooLarge, InvalidBody, InvalidHost
from rolodex.domain.wire import parse_json_object
from rolodex.service.accounts import AccountService
from rolodex.service.application import ApplicationService
from rolodex.service.changefeed import ChangeFeed
from rolodex.service.contacts import ContactService
from rolodex.service.groups import GroupService
from rolodex.service.mirror import Mirror
from rolodex.service.pictures import MAX_PICTURE_BYTES, PictureService
from rolodex.service.signin import SignInService
from rolodex.store import Store

MAX_JSON_BODY = 1024 * 1024


@dataclass
class Services:
    settings: Settings
    store: Store
    accounts: AccountService
    contacts: ContactService
    groups: GroupService
    pictures: PictureService
    application: ApplicationService
    mirror: Mirror
    changes: ChangeFeed
    signin: SignInService


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def current_account(request: Request) -> Account:
    token = token_from_authorization(request.headers.get("authorization"))
    return services(request).accounts.authenticate(token)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(limit)
        except ValueError:
            raise InvalidBody("Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer; a client's hang-up is no server error to log.
        raise InvalidBody("The client closed the connection before the body arrived") from None
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object of a write, whatever Content-Type claims (Node sends text/plain)."""
    return parse_json_object(await read_body(request, MAX_JSON_BODY))


async def picture_body(request: Request) -> bytes:
    return await read_body(request, MAX_PICTURE_BYTES)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]{{2,45}}\])(?::[0-9]{{1,5}})?")


def base_url(settings: Settings, scheme: str, host: str | None) -> bytes:
    """The base of the links a response carries, JSON-escaped (it is spliced into stored
    documents): the public URL, else ``scheme://Host`` for a well-formed, allowed Host."""
    if settings.public_url:
        return _json_escaped(settings.public_url.rstrip("/"))
    if host is None:
        host = "localhost"
    elif not host_allowed(host, settings.allowed_hosts):
        raise InvalidHost(host)
    return _json_escaped(f"{'https' if scheme == 'https' else 'http'}://{host}")


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header is a host name (or IP literal) with an optional port and, when
    ``allowed`` names any, one of them (``.example.com`` also takes its subdomains)."""
    if len(host) > 260 or not _HOST.fullmatch(host):
        return False
    if not allowed or "*" in allowed:
        return True
    name = host[: host.index("]") + 1] if host.startswith("[") else host.partition(":")[0]
    name = name.rstrip(".").lower()
    for pattern in allowed:
        pattern = pattern.lower()
        if name == pattern or (
            pattern.startswith(".") and (name.endswith(pattern) or name == pattern[1:])
        ):
            return True
    return False


def _json_escaped(text: str) -> bytes:
    return orjson.dumps(text)[1:-1]


def request_base_url(request: Request) -> bytes:
    return base_url(services(request).settings, request.url.scheme, request.headers.get("host"))
