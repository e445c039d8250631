"""The application: FastAPI for routing and OpenAPI, behind the fast read path."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

import rolodex
from rolodex.api import (
    account,
    connect,
    contacts,
    delta,
    errors,
    groups,
    management,
    schemas,
    signin,
)
from rolodex.api.deps import Services
from rolodex.api.fastpath import ASGIApp, FastReads
from rolodex.api.observe import Observed
from rolodex.api.ratelimit import RateLimits
from rolodex.config import Settings
from rolodex.connectors.outbound import checked
from rolodex.connectors.registry import catalog, verify_connection
from rolodex.connectors.registry import oauth_sign_ins as registry_oauth_sign_ins
from rolodex.domain.signin import OAuthSignIn
from rolodex.service.accounts import AccountService
from rolodex.service.application import ApplicationService
from rolodex.service.changefeed import ChangeFeed
from rolodex.service.contacts import ContactService
from rolodex.service.credentials import CredentialBox, check_key
from rolodex.service.groups import GroupService
from rolodex.service.mirror import Mirror
from rolodex.service.pictures import PictureService
from rolodex.service.signin import SignInService
from rolodex.store import Store

DESCRIPTION = """\
Contacts in the wire format of the Nylas Contacts API v2: the v2 SDKs work unchanged.

Authenticate with the account's access token as the HTTP Basic user name (empty password,
`curl -u TOKEN: ...`) or as `Authorization: Bearer TOKEN`. Errors are
`{"message": ..., "type": ...}` with the HTTP status.
"""


def oauth_sign_ins(settings: Settings) -> dict[str, OAuthSignIn]:
    """The providers hosted sign-in can send users to: those whose OAuth client is
    configured (each provider package knows which of the settings are its client's)."""
    return registry_oauth_sign_ins(vars(settings))


def build_services(settings: Settings, store: Store) -> Services:
    credentials = CredentialBox.from_settings(settings)
    check_key(store, credentials)  # a wrong key is an error now, not in a later sync
    # Provider settings are checked within a deadline, with plain messages (outbound).
    verify = checked(verify_connection, settings.provider_check_seconds)
    accounts = AccountService(store, credentials, verify, catalog())
    application = ApplicationService(store, accounts, credentials)
    return Services(
        settings=settings,
        store=store,
        accounts=accounts,
        contacts=ContactService(store, cache_bytes=settings.read_cache_bytes),
        groups=GroupService(store),
        pictures=PictureService(store),
        application=application,
        mirror=Mirror(store),
        changes=ChangeFeed(store),
        signin=SignInService(store, application, accounts, credentials, oauth_sign_ins(settings)),
    )


def create_app(
    settings: Settings | None = None, store: Store | None = None, *, fast_reads: bool = True
) -> ASGIApp:
    settings = settings or Settings()
    store = store or Store(settings.database_url)
    svc = build_services(settings, store)
    # Docs assets are served by Rolodex itself: a self-hosted server may have no way out to
    # a CDN, and its docs page must still work.
    app = FastAPIOffline(
        title="Rolodex",
        version=rolodex.__version__,
        description=DESCRIPTION,
        # v2 took a trailing slash (wire reference §2.2): trailing_slashes_served.
        redirect_slashes=False,
    )
    trailing_slashes_served(app)
    app.state.services = svc
    errors.install(app)
    app.include_router(account.router)
    app.include_router(connect.router)
    app.include_router(management.router)
    app.include_router(signin.router)
    app.include_router(delta.router)
    app.include_router(groups.router)  # before /contacts/{contact_id}
    app.include_router(contacts.router)
    _document_request_bodies(app)
    # Outermost: every request is counted, rate-limited and gets its request id, fast reads
    # included.
    limits = RateLimits(settings, store) if settings.rate_limits else None
    return Observed(FastReads(app, svc) if fast_reads else app, store, limits)


def trailing_slashes_served(app: FastAPI) -> None:
    """A path with a trailing slash that a route takes without it is served as that path,
    as v2 took it (wire reference §2.2): ``POST /contacts/`` creates. Not redirected: a
    client that does not follow redirects (httpx by default) would get a 307 for its
    write, and Starlette's own redirect named the request's Host in ``Location``, which is
    any client's to send (an open redirect for whoever can plant a link)."""
    router = app.router
    not_found = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            target = path.rstrip("/")
            # The raw path would name the slash still (and request.url with it).
            stripped = {**scope, "path": target, "raw_path": quote(target).encode()}
            if target.startswith("/") and any(
                r.matches(stripped)[0] is not Match.NONE for r in router.routes
            ):
                await router(stripped, receive, send)
                if "route" in stripped:  # for the metrics' route label (api/observe.py)
                    scope["route"] = stripped["route"]
                return
        await not_found(scope, receive, send)

    router.default = default


def _document_request_bodies(app: FastAPI) -> None:
    """Routes parse their own bodies; put the schemas they document into components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        _, definitions = models_json_schema(
            [(model, "validation") for model in schemas.REQUEST_SCHEMAS],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in definitions.get("$defs", {}).items():
            components.setdefault(name, definition)
        _no_422(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_ERROR = "#/components/schemas/Error"


def _no_422(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 for every route with parameters; Rolodex answers invalid
    input with a 400 in the v2 shape (rolodex.api.errors), so say that instead."""
    for operation in (op for ops in schema.get("paths", {}).values() for op in ops.values()):
        responses = operation.get("responses", {})
        if responses.pop("422", None) is not None and "400" not in responses:
            responses["400"] = {
                "description": "Invalid input",
                "content": {"application/json": {"schema": {"$ref": _ERROR}}},
            }
    # FastAPI's own ValidationError (of its 422s) took the name of Rolodex's 400 body.
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    _, definitions = models_json_schema(
        [(schemas.ValidationError, "serialization")], ref_template="#/components/schemas/{model}"
    )
    components.update(definitions.get("$defs", {}))
