"""Secrets at rest: private files, a key found by configuration (not the working
directory), a wrong key refused at start, the client secret sealed, and revocation seen at
once by every process."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from rolodex.api.app import build_services, create_app
from rolodex.cli.main import app as cli
from rolodex.config import Settings
from rolodex.domain.errors import Unauthenticated
from rolodex.service.accounts import AccountService
from rolodex.service.application import ApplicationService
from rolodex.service.credentials import CredentialBox, KeyMismatch, check_key
from rolodex.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("ROLODEX_SECRET_KEY", raising=False)
    monkeypatch.delenv("ROLODEX_SECRET_KEY_FILE", raising=False)
    monkeypatch.delenv("ROLODEX_CLIENT_ID", raising=False)
    monkeypatch.delenv("ROLODEX_CLIENT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    os.umask(0o022)
    (tmp_path / "data").mkdir()
    return tmp_path


def test_database_and_key_files_are_private(fresh: Path) -> None:
    db = fresh / "data" / "book.db"
    settings = Settings(database_url=f"sqlite:///{db}")
    store = Store(settings.database_url)
    store.migrate()
    build_services(settings, store).accounts.create("me@example.com")
    for path in [db, db.with_name("book.db-wal"), db.with_name("book.db-shm")]:
        assert mode(path) == 0o600, path
    assert Path(settings.key_file) == fresh / "data" / "book.key"
    assert mode(fresh / "data" / "book.key") == 0o600
    store.close()


def test_the_key_file_does_not_depend_on_the_working_directory(fresh: Path) -> None:
    db = fresh / "data" / "book.db"
    key = CredentialBox.from_settings(Settings(database_url=f"sqlite:///{db}"))
    sealed = key.seal({"password": "p"})
    elsewhere = fresh / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    again = CredentialBox.from_settings(Settings(database_url=f"sqlite:///{db}"))
    assert again.open(sealed) == {"password": "p"}
    assert not (elsewhere / "rolodex.key").exists()
    assert not (fresh / "rolodex.key").exists()


def test_a_key_that_does_not_match_is_an_error_at_start(fresh: Path) -> None:
    url = f"sqlite:///{fresh / 'data' / 'book.db'}"
    first = Settings(database_url=url, secret_key=Fernet.generate_key().decode())
    store = Store(url)
    store.migrate()
    build_services(first, store).accounts.create(
        "me@example.com", provider="carddav", connection={"url": "u", "password": "p"}
    )
    other = Settings(database_url=url, secret_key=Fernet.generate_key().decode())
    with pytest.raises(KeyMismatch, match="not the key"):
        create_app(other, store)
    create_app(first, store)  # the right key starts


def test_an_old_database_without_a_key_check_is_checked_by_its_credentials(fresh: Path) -> None:
    url = f"sqlite:///{fresh / 'data' / 'book.db'}"
    store = Store(url)
    store.migrate()
    box = CredentialBox(Fernet.generate_key())
    AccountService(store, box).create("me@x.io", provider="carddav", connection={"url": "u"})
    with store.write() as tx:  # as written before key checks existed
        tx.conn.exec_driver_sql("DELETE FROM settings WHERE key = 'credential_key_check'")
    with pytest.raises(KeyMismatch):
        check_key(store, CredentialBox(Fernet.generate_key()))
    check_key(store, box)


def test_a_client_secret_sealed_before_any_server_ran_is_checked_at_start(fresh: Path) -> None:
    # `rolodex app show` sealed the client secret before a server ever started; a server
    # started with another key took that key for the database's (the first check adopts
    # the key it is given) and answered 500 to every use of the client secret.
    url = f"sqlite:///{fresh / 'data' / 'book.db'}"
    first = Settings(database_url=url, secret_key=Fernet.generate_key().decode())
    store = Store(url)
    store.migrate()
    box = CredentialBox.from_settings(first)
    ApplicationService(store, AccountService(store, box), box).client()
    other = Settings(database_url=url, secret_key=Fernet.generate_key().decode())
    with pytest.raises(KeyMismatch, match="not the key"):
        create_app(other, store)
    create_app(first, store)  # the right key starts
    store.close()


def test_the_client_secret_is_sealed_and_app_show_prints_it(fresh: Path) -> None:
    db = fresh / "data" / "book.db"
    url = f"sqlite:///{db}"
    result = CliRunner().invoke(cli, ["app", "show", "--database-url", url])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    raw = sqlite3.connect(db).execute("SELECT key, value FROM settings").fetchall()
    assert shown["client_secret"] not in repr(raw)
    assert dict(raw)["client_secret"].startswith("sealed:")
    again = CliRunner().invoke(cli, ["app", "show", "--database-url", url])
    assert json.loads(again.stdout) == shown


def test_a_plain_client_secret_of_an_old_database_is_sealed_on_first_use(fresh: Path) -> None:
    db = fresh / "data" / "book.db"
    settings = Settings(database_url=f"sqlite:///{db}")
    store = Store(settings.database_url)
    store.migrate()
    with store.write() as tx:
        tx.settings.put("client_id", "cid")
        tx.settings.put("client_secret", "plain-secret")
    svc = build_services(settings, store)
    assert svc.application.client().client_secret == "plain-secret"
    raw = dict(sqlite3.connect(db).execute("SELECT key, value FROM settings").fetchall())
    assert "plain-secret" not in repr(raw)
    assert ApplicationService(store, svc.accounts, svc.application.credentials).client() == (
        svc.application.client()
    )
    store.close()


@pytest.mark.parametrize("how", ["revoke", "delete"])
def test_revocation_and_deletion_are_immediate_in_every_process(store: Store, how: str) -> None:
    # Two processes: separate stores (engines, connections) and services on one database.
    other = Store(store.url)
    try:
        mine, theirs = AccountService(store), AccountService(other)
        created = mine.create("revoke@example.com")
        token = created.access_token
        assert theirs.authenticate(token).id == created.account.id  # now cached there
        assert theirs.authenticate(token).id == created.account.id
        if how == "revoke":
            mine.revoke(token)
        else:
            mine.delete(created.account.id)
        with pytest.raises(Unauthenticated):
            theirs.authenticate(token)
    finally:
        other.close()


def test_other_tokens_stay_cached_across_unrelated_writes(store: Store) -> None:
    accounts = AccountService(store)
    created = accounts.create("keep@example.com")
    accounts.authenticate(created.access_token)
    AccountService(store).create("unrelated@example.com")
    assert accounts.authenticate(created.access_token).id == created.account.id


def test_the_cli_refuses_a_wrong_key_with_a_plain_message(fresh: Path) -> None:
    url = f"sqlite:///{fresh / 'data' / 'book.db'}"
    rolodex = str(Path(sys.executable).with_name("rolodex"))
    env = {**os.environ, "ROLODEX_SECRET_KEY": Fernet.generate_key().decode()}
    first = subprocess.run([rolodex, "app", "show", "--database-url", url], env=env)
    assert first.returncode == 0
    env["ROLODEX_SECRET_KEY"] = Fernet.generate_key().decode()
    second = subprocess.run(
        [rolodex, "app", "show", "--database-url", url], env=env, capture_output=True, text=True
    )
    assert second.returncode == 1
    assert "is not the key they were sealed with" in second.stderr
    assert "Traceback" not in second.stderr


def test_the_cli_refuses_a_malformed_key_with_a_plain_message(fresh: Path) -> None:
    """A ROLODEX_SECRET_KEY (or key file) that is no Fernet key at all, a placeholder pasted
    from the README's `ROLODEX_SECRET_KEY=...` say: what to fix, not a ValueError traceback."""
    key_file = fresh / "bad.key"
    key_file.write_text("not a key\n")
    for variable, value in (("ROLODEX_SECRET_KEY", "..."), ("ROLODEX_SECRET_KEY_FILE", key_file)):
        stderr = _refused_at_start(fresh / "data" / "book.db", variable, str(value))
        assert "is not a credential key" in stderr and variable in stderr


def _refused_at_start(database: Path, variable: str, value: str) -> str:
    """What ``rolodex accounts list`` says when the key ``variable`` names cannot be used:
    a plain message and exit status 1, never a traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLODEX_SECRET_KEY")}
    env[variable] = value
    answer = subprocess.run(
        [str(Path(sys.executable).with_name("rolodex")), "accounts", "list"],
        env={**env, "ROLODEX_DATABASE_URL": f"sqlite:///{database}"},
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 1, answer.stderr
    assert "Traceback" not in answer.stderr, answer.stderr
    return answer.stderr


def test_what_is_not_a_sealed_value_is_no_evidence_against_the_key(fresh: Path) -> None:
    store = Store(f"sqlite:///{fresh / 'data' / 'book.db'}")
    store.migrate()
    AccountService(store).create("junk@x.io")
    with store.write() as tx:
        tx.conn.exec_driver_sql("UPDATE accounts SET connection = x'736561'")
    check_key(store, CredentialBox(Fernet.generate_key()))  # no error: nothing to judge by
    store.close()


def test_the_cli_refuses_a_key_file_it_cannot_read_with_a_plain_message(fresh: Path) -> None:
    stderr = _refused_at_start(fresh / "book.db", "ROLODEX_SECRET_KEY_FILE", str(fresh))
    assert "cannot be read" in stderr and "ROLODEX_SECRET_KEY_FILE" in stderr  # a directory
