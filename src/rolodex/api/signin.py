"""Hosted sign-in's HTTP side: the pages (server-rendered, no JavaScript), the providers'
callbacks and ``/oauth/token``. What is allowed is decided in ``rolodex.service.signin``;
here are only the browser's concerns: the cookie that binds a sign-in to its browser, the
security headers, and turning each step into a page or a redirect."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.templating import Jinja2Templates

from rolodex.api import schemas
from rolodex.api.deps import Services, base_url, read_body, services
from rolodex.domain.errors import SignInExpired
from rolodex.domain.ids import new_token
from rolodex.service.signin import (
    SIGN_IN_SECONDS,
    AuthorizeRequest,
    BackToApplication,
    Choose,
    Consent,
    PasswordForm,
    Refused,
    Step,
)

router = APIRouter(tags=["hosted sign-in"])

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATES = Jinja2Templates(directory=str(TEMPLATE_DIR))
COOKIE = "rolodex_sign_in"
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{20,100}")
MAX_FORM_BYTES = 64 * 1024
STYLESHEET = "/oauth/assets/signin.css"
# The paths whose errors are pages, not JSON (rolodex.api.errors asks).
PAGE_PATHS = ("/oauth/authorize", "/oauth/sign-in", "/oauth/callback/")


def _html(content: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"text/html": {}}, "description": content}}


# --- Security headers and the browser cookie --------------------------------------------------


def _source(uri: str) -> str:
    """The CSP source that allows navigating (a form's redirect) to ``uri``."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"


def secure(response: Response, *, form_target: str | None = None) -> Response:
    """No scripts at all, styles and images from here only, never framed, no referrer.
    ``form-action`` covers where a form's answer redirects to as well (the application's
    registered redirect URI, after a password form), so that one is allowed too."""
    form_action = "'self'" + (f" {_source(form_target)}" if form_target else "")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _browser(request: Request) -> str | None:
    value = request.cookies.get(COOKIE)
    return value if value is not None and _COOKIE_VALUE.fullmatch(value) else None


def _https(request: Request, svc: Services) -> bool:
    public = svc.settings.public_url
    return (public or "").startswith("https:") or request.url.scheme == "https"


def _set_browser(response: Response, request: Request, svc: Services, browser: str) -> None:
    response.set_cookie(
        COOKIE,
        browser,
        max_age=int(SIGN_IN_SECONDS),
        path="/oauth",
        httponly=True,
        samesite="lax",  # sent on the top-level redirect back from Google or Microsoft
        secure=_https(request, svc),
    )


def public_base(request: Request, svc: Services) -> str:
    """Where browsers reach this server: ROLODEX_PUBLIC_URL, else the request's (checked)
    Host."""
    return (
        base_url(svc.settings, request.url.scheme, request.headers.get("host"))
        .decode()
        .replace("\\/", "/")
    )


# --- Pages -------------------------------------------------------------------------------------


def _page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    form_target: str | None = None,
) -> Response:
    response = TEMPLATES.TemplateResponse(
        request, template, {"stylesheet": STYLESHEET, **context}, status_code=status
    )
    return secure(response, form_target=form_target)


def error_page(request: Request, status: int, body: dict[str, Any]) -> Response:
    """An error of a sign-in page (``rolodex.api.errors`` decides status and message)."""
    message = body.get("error") if isinstance(body.get("error"), str) else body["message"]
    return _page(request, "error.html", {"message": message}, status=status)


def _authorize_href(request: AuthorizeRequest, option: str | None) -> str:
    params = {
        "client_id": request.client_id,
        "redirect_uri": request.redirect_uri,
        "response_type": request.response_type,
        "scopes": request.scopes,
        "state": request.state,
        "login_hint": request.login_hint,
        "provider": option,
        "redirect_on_error": "true" if request.redirect_on_error else None,
    }
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def _render(request: Request, svc: Services, step: Step) -> Response:
    match step:
        case Choose(request=asked, options=options):
            return _page(
                request,
                "choose.html",
                {
                    "login_hint": asked.login_hint,
                    "options": [
                        {
                            "key": option,
                            "title": svc.signin.title(option),
                            "href": _authorize_href(asked, option),
                        }
                        for option in options
                    ],
                },
            )
        case Consent(url=url):
            return secure(RedirectResponse(url, status_code=302))
        case PasswordForm():
            return _page(
                request,
                "password.html",
                {
                    "title": svc.signin.title(step.option),
                    "option": step.option,
                    "action": "/oauth/sign-in",
                    "sign_in": step.sign_in,
                    "csrf_token": step.csrf_token,
                    "values": step.values,
                    "error": step.error,
                    "choose_href": _authorize_href(step.request, None),
                },
                status=200 if step.error is None else 400,
                form_target=step.request.redirect_uri,
            )
        case BackToApplication(url=url):
            return secure(RedirectResponse(url, status_code=303))
        case Refused(request=asked, back=back, provider_title=title):
            if asked.redirect_on_error:
                return secure(RedirectResponse(back, status_code=303))
            return _page(
                request,
                "refused.html",
                {
                    "provider_title": title,
                    "retry_href": _authorize_href(asked, asked.option),
                    "back_href": back,
                },
            )
    raise AssertionError(step)


HOP = "rolodex_public_host"  # marks the one move to the public host (no loop behind a proxy)


def _to_public_host(request: Request, svc: Services) -> str | None:
    """Where to send a browser that reached the page at a host other than the public URL's
    (``localhost`` for ``127.0.0.1``...): Google and Microsoft send it back to the callback
    at the public URL, where the cookie binding the sign-in to it, set for the host it came
    to, would be missing. Once at most: a proxy that rewrites Host is followed no further."""
    public = svc.settings.public_url
    if not public or HOP in request.query_params:
        return None
    want = (urlsplit(public).hostname or "").rstrip(".").lower()
    host = urlsplit("//" + request.headers.get("host", "")).hostname or ""
    if not want or host.rstrip(".").lower() == want:
        return None
    query = request.url.query
    return f"{public.rstrip('/')}/oauth/authorize?{query}{'&' if query else ''}{HOP}=1"


@router.get(
    "/oauth/authorize",
    summary="Hosted sign-in: the page an application sends its user to",
    description="Query: `client_id`, `redirect_uri` (registered with `rolodex app "
    "redirect-uri add`), `response_type` (`code` or `token`), `scopes`, `login_hint`, "
    "`state` (returned untouched), optional `provider` (`gmail`, `office365`, `icloud`, "
    "`carddav`) and `redirect_on_error`. A page where the user picks a provider and signs "
    "in; it ends in a redirect to `redirect_uri?code=...&state=...` (or, for "
    "`response_type=token`, the token in the fragment).",
    response_class=HTMLResponse,
    responses=_html("The sign-in page, or a 302 to the provider's consent screen"),
)
def authorize(request: Request, svc: Services = Depends(services)) -> Response:
    moved = _to_public_host(request, svc)
    if moved is not None:
        return secure(RedirectResponse(moved, status_code=302))
    browser = _browser(request) or new_token()
    step = svc.signin.authorize(
        dict(parse_qsl(request.url.query, keep_blank_values=True)),
        browser,
        public_base(request, svc) + "/oauth/callback/",
    )
    response = _render(request, svc, step)
    _set_browser(response, request, svc, browser)
    return response


@router.post(
    "/oauth/sign-in",
    summary="Hosted sign-in: a password form (iCloud, CardDAV) posted",
    response_class=HTMLResponse,
    responses=_html("The form again with what went wrong, or a 303 to the application"),
)
async def sign_in(request: Request, svc: Services = Depends(services)) -> Response:
    browser = _browser(request)
    body = await read_body(request, MAX_FORM_BYTES)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if browser is None:
        raise SignInExpired()
    step = await run_in_threadpool(svc.signin.submit, form.get("sign_in", ""), browser, form)
    return _render(request, svc, step)


@router.get(
    "/oauth/callback/{provider}",
    summary="Hosted sign-in: where Google and Microsoft send the user back",
    description="Register `{ROLODEX_PUBLIC_URL}/oauth/callback/google` and "
    "`.../microsoft` with the OAuth clients (`rolodex app show` prints them).",
    response_class=HTMLResponse,
    responses=_html("A 303 to the application, or a page"),
)
def callback(provider: str, request: Request, svc: Services = Depends(services)) -> Response:
    browser = _browser(request)
    if browser is None:
        raise SignInExpired()
    params = dict(parse_qsl(request.url.query, keep_blank_values=True))
    return _render(request, svc, svc.signin.callback(provider, params, browser))


@router.get("/oauth/assets/signin.css", include_in_schema=False)
def stylesheet() -> Response:
    response = Response(
        (TEMPLATE_DIR / "signin.css").read_bytes(), media_type="text/css; charset=utf-8"
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- /oauth/token ----------------------------------------------------------------------------


async def _token_params(request: Request) -> dict[str, Any]:
    """The fields wherever a client puts them (``nylas-v2-auth.md`` 2.4): the query (Node,
    PHP), a form body (Python, Ruby) or a JSON body (curl samples, whatever its
    Content-Type); ``client_id:client_secret`` from Basic auth when the body has no secret
    (generic OAuth 2 clients)."""
    params: dict[str, Any] = dict(parse_qsl(request.url.query, keep_blank_values=True))
    body = await read_body(request, MAX_FORM_BYTES)
    stripped = body.strip()
    if stripped.startswith(b"{"):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            params.update(parsed)
    elif stripped:
        params.update(parse_qsl(stripped.decode("utf-8", "replace"), keep_blank_values=True))
    if not params.get("client_secret"):
        user, password = _basic(request.headers.get("authorization"))
        if user and password:
            params.setdefault("client_id", user)
            params["client_secret"] = password
        elif user:
            params["client_secret"] = user  # the v2 SDKs' Basic "<secret>:"
    return params


def _basic(header: str | None) -> tuple[str, str]:
    if not header or header[:6].lower() != "basic ":
        return "", ""
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, "" if password == "None" else password


async def _token(request: Request, svc: Services) -> Response:
    params = await _token_params(request)
    answer = await run_in_threadpool(svc.signin.token, params)
    return Response(
        orjson.dumps(answer), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


_TOKEN_DOC = {
    "summary": "Trade a hosted sign-in's code for the account's access token",
    "description": "Fields `client_id`, `client_secret`, `grant_type=authorization_code`, "
    "`code`, in the query, a form or a JSON body. Answers `{access_token, account_id, "
    "email_address, provider, token_type}`. Codes work once, for 10 minutes.",
    "responses": {
        200: {"description": "The access token and its account"},
        400: {"model": schemas.Error, "description": "Missing field, or a used or expired code"},
        401: {"model": schemas.Error, "description": "Unknown client id or wrong secret"},
    },
}


@router.post("/oauth/token", **_TOKEN_DOC)  # type: ignore[arg-type]
async def token_post(request: Request, svc: Services = Depends(services)) -> Response:
    return await _token(request, svc)


@router.get("/oauth/token", **_TOKEN_DOC)  # type: ignore[arg-type]
async def token_get(request: Request, svc: Services = Depends(services)) -> Response:
    return await _token(request, svc)
