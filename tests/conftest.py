"""Fixtures shared by the whole suite: stores on every backend, the app, a live server."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from rolodex.api.app import create_app
from rolodex.api.deps import Services
from rolodex.config import Settings
from rolodex.domain.account import Account
from rolodex.service.accounts import AccountService
from rolodex.store import Store

# CI explores the same examples every run, so a landing is judged on the code, not on which
# examples chance picked; developers' runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Where PostgreSQL is looked for when ROLODEX_TEST_POSTGRES_URL is not set: the local
# server of a developer machine with trust auth. CI sets ROLODEX_REQUIRE_POSTGRES=1, so
# there a missing PostgreSQL fails the run instead of skipping.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SECRET_KEY = "u6fB3yQw1mN0rSx8c2Vt7Zp4Hk9Lj5Ga3Ed1Fo6Wq0I="
# Tests send hundreds of requests a second from one address and token; the rate limits have
# tests of their own (tests/api/test_rate_limits.py), which turn them on.
os.environ.setdefault("ROLODEX_RATE_LIMITS", "off")
# The CardDAV servers of the tests listen on 127.0.0.1, which providers may not be at
# unless the operator allows it (rolodex.connectors.outbound).
os.environ.setdefault("ROLODEX_ALLOWED_PROVIDER_HOSTS", "127.0.0.1,localhost,::1")


def _postgres_admin_url() -> str | None:
    url = os.environ.get("ROLODEX_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        engine = create_engine(
            Store(url).url, connect_args={"connect_timeout": 3}, isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        if os.environ.get("ROLODEX_REQUIRE_POSTGRES") == "1":
            raise RuntimeError(f"PostgreSQL is required but unreachable at {url}: {exc}") from exc
        return None
    return Store(url).url


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Where test databases are made; skips the test when PostgreSQL is not there."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        pytest.skip(
            "PostgreSQL not reachable (set ROLODEX_TEST_POSTGRES_URL; "
            "ROLODEX_REQUIRE_POSTGRES=1 makes this a failure)"
        )
    return admin_url


@contextmanager
def _fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"rolodex_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with _fresh_postgres(postgres_admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own for one test, on each backend: for end-to-end tests
    whose provider emulator always signs in the same mailbox, which a shared store would
    re-link to another test's account."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rolodex.db'}"
        return
    with _fresh_postgres(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'rolodex.db'}"


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A migrated store on each backend. Tests isolate themselves by using their own
    accounts: every row of every table belongs to one account."""
    url = request.getfixturevalue(f"{request.param}_url")
    store = Store(url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture(scope="session")
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    store = Store(sqlite_url)
    store.migrate()
    yield store
    store.close()


def settings_for_tests(url: str) -> Settings:
    return Settings(database_url=url, secret_key=TEST_SECRET_KEY, public_url=None)


@dataclass
class ApiAccount:
    """An account with an HTTP client that authenticates as it."""

    account: Account
    token: str
    client: TestClient

    @property
    def id(self) -> str:
        return self.account.id


@dataclass
class App:
    store: Store
    settings: Settings
    client: TestClient

    @property
    def accounts(self) -> AccountService:
        from rolodex.connectors.registry import catalog, verify_connection
        from rolodex.service.credentials import CredentialBox

        return AccountService(
            self.store, CredentialBox.from_settings(self.settings), verify_connection, catalog()
        )

    @property
    def services(self) -> Services:
        found: Services = _fastapi(self.client.app).state.services
        return found

    def client_for(self, token: str) -> TestClient:
        client = TestClient(self.client.app, base_url="http://testserver")
        client.auth = (token, "")
        return client

    def new_account(self, provider: str = "local", email: str | None = None) -> ApiAccount:
        created = self.accounts.create(
            email or f"{uuid.uuid4().hex[:8]}@example.com", name="Test User", provider=provider
        )
        return ApiAccount(
            created.account, created.access_token, self.client_for(created.access_token)
        )


def _fastapi(app: Any) -> Any:
    """The FastAPI app behind the fast read path."""
    return getattr(app, "app", app)


@pytest.fixture(scope="session")
def app(sqlite_store: Store, sqlite_url: str) -> App:
    """The whole application in-process on SQLite."""
    settings = settings_for_tests(sqlite_url)
    return App(sqlite_store, settings, TestClient(create_app(settings, sqlite_store)))


@pytest.fixture
def api(app: App) -> ApiAccount:
    """A fresh local account and a client for it."""
    return app.new_account()


@pytest.fixture(scope="session")
def any_app(store: Store) -> App:
    """The application on each backend (for the tests that must hold on both)."""
    settings = settings_for_tests(store.url)
    return App(store, settings, TestClient(create_app(settings, store)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    app: App


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real uvicorn server on a free port, for clients that speak real HTTP (the SDKs)."""
    path: Path = tmp_path_factory.mktemp("live") / "rolodex.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    store.migrate()
    settings = settings_for_tests(url)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, store), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    yield LiveServer(
        f"http://127.0.0.1:{port}", App(store, settings, TestClient(create_app(settings, store)))
    )
    server.should_exit = True
    thread.join(timeout=5)
    store.close()
