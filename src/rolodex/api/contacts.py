"""Contact routes: the v2 contacts endpoints, plus picture writes beyond v2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from rolodex.api import schemas
from rolodex.api.conditional import none_match
from rolodex.api.deps import (
    Services,
    current_account,
    json_body,
    picture_body,
    request_base_url,
    services,
)
from rolodex.api.render import absolute
from rolodex.domain.account import Account
from rolodex.domain.etags import contact_etag
from rolodex.domain.query import ListQuery, parse_list_query

router = APIRouter(tags=["contacts"])


def json_response(body: bytes) -> Response:
    return Response(body, media_type="application/json")


# The two hot reads are shared with the ASGI fast path (rolodex.api.fastpath), which serves
# them without FastAPI's per-request machinery; these routes document them and serve them
# when the fast path is off.


def list_body(
    svc: Services, account: Account, params: Mapping[str, Sequence[str]] | ListQuery, base: bytes
) -> bytes:
    query = params if isinstance(params, ListQuery) else parse_list_query(params)
    if query.view == "count":
        return orjson.dumps({"count": svc.contacts.count(account, query.filter)})
    if query.view == "ids":
        return orjson.dumps(svc.contacts.ids(account, query))
    return svc.contacts.page_body(account, query, base)


def get_tagged(
    svc: Services, account: Account, contact_id: str, base: bytes
) -> tuple[bytes, bytes]:
    """One contact's document and its ``ETag`` (rolodex.domain.etags)."""
    return svc.contacts.tagged_document(account, contact_id, base)


def query_params(query_string: str) -> dict[str, list[str]]:
    return parse_qs(query_string, keep_blank_values=True)


@router.get(
    "/contacts",
    summary="List contacts",
    description='A bare JSON array in creation order; `view=count` gives `{"count": N}`, '
    "`view=ids` an array of ids. Filters match exactly (emails case-insensitively, phone "
    "numbers on their digits) and combine with each other and with the views.",
    responses={200: {"model": list[schemas.Contact]}, **schemas.ERRORS},
)
def list_contacts(
    request: Request,
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
    limit: str | None = Query(None, description="Page size: default 100, at most 1000"),
    offset: str | None = Query(None, description="How many contacts to skip"),
    view: str | None = Query(None, description="count or ids"),
    email: str | None = None,
    phone_number: str | None = None,
    street_address: str | None = None,
    postal_code: str | None = None,
    state: str | None = None,
    country: str | None = None,
    source: str | None = None,
    group: str | None = Query(None, description="A contact group id"),
    recurse: str | None = Query(None, description="With group: include subgroups"),
) -> Response:
    params = query_params(request.url.query)
    return json_response(list_body(svc, account, params, request_base_url(request)))


@router.post(
    "/contacts",
    summary="Create a contact",
    responses={200: {"model": schemas.Contact}, **schemas.WRITE_ERRORS},
    openapi_extra=schemas.json_body(schemas.ContactWrite),
)
def create_contact(
    request: Request,
    body: dict[str, Any] = Depends(json_body),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    return json_response(absolute(svc.contacts.create(account, body), request_base_url(request)))


_ETAG_HEADER = {
    "ETag": {
        "description": "The contact's current version (beyond v2); send it back in "
        "`If-Match` to write only that version",
        "schema": {"type": "string"},
    }
}
_IF_MATCH = (
    "Beyond v2: write only if the contact is still the version this names (an `ETag` "
    "from GET, PUT or a list of them, or `*`); otherwise 412. Without it, v2 behaviour."
)
_PRECONDITION_FAILED: dict[int | str, dict[str, Any]] = {
    412: {"model": schemas.Error, "description": "`If-Match` names an outdated version"}
}


@router.get(
    "/contacts/{contact_id}",
    summary="Get a contact",
    description="Query parameters are ignored (the Python SDK sends a stray `offset=0`).",
    responses={
        200: {"model": schemas.Contact, "headers": _ETAG_HEADER},
        **schemas.ERRORS,
    },
)
def get_contact(
    request: Request,
    contact_id: str,
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    doc, etag = get_tagged(svc, account, contact_id, request_base_url(request))
    return Response(doc, media_type="application/json", headers={"ETag": etag.decode()})


@router.put(
    "/contacts/{contact_id}",
    summary="Update a contact",
    description="Replaces the fields the body sends and keeps those it omits.",
    responses={
        200: {"model": schemas.Contact, "headers": _ETAG_HEADER},
        **schemas.WRITE_ERRORS,
        **_PRECONDITION_FAILED,
    },
    openapi_extra=schemas.json_body(schemas.ContactWrite),
)
def update_contact(
    request: Request,
    contact_id: str,
    body: dict[str, Any] = Depends(json_body),
    if_match: str | None = Header(None, description=_IF_MATCH),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    doc = svc.contacts.update(account, contact_id, body, if_match=if_match)
    return Response(
        absolute(doc, request_base_url(request)),
        media_type="application/json",
        headers={"ETag": contact_etag(doc).decode()},
    )


@router.delete(
    "/contacts/{contact_id}",
    summary="Delete a contact",
    responses={
        200: {"description": "Deleted; the body is `{}`"},
        **schemas.WRITE_ERRORS,
        **_PRECONDITION_FAILED,
    },
)
def delete_contact(
    contact_id: str,
    if_match: str | None = Header(None, description=_IF_MATCH),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    svc.contacts.delete(account, contact_id, if_match=if_match)
    return json_response(b"{}")


_PICTURE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image bytes",
        "content": {"image/jpeg": {}, "image/png": {}, "image/gif": {}, "image/webp": {}},
    },
    304: {"description": "`If-None-Match` names the picture's current ETag"},
}


@router.get(
    "/contacts/{contact_id}/picture",
    summary="Get a contact's picture",
    responses={**_PICTURE_RESPONSE, **schemas.ERRORS},
)
def get_picture(
    request: Request,
    contact_id: str,
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    picture = svc.pictures.get(account, contact_id)
    headers = {
        "ETag": f'"{picture.etag}"',
        "Cache-Control": "private, max-age=0",
        # The bytes were checked to be one of four image types; no browser may guess
        # another (an uploaded "image" rendered as HTML).
        "X-Content-Type-Options": "nosniff",
    }
    if none_match(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(picture.data, media_type=picture.content_type, headers=headers)


@router.put(
    "/contacts/{contact_id}/picture",
    summary="Set a contact's picture (beyond v2)",
    description="The body is the image: JPEG, PNG, GIF or WebP (judged by content), at most "
    "5 MB. Returns the updated contact.",
    responses={200: {"model": schemas.Contact}, **schemas.WRITE_ERRORS},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def put_picture(
    request: Request,
    contact_id: str,
    data: bytes = Depends(picture_body),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    doc = svc.pictures.put(account, contact_id, data)
    return json_response(absolute(doc, request_base_url(request)))


@router.delete(
    "/contacts/{contact_id}/picture",
    summary="Remove a contact's picture (beyond v2)",
    responses={200: {"model": schemas.Contact}, **schemas.WRITE_ERRORS},
)
def delete_picture(
    request: Request,
    contact_id: str,
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    doc = svc.pictures.delete(account, contact_id)
    return json_response(absolute(doc, request_base_url(request)))
