"""Hosted sign-in end to end in headless Chromium (Debian's chromium driven by Playwright):
an application's redirect with the real Python and Node SDKs, the pages, Google's and
Microsoft's consent screens (the emulators), iCloud-style and CardDAV sign-in against
Radicale, and back to the application, which trades the code with the SDK.

One browser for the module, a fresh context (cookies) per test. Screenshots of the pages at
desktop and phone widths go to ``ROLODEX_SCREENSHOT_DIR`` (default: a temporary directory),
and axe-core (from tests/compat/node's node_modules) checks them. Without Chromium or
Playwright these tests skip; ``ROLODEX_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn

from rolodex.api.app import create_app
from rolodex.api.deps import Services
from rolodex.cli.sync import make_runner
from rolodex.store import Store
from tests.carddav_servers import RadicaleServer, vcard
from tests.conftest import free_port, settings_for_tests
from tests.emulators.google import GoogleServer
from tests.emulators.microsoft import GraphEmulator

NODE_DIR = Path(__file__).parent.parent / "compat" / "node"
AXE = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
ICLOUD_USER, ICLOUD_PASSWORD = "ada@icloud.example", "abcd-efgh-ijkl-mnop"
DAV_EMAIL, DAV_USER, DAV_PASSWORD = "grace@dav.example", "grace", "dav-password"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 667}


def _require(what: str) -> None:
    if os.environ.get("ROLODEX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ROLODEX_REQUIRE_BROWSER=1 but {what}")
    pytest.skip(f"{what}; ROLODEX_REQUIRE_BROWSER=1 makes this a failure")


class Application:
    """The application's web server: it records where the browser was sent back to."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        arrivals = self.arrivals

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                arrivals.append(self.path)
                body = (
                    b"<!doctype html><html lang='en'><title>App</title>"
                    b"<main><h1>Back at the application</h1></main></html>"
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.redirect_uri = self.url + "/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def query(self, url: str) -> dict[str, str]:
        parts = urlsplit(url)
        assert url.startswith(self.redirect_uri), url
        return {k: v[-1] for k, v in parse_qs(parts.query or parts.fragment).items()}


@dataclasses.dataclass
class World:
    url: str
    svc: Services
    app: Application
    google: GoogleServer
    graph: GraphEmulator
    radicale: RadicaleServer
    browser: Any
    axe_page: Any  # scripts allowed, CSP bypassed: only for axe-core
    shots: Path

    @property
    def client_id(self) -> str:
        return self.svc.application.client().client_id

    @property
    def secret(self) -> str:
        return self.svc.application.client().client_secret

    def authorize_url(self, **params: str) -> str:
        query = {"client_id": self.client_id, "redirect_uri": self.app.redirect_uri, **params}
        return f"{self.url}/oauth/authorize?{urlencode({'response_type': 'code', **query})}"

    def python_sdk(self) -> Any:
        from nylas_legacy import APIClient

        client = APIClient(self.client_id, self.secret, api_server="https://placeholder")
        # The SDK takes https only, and computes the /oauth URLs in its constructor.
        client.api_server = self.url
        client.authorize_url = self.url + "/oauth/authorize"
        client.access_token_url = self.url + "/oauth/token"
        return client

    def node(self, *args: str) -> dict[str, Any]:
        env = {
            **os.environ,
            "ROLODEX_URL": self.url,
            "ROLODEX_CLIENT_ID": self.client_id,
            "ROLODEX_CLIENT_SECRET": self.secret,
        }
        done = subprocess.run(
            ["node", "hosted_auth.js", *args],
            cwd=NODE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def account(self, token: str) -> dict[str, Any]:
        answer = httpx.get(self.url + "/account", auth=(token, ""))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def shoot(self, page: Any, name: str) -> None:
        """Screenshots at desktop and phone widths, and the page passes axe-core."""
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            page.screenshot(path=str(self.shots / f"{name}-{label}.png"), full_page=True)
            # Nothing is cut off or needs sideways scrolling on a phone.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= size["width"], (name, label, width)
        page.set_viewport_size(DESKTOP)
        check_accessibility(self.axe_page, page.url, page.content(), page.title(), name)


def check_accessibility(axe_page: Any, url: str, html: str, title: str, name: str) -> None:
    """axe-core's WCAG 2 A/AA rules (labels, contrast, landmarks, names...) on the page as
    it was rendered. axe is injected as a script, which the page's own policy forbids, so it
    runs in a page of its own that bypasses CSP, on the same HTML and stylesheet."""
    if not AXE.is_file():
        _require(f"axe-core is not installed in {NODE_DIR / 'node_modules'} (make setup)")
    # The same origin (the stylesheet resolves), a path of its own (only this is served
    # from the captured HTML).
    copy = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}/__axe__/{name}"
    axe_page.route(copy, lambda route: route.fulfill(body=html, content_type="text/html"))
    axe_page.goto(copy)
    assert axe_page.title() == title, (axe_page.title(), title)
    axe_page.add_script_tag(path=str(AXE))
    result = axe_page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    problems = [
        f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']]})"
        for v in result["violations"]
    ]
    assert not problems, f"{name}: {problems}"
    assert result["passes"], name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _require("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("Playwright is not installed (pip install playwright)")
    shots = Path(os.environ.get("ROLODEX_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    path = tmp_path_factory.mktemp("signin-browser") / "rolodex.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    users = {ICLOUD_USER: ICLOUD_PASSWORD, DAV_USER: DAV_PASSWORD}
    with (
        GoogleServer() as google,
        GraphEmulator() as graph,
        RadicaleServer(users=users) as radicale,
        pytest.MonkeyPatch.context() as mp,
        sync_playwright() as playwright,
    ):
        for user, password in users.items():
            book = radicale.url(f"/{user}/contacts/")
            made = httpx.request(
                "MKCOL",
                book,
                auth=(user, password),
                content=(
                    '<?xml version="1.0"?><d:mkcol xmlns:d="DAV:" '
                    'xmlns:cr="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype>'
                    "<d:collection/><cr:addressbook/></d:resourcetype></d:prop></d:set>"
                    "</d:mkcol>"
                ),
            )
            assert made.status_code == 201, made.text
        mp.setenv("ROLODEX_GOOGLE_PEOPLE_URL", google.people_url)
        mp.setenv("ROLODEX_MICROSOFT_GRAPH_URL", graph.graph_url)
        # Read by the connectors when they refresh tokens (as by Settings, here replaced).
        mp.setenv("ROLODEX_GOOGLE_TOKEN_URL", google.token_url)
        mp.setenv("ROLODEX_MICROSOFT_LOGIN_URL", graph.login_url)
        mp.setenv("ROLODEX_ICLOUD_URL", radicale.base_url)
        mp.setenv("ROLODEX_ALLOWED_PROVIDER_HOSTS", "127.0.0.1")
        settings = dataclasses.replace(
            settings_for_tests(store.url),
            public_url=url,
            google_client_id="rolodex-google",
            google_client_secret="google-secret",
            google_auth_url=google.url + "/o/oauth2/v2/auth",
            google_token_url=google.token_url,
            microsoft_client_id=graph.client_id,
            microsoft_client_secret=graph.client_secret,
            microsoft_login_url=graph.login_url,
        )
        google.emulator.register_client(
            "rolodex-google", "google-secret", f"{url}/oauth/callback/google"
        )
        graph.consent.register(graph.client_id, f"{url}/oauth/callback/microsoft")
        asgi = create_app(settings, store)
        svc = asgi
        while not hasattr(svc, "state"):
            svc = svc.app  # type: ignore[attr-defined]
        services: Services = svc.state.services  # type: ignore[attr-defined]
        application = Application()
        services.signin.add_redirect_uri(application.redirect_uri)
        server = uvicorn.Server(
            uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "Rolodex did not start"
            time.sleep(0.02)
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        axe = browser.new_context(bypass_csp=True)
        try:
            yield World(
                url, services, application, google, graph, radicale, browser, axe.new_page(), shots
            )
        finally:
            axe.close()
            browser.close()
            server.should_exit = True
            thread.join(timeout=5)
            application.server.shutdown()
    store.close()


@pytest.fixture
def page(world: World) -> Iterator[Any]:
    """A fresh browser profile, scripts off: every page works without JavaScript."""
    context = world.browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    try:
        yield context.new_page()
    finally:
        context.close()


def _node_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (NODE_DIR / "node_modules" / "nylas" / "package.json").is_file():
        return "the Node SDK is not installed (make setup)"
    return None


# --- Google and Microsoft ---------------------------------------------------------------------


def test_google_with_the_python_sdk(world: World, page: Any) -> None:
    sdk = world.python_sdk()
    url = sdk.authentication_url(world.app.redirect_uri, state="py-state", scopes=["contacts"])
    response = page.goto(url)
    assert response.status == 200
    assert page.title() == "Connect your contacts · Rolodex"
    world.shoot(page, "choose")
    page.get_by_role("link", name="Google").click()
    page.wait_for_url(world.app.redirect_uri + "**")
    back = world.app.query(page.url)
    assert back["state"] == "py-state"
    token = sdk.token_for_code(back["code"])
    account = world.account(token)
    assert account["email_address"] == world.google.emulator.user_email
    assert account["provider"] == "google" and account["sync_state"] == "running"
    # The code works once.
    from nylas_legacy.client.errors import NylasApiError

    with pytest.raises(NylasApiError):
        sdk.token_for_code(back["code"])


def test_microsoft_with_the_node_sdk(world: World, page: Any) -> None:
    missing = _node_missing()
    if missing is not None:
        if os.environ.get("ROLODEX_REQUIRE_NODE") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    url = world.node("url", world.app.redirect_uri, "node-state", "office365")["url"]
    page.goto(url)  # provider given: straight on to Microsoft's consent screen and back
    page.wait_for_url(world.app.redirect_uri + "**")
    back = world.app.query(page.url)
    assert back["state"] == "node-state"
    token = world.node("token", back["code"])["token"]
    assert token["emailAddress"] == world.graph.email
    assert token["provider"] == "microsoft" and token["tokenType"] == "bearer"
    assert world.account(token["accessToken"])["id"] == token["accountId"]
    replayed = world.node("token", back["code"])
    # The SDK drops the body of any answer but a 2xx (nylas-v2-auth.md 2.4).
    assert replayed["error"] == "No access token in response"


def test_refusing_consent_sends_nothing_and_offers_the_way_back(world: World, page: Any) -> None:
    world.google.emulator.consent.refuse = True
    try:
        page.goto(world.authorize_url(provider="gmail", state="refused-state"))
        assert page.get_by_role("heading").inner_text() == "Access was not allowed"
        world.shoot(page, "refused")
    finally:
        world.google.emulator.consent.refuse = False
    page.get_by_role("link", name="Return to the application").click()
    page.wait_for_url(world.app.redirect_uri + "**")
    back = world.app.query(page.url)
    assert back["error"] == "access_denied" and back["state"] == "refused-state"
    assert "code" not in back


# --- iCloud and CardDAV against Radicale -----------------------------------------------------


def test_icloud_style_a_wrong_password_then_the_right_one(world: World, page: Any) -> None:
    page.goto(world.authorize_url(provider="icloud", login_hint=ICLOUD_USER, state="ic"))
    assert page.get_by_label("Email address").input_value() == ICLOUD_USER
    world.shoot(page, "icloud")
    page.get_by_label("App-specific password").fill("wrong-password")
    with page.expect_navigation() as refused:
        page.get_by_role("button", name="Sign in").click()
    assert refused.value.status == 400
    alert = page.get_by_role("alert")
    assert "did not accept this user name and password" in alert.inner_text()
    assert page.get_by_label("Email address").input_value() == ICLOUD_USER
    assert page.get_by_label("App-specific password").input_value() == ""
    world.shoot(page, "icloud-wrong-password")
    before = len(world.svc.accounts.list())
    page.get_by_label("App-specific password").fill(ICLOUD_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The form's answer redirects to the application: CSP form-action allows that one.
    page.wait_for_url(world.app.redirect_uri + "**")
    back = world.app.query(page.url)
    assert back["state"] == "ic"
    answer = httpx.post(
        world.url + "/oauth/token",
        data={
            "client_id": world.client_id,
            "client_secret": world.secret,
            "grant_type": "authorization_code",
            "code": back["code"],
        },
    ).json()
    assert answer["email_address"] == ICLOUD_USER and answer["provider"] == "carddav"
    assert len(world.svc.accounts.list()) == before + 1  # nothing saved for the wrong one
    settings = world.svc.accounts.connection(answer["account_id"])
    assert settings["url"] == world.radicale.base_url and settings["username"] == ICLOUD_USER
    # The first sync brings the book.
    put = httpx.put(
        world.radicale.url(f"/{ICLOUD_USER}/contacts/apple.vcf"),
        content=vcard("apple-1", "Johnny Appleseed"),
        auth=(ICLOUD_USER, ICLOUD_PASSWORD),
        headers={"Content-Type": "text/vcard"},
    )
    assert put.status_code == 201, put.text
    make_runner(world.svc.settings, world.svc.store).run(answer["account_id"])
    contacts = httpx.get(world.url + "/contacts", auth=(answer["access_token"], "")).json()
    assert [c["surname"] for c in contacts] == ["Appleseed"]


def test_carddav_by_keyboard_alone_with_the_python_sdk(world: World, page: Any) -> None:
    sdk = world.python_sdk()
    page.goto(sdk.authentication_url(world.app.redirect_uri, state="kb", scopes="contacts"))
    link = page.get_by_role("link", name="Other CardDAV server")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/oauth/authorize?**provider=carddav**")
    world.shoot(page, "carddav")
    page.get_by_label("Server address").focus()
    page.keyboard.type(world.radicale.base_url)
    for value in (DAV_EMAIL, DAV_USER, DAV_PASSWORD):
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    page.wait_for_url(world.app.redirect_uri + "**")
    back = world.app.query(page.url)
    assert back["state"] == "kb"
    token = sdk.token_for_code(back["code"])
    account = world.account(token)
    assert account["email_address"] == DAV_EMAIL and account["provider"] == "carddav"
    assert world.svc.accounts.connection(account["id"])["username"] == DAV_USER


def test_an_unregistered_redirect_uri_is_an_error_page(world: World, page: Any) -> None:
    url = world.authorize_url(redirect_uri="http://127.0.0.1:9/steal", state="x")
    response = page.goto(url)
    assert response.status == 400
    assert page.url.startswith(world.url + "/oauth/authorize")
    assert "Illegal redirect_uri" in page.get_by_role("alert").inner_text()
    world.shoot(page, "error")
