"""What every route needs: the services, the caller's account, its body, its base URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from rolodex.api.auth import token_from_authorization
from rolodex.config import Settings
from rolodex.domain.account import Account
from rolodex.domain.errors import BodyTooLarge, InvalidBody
from rolodex.domain.wire import parse_json_object
from rolodex.service.accounts import AccountService
from rolodex.service.application import ApplicationService
from rolodex.service.changefeed import ChangeFeed
from rolodex.service.contacts import ContactService
from rolodex.service.groups import GroupService
from rolodex.service.mirror import Mirror
from rolodex.service.pictures import MAX_PICTURE_BYTES, PictureService
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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object of a write, whatever Content-Type claims (Node sends text/plain)."""
    return parse_json_object(await read_body(request, MAX_JSON_BODY))


async def picture_body(request: Request) -> bytes:
    return await read_body(request, MAX_PICTURE_BYTES)


def base_url(settings: Settings, scheme: str, host: str | None) -> bytes:
    if settings.public_url:
        return settings.public_url.rstrip("/").encode()
    return f"{scheme}://{host or 'localhost'}".encode()


def request_base_url(request: Request) -> bytes:
    return base_url(services(request).settings, request.url.scheme, request.headers.get("host"))
