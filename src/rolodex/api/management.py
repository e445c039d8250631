"""v2's application routes under ``/a/{client_id}``: the accounts of the application.

They take the application's client secret as the HTTP Basic user name (what the SDKs
send: Python's ``APIClient(id, secret).accounts``, Node's ``Nylas.accounts``), never an
account's access token, which must not manage other accounts (DESIGN, security; the
Python SDK sends one there when it was built with one, and is refused).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from rolodex.api import schemas
from rolodex.api.auth import token_from_authorization
from rolodex.api.contacts import query_params
from rolodex.api.deps import MAX_JSON_BODY, Services, read_body, services
from rolodex.api.render import json_of
from rolodex.domain.account import Account
from rolodex.domain.errors import InvalidBody, InvalidClient, Unauthenticated
from rolodex.domain.ids import hash_token
from rolodex.domain.query import parse_list_query
from rolodex.domain.wire import parse_json_object

router = APIRouter(prefix="/a/{client_id}", tags=["application"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: schemas.ERRORS[400],
    401: {"model": schemas.Error, "description": "Not this application's client secret"},
    404: {"model": schemas.Error, "description": "No such account"},
}


def application(request: Request, client_id: str, svc: Services = Depends(services)) -> None:
    """Only the application's own client id and secret pass; anything else is the v2 401
    (not ``/connect/token``'s 400: these routes authenticate like the account routes)."""
    secret = token_from_authorization(request.headers.get("authorization"))
    if secret is None:
        raise Unauthenticated()
    try:
        svc.application.check_client(client_id, secret)
    except InvalidClient:
        raise Unauthenticated() from None


def render_management_account(account: Account) -> dict[str, Any]:
    """The management form of an account (auth reference §4.3): ``email``, not
    ``email_address``; the hyphenated sync states; always paid, never a trial."""
    return {
        "id": account.id,
        "object": "account",
        "account_id": account.id,
        "namespace_id": account.id,
        "email": account.email_address,
        "name": account.name,
        "provider": account.provider,
        "sync_state": account.sync_state,
        "billing_state": "paid",
        "trial": False,
        "linked_at": int(account.linked_at),
    }


async def json_body_or_empty(request: Request) -> dict[str, Any]:
    """A JSON object, or none at all: the SDKs send ``{}`` or nothing where nothing is
    asked for."""
    raw = await read_body(request, MAX_JSON_BODY)
    return parse_json_object(raw) if raw.strip() else {}


@router.get(
    "/accounts",
    summary="The application's accounts",
    description="A bare JSON array in creation order, paged with `offset` and `limit` "
    "(default 100, at most 1000).",
    responses={200: {"description": "Management account objects"}, **_ERRORS},
    dependencies=[Depends(application)],
)
def list_accounts(
    request: Request,
    svc: Services = Depends(services),
    limit: str | None = Query(None, description="Page size: default 100, at most 1000"),
    offset: str | None = Query(None, description="How many accounts to skip"),
) -> Response:
    params = query_params(request.url.query)
    paging = parse_list_query({k: v for k, v in params.items() if k in ("limit", "offset")})
    accounts = sorted(svc.accounts.list(), key=lambda a: (a.linked_at, a.id))
    page = accounts[paging.offset : paging.offset + paging.limit]
    return json_of([render_management_account(a) for a in page])


@router.get(
    "/accounts/{account_id}",
    summary="One of the application's accounts",
    description="Query parameters are ignored (the Python SDK sends a stray `offset=0`).",
    responses={200: {"description": "A management account object"}, **_ERRORS},
    dependencies=[Depends(application)],
)
def get_account(account_id: str, svc: Services = Depends(services)) -> Response:
    return json_of(render_management_account(svc.accounts.get(account_id)))


@router.delete(
    "/accounts/{account_id}",
    summary="Delete an account, its contacts and its tokens",
    responses={200: {"description": '`{"success": true}`'}, **_ERRORS},
    dependencies=[Depends(application)],
)
def delete_account(account_id: str, svc: Services = Depends(services)) -> Response:
    svc.accounts.delete(account_id)  # an unknown id is NoSuchAccount: a 404
    return json_of({"success": True})


@router.post(
    "/accounts/{account_id}/revoke-all",
    summary="Revoke every access token of an account",
    description='Body `{}` or `{"keep_access_token": TOKEN}` to keep that one.',
    responses={200: {"description": '`{"success": true}`'}, **_ERRORS},
    dependencies=[Depends(application)],
)
def revoke_all(
    account_id: str,
    body: dict[str, Any] = Depends(json_body_or_empty),
    svc: Services = Depends(services),
) -> Response:
    keep = body.get("keep_access_token")
    if keep is not None and not isinstance(keep, str):
        raise InvalidBody("keep_access_token must be a string")
    svc.accounts.revoke_all(account_id, keep=hash_token(keep) if keep else None)
    return json_of({"success": True})


@router.post(
    "/accounts/{account_id}/token-info",
    summary="Whether an access token is the account's, and since when",
    description='Body `{"access_token": TOKEN}`; answers `{"created_at", "scopes", "state", '
    '"updated_at"}`.',
    responses={200: {"description": "The token's information"}, **_ERRORS},
    dependencies=[Depends(application)],
)
def token_info(
    account_id: str,
    body: dict[str, Any] = Depends(json_body_or_empty),
    svc: Services = Depends(services),
) -> Response:
    token = body.get("access_token")
    if not token:
        raise InvalidBody("No access_token passed.")
    if not isinstance(token, str):
        raise InvalidBody("access_token must be a string")
    created = int(svc.accounts.token_created_at(account_id, token))
    # A token lives until revoked and is never changed; every token is for contacts.
    return json_of(
        {"created_at": created, "scopes": "contacts", "state": "valid", "updated_at": created}
    )


@router.get(
    "",
    summary="The application's details",
    responses={200: {"description": "`{application_name, icon_url, redirect_uris}`"}, **_ERRORS},
    dependencies=[Depends(application)],
)
def application_details(svc: Services = Depends(services)) -> Response:
    return json_of(
        {
            "application_name": "Rolodex",
            "icon_url": None,
            "redirect_uris": svc.signin.redirect_uris(),
        }
    )
