"""The caller's account: the v2 account object, capabilities, token revocation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from rolodex.api import schemas
from rolodex.api.auth import token_from_authorization
from rolodex.api.deps import Services, current_account, services
from rolodex.api.render import json_of
from rolodex.domain.account import Account
from rolodex.domain.profiles import profile_for

router = APIRouter(tags=["account"])


def render_account(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "object": "account",
        "account_id": account.id,
        "name": account.name,
        "email_address": account.email_address,
        "provider": account.provider,
        "organization_unit": account.organization_unit,
        "sync_state": account.sync_state,
        "linked_at": int(account.linked_at),
        "sandbox": account.sandbox,
        "last_synced_at": int(account.last_synced_at) if account.last_synced_at else None,
        "last_error": account.last_error,
    }


@router.get(
    "/account",
    summary="The account of the access token",
    responses={200: {"model": schemas.Account}, **schemas.ERRORS},
)
def get_account(
    account: Account = Depends(current_account), svc: Services = Depends(services)
) -> Response:
    return json_of(render_account(svc.accounts.get(account.id)))


@router.get(
    "/account/capabilities",
    summary="What the account's provider accepts (beyond v2)",
    description="The provider profile that validates every write: allowed types and how many "
    "of each, supported fields, group semantics.",
    responses=dict(schemas.ERRORS),
)
def get_capabilities(
    account: Account = Depends(current_account), svc: Services = Depends(services)
) -> Response:
    capabilities = profile_for(account.provider).capabilities()
    spec = svc.accounts.providers.get(account.provider)
    connection = None
    if spec is not None:
        connection = {
            "title": spec.title,
            "sign_in": list(spec.sign_in),
            "poll_interval": spec.poll_interval,
            "also_known_as": list(spec.aliases),
            "settings": [
                {"name": s.name, "secret": s.secret, "required": s.required, "help": s.help}
                for s in spec.settings
            ],
        }
    return json_of({**capabilities, "sandbox": account.sandbox, "connection": connection})


@router.post(
    "/account/sync",
    summary="Ask for a sync of the account now (beyond v2)",
    description="For accounts connected to a provider; answers at once, and the sync starts "
    "within seconds. `sync_in_progress` says whether a sync was running already (then "
    "another follows it). GET /account shows the outcome in sync_state, last_synced_at and "
    "last_error.",
    responses={200: {"model": schemas.Account}, **schemas.ERRORS},
)
def request_sync(
    account: Account = Depends(current_account), svc: Services = Depends(services)
) -> Response:
    running = svc.mirror.request_sync(account.id) if account.is_connected else False
    return json_of({**render_account(svc.accounts.get(account.id)), "sync_in_progress": running})


@router.post(
    "/oauth/revoke",
    summary="Revoke the access token the request is made with",
    responses={200: {"description": '`{"success": true}`'}, **schemas.ERRORS},
)
def revoke(
    request: Request,
    _account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    token = token_from_authorization(request.headers.get("authorization"))
    assert token is not None  # current_account has authenticated it
    svc.accounts.revoke(token)
    return json_of({"success": True})
