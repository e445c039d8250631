"""v2 native authentication: connect an account over HTTP, without the CLI."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import anyio
from anyio import to_thread
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from rolodex.api import schemas
from rolodex.api.account import render_account
from rolodex.api.deps import Services, json_body, services
from rolodex.api.render import json_of
from rolodex.connectors.outbound import UNREACHABLE
from rolodex.domain.errors import ProviderUnreachable

router = APIRouter(tags=["authentication"])

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Error, "description": "Missing fields or unsupported provider"},
    401: {"model": schemas.Error, "description": "Unknown client id or wrong client secret"},
    403: {"model": schemas.Error, "description": "The provider refused the credentials"},
    502: {"model": schemas.Error, "description": "The provider could not be reached"},
}


@router.post(
    "/connect/authorize",
    summary="Check a provider's settings and get a one-time code",
    description='Body: `{"client_id", "name", "email_address", "provider", "settings", '
    '"scopes"}`. Providers: `carddav` with settings `{"url", "username", "password"}`, and '
    '`icloud` with `{"password"}` (an app password). The credentials are checked now.',
    responses={200: {"description": '`{"code": "..."}`'}, **_AUTH_ERRORS},
)
async def authorize(
    body: dict[str, Any] = Depends(json_body), svc: Services = Depends(services)
) -> Response:
    # Checking the settings waits on another server: in threads of its own, so slow or
    # silent servers never take the threads every other route runs on, and within the
    # deadline (which the connections themselves keep too: rolodex.connectors.outbound).
    with anyio.move_on_after(svc.settings.provider_check_seconds + 2) as waited:
        code = await to_thread.run_sync(
            svc.application.authorize, body, limiter=_checks(), abandon_on_cancel=True
        )
    if waited.cancelled_caught:
        raise ProviderUnreachable(UNREACHABLE)
    return json_of({"code": code})


_CHECK_THREADS = 8
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _checks() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(_CHECK_THREADS)
    return limiter


@router.post(
    "/connect/token",
    summary="Trade a code for an account and its access token",
    description='Body: `{"client_id", "client_secret", "code"}`. Answers the account object '
    "with `access_token`.",
    responses={200: {"description": "The account with its access token"}, **_AUTH_ERRORS},
)
def token(body: dict[str, Any] = Depends(json_body), svc: Services = Depends(services)) -> Response:
    created = svc.application.token(body)
    return json_of(
        {
            **render_account(created.account),
            "access_token": created.access_token,
            "billing_state": "paid",
        }
    )
