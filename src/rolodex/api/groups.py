"""Contact groups: the v2 list, plus writes beyond v2: in Rolodex, and at the provider for
connected accounts whose groups can be written there (Google contact groups, Microsoft
contact folders; ``rolodex.service.groups``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from rolodex.api import schemas
from rolodex.api.deps import Services, current_account, json_body, services
from rolodex.api.render import json_of
from rolodex.domain.account import Account
from rolodex.domain.wire import render_group

router = APIRouter(tags=["groups"])


# Declared before /contacts/{contact_id} (the app includes this router first), or "groups"
# would be taken for a contact id.
@router.get(
    "/contacts/groups",
    summary="List contact groups",
    responses={200: {"model": list[schemas.ContactGroup]}, **schemas.ERRORS},
)
def list_groups(
    account: Account = Depends(current_account), svc: Services = Depends(services)
) -> Response:
    return json_of([render_group(g) for g in svc.groups.list(account)])


@router.post(
    "/contacts/groups",
    summary="Create a contact group (beyond v2)",
    description=(
        "Local and sandbox accounts; Google accounts (a contact group) and Microsoft "
        "accounts (a contact folder inside the default one, `path` `Contacts/<name>`), "
        "where the group is made at the provider by the next sync. CardDAV groups are "
        "names on contacts and are set through a contact's `group`: 400."
    ),
    responses={
        200: {"model": schemas.ContactGroup},
        409: {"model": schemas.Error},
        **schemas.WRITE_ERRORS,
    },
    openapi_extra=schemas.json_body(schemas.GroupWrite),
)
def create_group(
    body: dict[str, Any] = Depends(json_body),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    return json_of(render_group(svc.groups.create(account, body)))


@router.put(
    "/contacts/groups/{group_id}",
    summary="Rename a contact group (beyond v2)",
    description=(
        "At the provider too for Google and Microsoft accounts. Groups the provider keeps "
        "itself (Google's system groups, the mailbox's default folder) are a 400."
    ),
    responses={
        200: {"model": schemas.ContactGroup},
        409: {"model": schemas.Error},
        **schemas.WRITE_ERRORS,
    },
    openapi_extra=schemas.json_body(schemas.GroupWrite),
)
def rename_group(
    group_id: str,
    body: dict[str, Any] = Depends(json_body),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    return json_of(render_group(svc.groups.rename(account, group_id, body)))


@router.delete(
    "/contacts/groups/{group_id}",
    summary="Delete a contact group (beyond v2)",
    description=(
        "Removes the group and its memberships; the contacts stay. A Microsoft folder's "
        "contacts move to the default folder first (deleting an Outlook folder deletes the "
        "contacts in it); a folder holding other folders is a 400."
    ),
    responses={200: {"description": "Deleted; the body is `{}`"}, **schemas.WRITE_ERRORS},
)
def delete_group(
    group_id: str,
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    svc.groups.delete(account, group_id)
    return json_of({})
