"""The one place where errors become HTTP responses in the v2 shape."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from rolodex.api import signin
from rolodex.domain import errors as e
from rolodex.domain.etags import ContactChanged
from rolodex.store.database import Busy

log = logging.getLogger(__name__)

INVALID_REQUEST = "invalid_request_error"
API_ERROR = "api_error"
AUTH_ERROR = "auth_error"
PROVIDER_ERROR = "provider_error"


def describe(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Status and v2 body (``{"message", "type"}`` plus extras) for any error."""
    match exc:
        case e.Unauthenticated():
            return 401, _body("Could not verify access credential.")
        case e.NoSuchContact(contact_id=cid):
            return 404, _body(f"Couldn't find contact {cid}")
        case e.NoSuchGroup(group_id=gid):
            return 404, _body(f"Couldn't find contact group {gid}")
        case e.NoSuchPicture(contact_id=cid):
            return 404, _body(f"Contact {cid} has no picture")
        case e.NoSuchAccount():
            return 404, _body("The account does not exist.")
        case e.NoSuchToken():
            return 404, _body("No such token found")
        case e.InvalidContact(violations=violations):
            return 400, {
                **_body("; ".join(v.message for v in violations)),
                "violations": [
                    {"field": v.field, "rule": v.rule, "message": v.message} for v in violations
                ],
            }
        case e.InvalidBody(message=m) | e.InvalidQuery(message=m) | e.InvalidGroup(message=m):
            return 400, _body(m)
        case e.InvalidAccount(message=m):
            return 400, _body(m)
        case e.InvalidPicture(reason=reason):
            return 400, _body(f"Invalid picture: {reason}")
        case e.InvalidHost():
            return 400, _body("Invalid Host header")
        case e.BodyTooLarge(limit=limit):
            return 413, _body(f"Request body is larger than the limit of {limit} bytes")
        case e.PictureTooLarge(size=size, limit=limit):
            return 413, _body(f"Picture of {size} bytes is larger than the limit of {limit} bytes")
        case e.GroupsNotWritable(provider=provider):
            return 400, _body(
                f"Groups of {provider} accounts live at the provider and cannot be changed "
                "through this API"
            )
        case e.FixedGroup(name=name, reason=reason):
            return 400, _body(f"The group {name!r} cannot be renamed or deleted: {reason}")
        case ContactChanged(contact_id=cid):
            return 412, _body(
                f"Contact {cid} has changed since the version If-Match names; read it again"
            )
        case e.DuplicateGroupName(name=name):
            return 409, _body(f"A contact group named {name!r} already exists")
        case e.BadCredentials(message=m):
            return 403, {
                **_body("You've entered invalid credentials", AUTH_ERROR),
                "error": m,
            }
        case e.CredentialsOutOfDate():
            # v2's sync engine refused writes to an "invalid" account so (wire §5.2).
            return 403, _body(
                "The account's credentials are out of date: the provider refused them. "
                "Connect the account again, then retry."
            )
        case e.ProviderUnreachable(message=m):
            return 502, {**_body(m[:1].upper() + m[1:], PROVIDER_ERROR), "server_error": m}
        case e.MissingFields(fields=fields):
            return 400, {
                **_body("Please include the missing fields", AUTH_ERROR),
                "missing_fields": fields,
                "error": "Missing fields.",
            }
        case e.InvalidClient(message=m):
            return 401, _body(m, AUTH_ERROR)
        case e.InvalidCode():
            return 400, _body("The code is unknown, already used, or expired", AUTH_ERROR)
        case e.InvalidSignIn(message=m):
            return 400, _body(m)
        case e.SignInExpired():
            return 400, _body(
                "This sign-in has expired, is finished already, or was started in another "
                "browser. Go back to the application and start again."
            )
        case HTTPException(status_code=status, detail=detail):
            # Only the framework raises these (no such route, no such method): v2's engine
            # answered its framework's errors as api_error (wire reference §5.2).
            return status, _body(str(detail), API_ERROR)
        case RequestValidationError():
            return 400, _body(_validation_message(exc))
    if isinstance(exc, Busy):
        # Another process has held SQLite's write lock longer than a request waits.
        return 503, _body("The database is busy for a moment; try again", API_ERROR)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away for a moment (a restart, a locked file): the client may
        # retry; pooled connections are re-checked (pre-ping) once it is back.
        log.warning("database unavailable: %s", exc)
        return 503, _body("The database is unavailable for a moment; try again", API_ERROR)
    log.exception("unexpected error", exc_info=exc)
    return 500, _body("Internal server error", API_ERROR)


def _body(message: str, kind: str = INVALID_REQUEST) -> dict[str, Any]:
    return {"message": message, "type": kind}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "Invalid request"


def error_response(exc: Exception) -> Response:
    status, body = describe(exc)
    # Starlette's own errors carry headers the status needs (Allow on a 405).
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> str:
    """Every method the path takes: Starlette's 405 names only those of the first route
    that matched it, and GET and POST of one path are two routes here."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    ]
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(signin.PAGE_PATHS):
            return signin.error_page(request, *describe(exc))  # a person reads these
        response = error_response(exc)
        if response.status_code == 405:
            response.headers["Allow"] = allowed_methods(app, request.scope)
        return response

    app.add_exception_handler(e.RolodexError, handle)
    app.add_exception_handler(HTTPException, handle)
    app.add_exception_handler(RequestValidationError, handle)
    # Answered like domain errors (Exception's handler would also re-raise them to the server).
    app.add_exception_handler(OperationalError, handle)
    app.add_exception_handler(InterfaceError, handle)
    app.add_exception_handler(Busy, handle)
    app.add_exception_handler(Exception, handle)
