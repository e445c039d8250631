"""v2 deltas: the account's change feed, polled, long-polled or streamed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from rolodex.api import schemas
from rolodex.api.deps import Services, current_account, request_base_url, services
from rolodex.api.draining import CHECK_SECONDS, draining
from rolodex.api.render import absolute
from rolodex.domain.account import Account
from rolodex.domain.errors import InvalidQuery, Unauthenticated
from rolodex.service.changefeed import Delta, DeltaPage, parse_types


def parameters_once(request: Request) -> None:
    """Each parameter once, as the list's (rolodex.domain.query): of two cursors FastAPI
    took the last, where a proxy or cache in front may have read the first."""
    names = [name for name, _ in request.query_params.multi_items()]
    for name in names:
        if names.count(name) > 1:
            raise InvalidQuery(f"Parameter {name} may be given only once")


router = APIRouter(tags=["deltas"], dependencies=[Depends(parameters_once)])

MAX_LONGPOLL = 120.0
MAX_STREAM = 1800.0
# v2 sent a bare newline on an idle stream every 5 s; the Node SDK's DeltaStream takes 15 s
# without one for a dead connection and opens a new one.
HEARTBEAT_SECONDS = 5.0
# A timeout is plain decimal seconds: no exponents, signs, "_", nan or inf.
SECONDS = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"


def seconds(text: str | None, default: float, maximum: float) -> float:
    if text is None or text == "":
        return default
    value = float(text)  # SECONDS has checked the spelling
    if value > maximum:
        raise InvalidQuery(f"timeout must be at most {maximum:g} seconds")
    return value


def render_delta(delta: Delta, base: bytes) -> bytes:
    head = orjson.dumps(
        {
            "cursor": delta.cursor,
            "object": delta.object_type,
            "id": delta.object_id,
            "event": delta.event,
        }
    )
    attributes = absolute(delta.document, base) if delta.document is not None else b"null"
    return head[:-1] + b',"attributes":' + attributes + b"}"


def render_page(page: DeltaPage, base: bytes) -> bytes:
    head = orjson.dumps({"cursor_start": page.cursor_start, "cursor_end": page.cursor_end})
    body = b",".join(render_delta(d, base) for d in page.deltas)
    return head[:-1] + b',"deltas":[' + body + b"]}"


def delta_types(
    include_types: str | None = Query(None, description="Comma list: contact, contact_group"),
    excluded_types: str | None = Query(None, description="Comma list of types to leave out"),
    exclude_types: str | None = Query(None, include_in_schema=False),
    include_types_node: str | None = Query(None, alias="includeTypes", include_in_schema=False),
    view: str | None = Query(None, include_in_schema=False),
) -> frozenset[str]:
    """The object types a delta request asks for (v2 spells the exclusion both ways; views
    expand messages and threads only, so ``view`` is accepted and ignored). The Node SDK's
    ``deltas.since`` sends its inclusion as ``includeTypes``: ignored, its caller would get
    every default type instead of the ones asked for."""
    return parse_types(include_types or include_types_node, excluded_types or exclude_types)


@router.post(
    "/delta/latest_cursor",
    summary="The cursor of the account's latest change",
    responses={200: {"description": '`{"cursor": "..."}`'}, **schemas.ERRORS},
)
def latest_cursor(
    account: Account = Depends(current_account), svc: Services = Depends(services)
) -> Response:
    return Response(
        orjson.dumps({"cursor": svc.changes.latest_cursor(account)}), media_type="application/json"
    )


@router.get(
    "/delta",
    summary="Changes since a cursor",
    description="`cursor=0` reads from the beginning. Each delta carries the object as it is "
    "now (`attributes`, null once deleted). Page with `cursor_end`.",
    responses={
        200: {"description": "`{cursor_start, cursor_end, deltas: [...]}`"},
        **schemas.ERRORS,
    },
)
def since(
    request: Request,
    cursor: str = Query(..., description="From deltas or /delta/latest_cursor; 0 for all"),
    types: frozenset[str] = Depends(delta_types),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    page = svc.changes.since(account, cursor, types)
    return Response(render_page(page, request_base_url(request)), media_type="application/json")


@router.get(
    "/delta/longpoll",
    summary="Changes since a cursor, waiting for the first one",
    description="Answers as soon as there is a change after the cursor, or after `timeout` "
    "seconds (default 30, at most 120) with no deltas.",
    responses={200: {"description": "As GET /delta"}, **schemas.ERRORS},
)
async def longpoll(
    request: Request,
    cursor: str = Query(...),
    timeout: str | None = Query(None, pattern=SECONDS, description="Seconds, at most 120"),
    types: frozenset[str] = Depends(delta_types),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> Response:
    deadline = time.monotonic() + seconds(timeout, 30.0, MAX_LONGPOLL)
    mark = svc.changes.mark(account)
    page = await to_thread.run_sync(svc.changes.since, account, cursor, types)
    checked = time.monotonic()
    while True:
        if (
            page.deltas
            or time.monotonic() >= deadline
            or draining(request.scope)
            or await request.is_disconnected()
        ):
            body = render_page(page, request_base_url(request))
            return Response(body, media_type="application/json")
        # Woken when the account changes (no query while it does not), or to poll where
        # changes are not announced (rolodex.service.changefeed), or to see whether the
        # process is shutting down.
        changed = await svc.changes.wait_for_change(account, _until(deadline), mark)
        if changed or time.monotonic() - checked >= HEARTBEAT_SECONDS:
            # Before anything more is read for it, and now and then while idle: a revoked
            # token holds none of the account's slots for long.
            if await _revoked(request):
                raise Unauthenticated()
            checked = time.monotonic()
        if changed:
            mark = svc.changes.mark(account)
            page = await to_thread.run_sync(svc.changes.since, account, page.cursor_end, types)


@router.get(
    "/delta/streaming",
    summary="Changes since a cursor, streamed as they happen",
    description="One delta per line (newline-delimited JSON) for `timeout` seconds "
    "(default 60, at most 1800); an empty line every 5 seconds while nothing happens.",
    responses={200: {"description": "application/x-ndjson"}, **schemas.ERRORS},
)
async def streaming(
    request: Request,
    cursor: str = Query(...),
    timeout: str | None = Query(None, pattern=SECONDS, description="Seconds, at most 1800"),
    types: frozenset[str] = Depends(delta_types),
    account: Account = Depends(current_account),
    svc: Services = Depends(services),
) -> StreamingResponse:
    wait = seconds(timeout, 60.0, MAX_STREAM)
    # A bad cursor is an error before the stream starts, not a broken stream.
    first_mark = svc.changes.mark(account)
    first = await to_thread.run_sync(svc.changes.since, account, cursor, types)
    base = request_base_url(request)

    async def lines() -> AsyncIterator[bytes]:
        page, mark = first, first_mark
        deadline = time.monotonic() + wait
        sent = time.monotonic()
        while True:
            for delta in page.deltas:
                yield render_delta(delta, base) + b"\n"
                sent = time.monotonic()
            if (
                time.monotonic() >= deadline
                or draining(request.scope)
                or await request.is_disconnected()
            ):
                return
            if time.monotonic() - sent >= HEARTBEAT_SECONDS:
                if await _revoked(request):  # idle, it would hold one of the account's slots
                    return
                yield b"\n"
                sent = time.monotonic()
            wake = _until(min(deadline, sent + HEARTBEAT_SECONDS))
            if page.deltas or await svc.changes.wait_for_change(account, wake, mark):
                if await _revoked(request):  # before anything more is read for it
                    return  # the stream's status is sent: ending it is all that is left
                mark = svc.changes.mark(account)
                cursor_end = page.cursor_end
                page = await to_thread.run_sync(svc.changes.since, account, cursor_end, types)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def _revoked(request: Request) -> bool:
    """Whether the token a long-poll or stream came with has stopped working since (its
    revocation, or its account's deletion, is at once, for the requests in flight too):
    ``current_account`` asked again. Asked when there is something to send, and at each
    heartbeat of an idle wait (every few seconds)."""
    try:
        await to_thread.run_sync(current_account, request)
    except Unauthenticated:
        return True
    return False


def _until(deadline: float) -> float:
    """How long a wait for changes lasts: until ``deadline``, but no longer than a
    shutdown may wait for it to notice."""
    return min(deadline, time.monotonic() + CHECK_SECONDS)
