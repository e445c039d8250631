"""Hosted sign-in over HTTP, in-process (the browser's part is played by hand here; the
end-to-end tests in headless Chromium are tests/e2e/test_hosted_signin.py): the checks
before anything starts, the Google and Microsoft round trips against the emulators' consent
screens, the codes, the cookie binding and CSRF, ``/oauth/token`` in every client's
shape."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from rolodex.api.app import create_app
from rolodex.api.deps import Services
from rolodex.cli.sync import make_runner
from rolodex.store import Store
from tests.conftest import settings_for_tests
from tests.emulators.google import GoogleServer
from tests.emulators.microsoft import GraphEmulator

APP = "http://app.example/callback"
BASE = "http://testserver"


@dataclasses.dataclass
class Env:
    client: TestClient
    svc: Services
    google: GoogleServer
    graph: GraphEmulator

    @property
    def client_id(self) -> str:
        return self.svc.application.client().client_id

    @property
    def secret(self) -> str:
        return self.svc.application.client().client_secret

    def query(self, **extra: str) -> dict[str, str]:
        return {"client_id": self.client_id, "redirect_uri": APP, "response_type": "code", **extra}

    def browser(self) -> TestClient:
        """A fresh browser (its own cookies)."""
        return TestClient(self.client.app, base_url=BASE)

    def through_consent(self, browser: TestClient, **extra: str) -> httpx.Response:
        """Start with ``provider`` set, follow the consent screen, answer the callback."""
        start = browser.get("/oauth/authorize", params=self.query(**extra), follow_redirects=False)
        assert start.status_code == 302, start.text
        consent = httpx.get(start.headers["location"], follow_redirects=False)
        assert consent.status_code == 302, consent.text
        back = urlsplit(consent.headers["location"])
        assert f"{back.scheme}://{back.netloc}" == BASE
        return browser.get(f"{back.path}?{back.query}", follow_redirects=False)

    def token(self, code: str) -> httpx.Response:
        return self.client.post(
            "/oauth/token",
            data={
                "client_id": self.client_id,
                "client_secret": self.secret,
                "grant_type": "authorization_code",
                "code": code,
            },
        )


def _code(response: httpx.Response) -> tuple[str, dict[str, list[str]]]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(APP + "?")
    query = parse_qs(urlsplit(location).query)
    return query["code"][0], query


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    path: Path = tmp_path_factory.mktemp("signin") / "rolodex.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    with GoogleServer() as google, GraphEmulator() as graph, pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROLODEX_GOOGLE_PEOPLE_URL", google.people_url)
        mp.setenv("ROLODEX_MICROSOFT_GRAPH_URL", graph.graph_url)
        # Read by the connectors when they refresh tokens (as by Settings, here replaced).
        mp.setenv("ROLODEX_GOOGLE_TOKEN_URL", google.token_url)
        mp.setenv("ROLODEX_MICROSOFT_LOGIN_URL", graph.login_url)
        settings = dataclasses.replace(
            settings_for_tests(store.url),
            public_url=BASE,
            google_client_id="rolodex-google",
            google_client_secret="google-secret",
            google_auth_url=google.url + "/o/oauth2/v2/auth",
            google_token_url=google.token_url,
            microsoft_client_id=graph.client_id,
            microsoft_client_secret=graph.client_secret,
            microsoft_login_url=graph.login_url,
        )
        google.emulator.register_client(
            "rolodex-google", "google-secret", f"{BASE}/oauth/callback/google"
        )
        graph.consent.register(graph.client_id, f"{BASE}/oauth/callback/microsoft")
        app = create_app(settings, store)
        client = TestClient(app, base_url=BASE)
        svc = _services(app)
        svc.signin.add_redirect_uri(APP)
        yield Env(client, svc, google, graph)
    store.close()


def _services(app: object) -> Services:
    while not hasattr(app, "state"):
        app = app.app  # type: ignore[attr-defined]
    found: Services = app.state.services  # type: ignore[attr-defined]
    return found


# --- Before anything starts --------------------------------------------------------------------


def test_an_unregistered_redirect_uri_gets_a_page_and_never_a_redirect(env: Env) -> None:
    for query in (
        env.query(redirect_uri="http://evil.example/callback"),
        env.query(redirect_uri=APP + "/more"),
        env.query(redirect_uri="http://app.example/callback?x=1"),
        env.query(client_id="someone-else"),
        {"redirect_uri": APP, "response_type": "code"},
    ):
        for provider in ("", "gmail", "icloud"):
            page = env.browser().get(
                "/oauth/authorize", params={**query, "provider": provider}, follow_redirects=False
            )
            assert page.status_code == 400, query
            assert "location" not in page.headers
            assert page.headers["content-type"].startswith("text/html")
            assert "evil.example" not in page.text
            assert "Sign-in cannot continue" in page.text


def test_the_choice_offers_what_is_configured_with_a_strict_policy(env: Env) -> None:
    page = env.browser().get("/oauth/authorize", params=env.query(state="s t&x"))
    assert page.status_code == 200
    links = re.findall(r'class="choice choice-(\w+)" href="([^"]+)"', page.text)
    assert [name for name, _ in links] == ["google", "microsoft", "icloud", "carddav"]
    assert all("state=s+t%26x" in href for _, href in links)
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "<script" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/oauth" in cookie
    css = env.client.get("/oauth/assets/signin.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_an_unknown_provider_or_response_type_is_a_page(env: Env) -> None:
    for extra in ({"provider": "yahoo"}, {"response_type": "id_token"}, {"state": "x" * 1001}):
        page = env.browser().get("/oauth/authorize", params=env.query(**extra))
        assert page.status_code == 400 and "location" not in page.headers


# --- Google and Microsoft ---------------------------------------------------------------------


def test_google_sign_in_gives_a_one_time_code_for_the_account(env: Env) -> None:
    browser = env.browser()
    done = env.through_consent(browser, provider="gmail", state="opaque/state?&=", login_hint="ada")
    code, query = _code(done)
    assert query["state"] == ["opaque/state?&="]
    consent = env.google.emulator.consent.requests[-1]
    assert consent["access_type"] == "offline" and consent["prompt"] == "consent"
    assert consent["code_challenge_method"] == "S256" and consent["login_hint"] == "ada"
    assert "https://www.googleapis.com/auth/contacts" in consent["scope"].split()
    assert consent["state"] != "opaque/state?&="  # Rolodex's own, bound to this sign-in
    answer = env.token(code)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "account_id", "email_address", "provider", "token_type"}
    assert body["email_address"] == env.google.emulator.user_email
    assert body["provider"] == "google" and body["token_type"] == "bearer"
    account = env.client.get("/account", auth=(body["access_token"], "")).json()
    assert account["id"] == body["account_id"] and account["sync_state"] == "running"
    assert account["sandbox"] is False
    # Its first sync is due now, and the grant the consent gave syncs.
    with env.svc.store.read() as tx:
        assert body["account_id"] in tx.accounts.due_for_sync(time.time() + 1)
    env.google.emulator.add_person(names=[{"givenName": "Remote", "familyName": "Person"}])
    make_runner(env.svc.settings, env.svc.store).run(body["account_id"])
    contacts = env.client.get("/contacts", auth=(body["access_token"], "")).json()
    assert [c["given_name"] for c in contacts] == ["Remote"]
    # Once only.
    again = env.token(code)
    assert again.status_code == 400 and again.json()["type"] == "auth_error"
    # The callback cannot be replayed either: the sign-in is over.
    replay = browser.get(str(done.request.url))
    assert replay.status_code == 400 and "location" not in replay.headers


@pytest.mark.parametrize("id_token", [True, False])
def test_google_sign_in_learns_the_address_from_the_id_token_else_from_people_me(
    env: Env, id_token: bool
) -> None:
    # The scopes ask for openid email: Google's token answer then names who consented,
    # and the People API's people/me is asked only when it does not.
    emulator = env.google.emulator
    emulator.id_tokens = id_token
    before = len(emulator.calls("/people/me"))
    try:
        body = env.token(_code(env.through_consent(env.browser(), provider="google"))[0]).json()
    finally:
        emulator.id_tokens = True
    assert body["email_address"] == emulator.user_email
    assert len(emulator.calls("/people/me")) - before == (0 if id_token else 1)


def test_google_again_without_a_refresh_token_keeps_the_grant_and_the_account(env: Env) -> None:
    first = env.token(_code(env.through_consent(env.browser(), provider="google"))[0]).json()
    grant = env.svc.accounts.connection(first["account_id"])["google_refresh_token"]
    env.google.emulator.consent.no_refresh_token = True
    try:
        second = env.token(_code(env.through_consent(env.browser(), provider="google"))[0])
    finally:
        env.google.emulator.consent.no_refresh_token = False
    assert second.json()["account_id"] == first["account_id"]
    assert env.svc.accounts.connection(first["account_id"])["google_refresh_token"] == grant


def test_refused_consent_offers_a_retry_and_the_way_back_with_access_denied(env: Env) -> None:
    env.google.emulator.consent.refuse = True
    try:
        page = env.through_consent(env.browser(), provider="gmail", state="st")
        direct = env.through_consent(
            env.browser(), provider="gmail", state="st", redirect_on_error="true"
        )
    finally:
        env.google.emulator.consent.refuse = False
    assert page.status_code == 200 and "did not allow access" in page.text
    back = re.search(r'href="(http://app\.example/callback\?[^"]+)"', page.text)
    assert back is not None
    query = parse_qs(urlsplit(back.group(1).replace("&amp;", "&")).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st"]
    assert direct.status_code == 303
    assert parse_qs(urlsplit(direct.headers["location"]).query)["error"] == ["access_denied"]


def test_microsoft_sign_in_and_the_token_in_the_fragment(env: Env) -> None:
    done = env.through_consent(env.browser(), provider="office365", response_type="token")
    assert done.status_code == 303
    location = done.headers["location"]
    assert location.startswith(APP + "#")
    fragment = parse_qs(urlsplit(location).fragment)
    assert fragment["email_address"] == [env.graph.email]
    assert fragment["provider"] == ["microsoft"] and fragment["token_type"] == ["bearer"]
    account_id = fragment["account_id"][0]
    settings = env.svc.accounts.connection(account_id)
    assert settings["redirect_uri"] == f"{BASE}/oauth/callback/microsoft"
    assert settings["microsoft_refresh_token"] in env.graph.refresh_tokens
    consent = env.graph.consent.requests[-1]
    assert "offline_access" in consent["scope"].split()
    assert consent["code_challenge_method"] == "S256"
    me = env.client.get("/account", auth=(fragment["access_token"][0], ""))
    assert me.json()["id"] == account_id
    env.graph.add_contact({"givenName": "Graph", "surname": "Person"})
    make_runner(env.svc.settings, env.svc.store).run(account_id)
    contacts = env.client.get("/contacts", auth=(fragment["access_token"][0], "")).json()
    assert [c["given_name"] for c in contacts] == ["Graph"]


def test_a_callback_in_another_browser_or_with_a_stale_state_finds_nothing(env: Env) -> None:
    start = env.browser().get(
        "/oauth/authorize", params=env.query(provider="gmail"), follow_redirects=False
    )
    consent = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlsplit(consent.headers["location"])
    other = env.browser().get(f"{back.path}?{back.query}")
    assert other.status_code == 400 and "another browser" in other.text
    assert "location" not in other.headers
    forged = env.browser().get("/oauth/callback/google?code=x&state=nothing")
    assert forged.status_code == 400


# --- Password forms ---------------------------------------------------------------------------


def _form(page: httpx.Response) -> dict[str, str]:
    return dict(re.findall(r'name="(sign_in|csrf_token)" value="([^"]+)"', page.text))


def test_a_form_needs_its_csrf_token_and_its_browser(env: Env) -> None:
    browser = env.browser()
    page = browser.get("/oauth/authorize", params=env.query(provider="icloud", login_hint="a@b.c"))
    assert page.status_code == 200 and 'value="a@b.c"' in page.text
    assert "form-action 'self' http://app.example;" in page.headers["content-security-policy"]
    hidden = _form(page)
    fields = {"email": "a@b.c", "password": "pw"}
    forged = browser.post("/oauth/sign-in", data={**fields, **hidden, "csrf_token": "guess"})
    assert forged.status_code == 400 and "not from this sign-in" in forged.text
    elsewhere = env.browser().post("/oauth/sign-in", data={**fields, **hidden})
    assert elsewhere.status_code == 400 and "location" not in elsewhere.headers
    missing = browser.post("/oauth/sign-in", data={**hidden, "email": "a@b.c"})
    assert missing.status_code == 400 and "Enter your password" in missing.text


# --- /oauth/token -----------------------------------------------------------------------------


def test_token_takes_every_clients_shape_and_refuses_a_wrong_secret(env: Env) -> None:
    def code() -> str:
        return _code(env.through_consent(env.browser(), provider="gmail"))[0]

    fields = {"client_id": env.client_id, "client_secret": env.secret}
    fields["grant_type"] = "authorization_code"
    node = env.client.get("/oauth/token", params={**fields, "code": code()})  # Node 6.11
    assert node.status_code == 200, node.text
    curl = env.client.post("/oauth/token", content=json.dumps({**fields, "code": code()}))
    assert curl.status_code == 200, curl.text
    basic = base64.b64encode(f"{env.client_id}:{env.secret}".encode()).decode()
    generic = env.client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code()},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert generic.status_code == 200, generic.text
    wrong = env.client.post("/oauth/token", data={**fields, "client_secret": "no", "code": code()})
    assert wrong.status_code == 401
    missing = env.client.post("/oauth/token", data={"client_id": env.client_id})
    assert missing.status_code == 400 and "missing_fields" in missing.json()


def test_hosted_and_native_codes_each_work_at_their_own_endpoint_only(env: Env) -> None:
    hosted = _code(env.through_consent(env.browser(), provider="gmail"))[0]
    native = env.client.post(
        "/connect/token",
        json={"client_id": env.client_id, "client_secret": env.secret, "code": hosted},
    )
    assert native.status_code == 400
    assert env.token(hosted).status_code == 400  # spent by the wrong endpoint: once is once


def test_redirect_uris_are_exact_and_checked(env: Env) -> None:
    from rolodex.domain.errors import InvalidAccount

    for bad in ("not a uri", "/relative", "http://x.example/cb#frag", "javascript:alert(1)"):
        with pytest.raises(InvalidAccount):
            env.svc.signin.add_redirect_uri(bad)
    assert env.svc.signin.add_redirect_uri("com.example.app:/oauth") is True
    assert env.svc.signin.add_redirect_uri("com.example.app:/oauth") is False
    assert "com.example.app:/oauth" in env.svc.signin.redirect_uris()
    assert env.svc.signin.remove_redirect_uri("com.example.app:/oauth") is True
    assert "com.example.app:/oauth" not in env.svc.signin.redirect_uris()


def test_sign_ins_and_codes_expire(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import rolodex.service.signin as signin

    browser = env.browser()
    page = browser.get("/oauth/authorize", params=env.query(provider="carddav"))
    code = _code(env.through_consent(env.browser(), provider="gmail"))[0]
    now = time.time()
    monkeypatch.setattr(signin.time, "time", lambda: now + signin.SIGN_IN_SECONDS + 1)
    late = browser.post(
        "/oauth/sign-in",
        data={**_form(page), "url": "https://dav.example", "email": "a@b.c", "password": "p"},
    )
    assert late.status_code == 400 and "expired" in late.text
    assert env.token(code).status_code == 400  # codes live 10 minutes


def test_a_redirect_uri_removed_meanwhile_is_not_redirected_to(env: Env) -> None:
    other = "http://other.example/cb"
    env.svc.signin.add_redirect_uri(other)
    browser = env.browser()
    start = browser.get(
        "/oauth/authorize",
        params=env.query(provider="gmail", redirect_uri=other),
        follow_redirects=False,
    )
    consent = httpx.get(start.headers["location"], follow_redirects=False)
    env.svc.signin.remove_redirect_uri(other)
    back = urlsplit(consent.headers["location"])
    done = browser.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert done.status_code == 400 and "location" not in done.headers
    assert "no longer registered" in done.text


# --- What the consent gave -------------------------------------------------------------------


def _accounts(env: Env) -> int:
    with env.svc.store.read() as tx:
        return len(tx.accounts.all())


def test_a_consent_that_leaves_out_the_contacts_scope_connects_nothing(env: Env) -> None:
    """Google's consent screen lets the user untick the contacts scope, and the token
    answer's scope then leaves it out: nothing is connected (an account already connected
    keeps the grant it has), as when consent is refused; other contacts are optional."""
    first = env.token(_code(env.through_consent(env.browser(), provider="gmail"))[0]).json()
    grant = env.svc.accounts.connection(first["account_id"])["google_refresh_token"]
    before = _accounts(env)
    contacts = "https://www.googleapis.com/auth/contacts"
    env.google.emulator.consent.withheld = {contacts}
    try:
        page = env.through_consent(env.browser(), provider="gmail", state="st")
        direct = env.through_consent(
            env.browser(), provider="gmail", state="st", redirect_on_error="true"
        )
    finally:
        env.google.emulator.consent.withheld = set()
    assert page.status_code == 200 and "did not allow access" in page.text
    assert direct.status_code == 303
    query = parse_qs(urlsplit(direct.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st"]
    assert _accounts(env) == before
    assert env.svc.accounts.connection(first["account_id"])["google_refresh_token"] == grant

    env.google.emulator.consent.withheld = {contacts + ".other.readonly"}
    try:
        code, _query = _code(env.through_consent(env.browser(), provider="gmail"))
    finally:
        env.google.emulator.consent.withheld = set()
    assert env.token(code).json()["account_id"] == first["account_id"]


def test_a_microsoft_grant_without_contacts_connects_nothing(env: Env) -> None:
    before = _accounts(env)
    env.graph.consent.withheld = {"https://graph.microsoft.com/Contacts.ReadWrite"}
    try:
        page = env.through_consent(env.browser(), provider="office365", state="st")
    finally:
        env.graph.consent.withheld = set()
    assert page.status_code == 200 and "did not allow access" in page.text
    assert _accounts(env) == before


def test_redirect_on_error_sends_a_failed_sign_in_back_to_the_application(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redirect_on_error=true: "on failure send the user back to redirect_uri with error
    params instead of a Nylas error page" (nylas-v2-auth.md 2.1, 2.3): here a code that
    expired before Rolodex traded it."""
    import tests.emulators.consent as consent

    monkeypatch.setattr(consent, "CODE_SECONDS", -1)
    page = env.through_consent(env.browser(), provider="gmail", state="st")
    assert page.status_code == 403 and "location" not in page.headers
    direct = env.through_consent(
        env.browser(), provider="gmail", state="st", redirect_on_error="true"
    )
    assert direct.status_code == 303, direct.text
    location = direct.headers["location"]
    assert location.startswith(APP + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["server_error"] and query["state"] == ["st"]
    assert "Google" in query["reason"][0]


def test_a_sign_in_started_at_another_host_moves_to_the_public_url_first(env: Env) -> None:
    """The callbacks are at the public URL, and the cookie that binds a sign-in to its
    browser is the host's it was set for: a sign-in started at another name of the server
    (localhost for 127.0.0.1) found no sign-in when Google came back. The page moves the
    browser to the public URL before it sets anything, once (a proxy that rewrites Host
    is not followed round in circles)."""
    elsewhere = TestClient(env.client.app, base_url="http://localhost")
    params = env.query(provider="gmail", state="st")
    moved = elsewhere.get("/oauth/authorize", params=params, follow_redirects=False)
    assert moved.status_code == 302 and "set-cookie" not in moved.headers
    target = urlsplit(moved.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{BASE}/oauth/authorize"
    assert parse_qs(target.query)["state"] == ["st"]
    again = elsewhere.get(f"/oauth/authorize?{target.query}", follow_redirects=False)
    assert again.status_code == 302 and "oauth2/v2/auth" in again.headers["location"]
    # The browser at the public URL goes through.
    browser = env.browser()
    start = browser.get(f"/oauth/authorize?{target.query}", follow_redirects=False)
    consent = httpx.get(start.headers["location"], follow_redirects=False)
    back = urlsplit(consent.headers["location"])
    code, query = _code(browser.get(f"{back.path}?{back.query}", follow_redirects=False))
    assert query["state"] == ["st"] and env.token(code).status_code == 200
