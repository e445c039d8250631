"""The command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from rolodex.cli.main import app
from tests.carddav_servers import RadicaleServer, vcard
from tests.conftest import TEST_SECRET_KEY, free_port

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ROLODEX_SECRET_KEY", TEST_SECRET_KEY)
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(*args: str) -> dict[str, object] | list[object] | str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    try:
        parsed: dict[str, object] | list[object] = json.loads(result.stdout)
        return parsed
    except ValueError:
        return result.stdout


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    commands = list(_commands(root))
    assert ("accounts", "create") in commands and ("sync",) in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
        # Every option by its whole name, as it is typed, at a terminal's 80 columns or
        # off one (rich's option tables cut --microsoft-client-secret-env to
        # --microsoft-client-secret-e...).
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        for param in command.params:
            for flag in (*param.opts, *param.secondary_opts):
                if flag.startswith("--"):
                    assert re.search(rf"{re.escape(flag)}(?![\w-])", result.output), (
                        path,
                        flag,
                        result.output,
                    )


def test_account_lifecycle(db: str) -> None:
    created = run("accounts", "create", "--email", "a@example.com", "--database-url", db)
    assert isinstance(created, dict)
    assert created["provider"] == "local" and created["sandbox"] is False
    account_id = str(created["account_id"])
    listed = run("accounts", "list", "--json", "--database-url", db)
    assert isinstance(listed, list) and listed[0]["account_id"] == account_id  # type: ignore[index]
    issued = run("accounts", "token", account_id, "--database-url", db)
    assert isinstance(issued, dict) and issued["access_token"] != created["access_token"]
    assert "revoked" in str(
        run("accounts", "revoke", str(issued["access_token"]), "--database-url", db)
    )
    again = runner.invoke(
        app, ["accounts", "revoke", str(issued["access_token"]), "--database-url", db]
    )
    assert again.exit_code == 1 and "No such token" in again.output
    # A token that started with "-" (issued before they never did) goes after "--".
    created_token = str(created["access_token"])
    assert "revoked" in str(run("accounts", "revoke", "--database-url", db, "--", created_token))
    assert "deleted" in str(run("accounts", "delete", account_id, "--database-url", db))
    assert run("accounts", "list", "--json", "--database-url", db) == []


def test_accounts_list_shows_whole_ids_and_addresses(db: str) -> None:
    """The table is what one copies an id from (for token, sync, delete): at 80 columns,
    or off a terminal, nothing in it is cut short."""
    email = "someone.with.a.rather.long.address@subdomain.example.com"
    created = run("accounts", "create", "--email", email, "--provider", "exchange",
                  "--database-url", db)  # fmt: skip
    assert isinstance(created, dict)
    listed = run("accounts", "list", "--database-url", db)
    assert str(created["account_id"]) in str(listed) and email in str(listed), listed


def test_a_database_that_cannot_be_opened_is_said_plainly(tmp_path: Path) -> None:
    """A mistyped --database-url, or a PostgreSQL that is not up: one line that says so
    (the password hidden), not SQLAlchemy's traceback."""
    (tmp_path / "a-file").write_text("")
    for url, said in (
        (f"sqlite:///{tmp_path / 'a-file' / 'x.db'}", "a-file"),
        (f"postgresql://rolodex:hunter2@127.0.0.1:{free_port()}/x", "Connection refused"),
        ("garbage", "sqlite:///"),
        ("mysql://x@y/z", "sqlite:///"),
    ):
        result = runner.invoke(app, ["accounts", "list", "--database-url", url])
        assert result.exit_code == 1, (url, result.output)
        assert isinstance(result.exception, SystemExit), (url, result.exception)
        assert "cannot open the database" in result.output and said in result.output
        assert "hunter2" not in result.output


def test_sandbox_accounts_and_bad_input(db: str) -> None:
    sandbox = run(
        "accounts",
        "create",
        "--email",
        "x@example.com",
        "--provider",
        "exchange",
        "--database-url",
        db,
    )
    assert isinstance(sandbox, dict) and sandbox["sandbox"] is True
    bad = runner.invoke(
        app, ["accounts", "create", "--email", "x@e.com", "--provider", "aol", "--database-url", db]
    )
    assert bad.exit_code == 1 and "unknown provider" in bad.output
    # The message is one line, whatever the terminal's width.
    assert "choose one of local, google, microsoft, exchange, carddav" in bad.output
    # The names --help lists for --provider all work, v2's aliases too: gmail is google.
    for alias, provider in (("gmail", "google"), ("office365", "microsoft")):
        made = run("accounts", "create", "--email", f"{alias}@example.com", "--provider",
                   alias, "--database-url", db)  # fmt: skip
        assert isinstance(made, dict), made
        assert (made["provider"], made["sandbox"]) == (provider, True)


def test_missing_connection_settings_are_named_by_their_options(db: str) -> None:
    """What is missing is said as what to type: --redirect-uri, not "redirect_uri"."""
    for provider, given, wanted in (
        ("carddav", ["--url", "https://carddav.example.com"],
         ["--password-file or --password-env"]),
        ("google", ["--google-client-id", "x"],
         ["--google-client-secret-file or --google-client-secret-env",
          "--google-refresh-token-file or --google-refresh-token-env"]),
        ("office365", ["--microsoft-client-id", "x"], ["--redirect-uri"]),
    ):  # fmt: skip
        result = runner.invoke(
            app,
            ["accounts", "create", "--email", "m@example.com", "--provider", provider,
             *given, "--database-url", db],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        for option in wanted:
            assert option in result.output, (provider, result.output)


def test_a_secret_file_that_cannot_be_read_is_a_usage_error(db: str, tmp_path: Path) -> None:
    """A mistyped --password-file path is said plainly, not as a traceback."""
    for path in (tmp_path / "missing", tmp_path):
        result = runner.invoke(
            app,
            ["accounts", "create", "--email", "f@example.com", "--provider", "carddav",
             "--url", "https://carddav.example.com", "--password-file", str(path),
             "--database-url", db],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert "--password-file" in result.output and result.exception is not None
        assert isinstance(result.exception, SystemExit), result.exception


def test_a_carddav_server_on_this_machine_refused_says_how_to_allow_it(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` allows the server to reach localhost; a `rolodex accounts create` run in
    another shell does not, and its refusal names the setting that allows it."""
    monkeypatch.delenv("ROLODEX_ALLOWED_PROVIDER_HOSTS", raising=False)
    monkeypatch.setenv("CARD_PASSWORD", "secret")
    result = runner.invoke(
        app,
        ["accounts", "create", "--email", "l@example.com", "--provider", "carddav", "--url",
         f"http://127.0.0.1:{free_port()}/", "--password-env", "CARD_PASSWORD",
         "--database-url", db],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "ROLODEX_ALLOWED_PROVIDER_HOSTS" in result.output


def test_connect_carddav_and_sync_with_progress(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RadicaleServer(users={"test": "secret"}) as server:
        book = server.default_addressbook
        for i in range(3):
            server.put_card(book + f"c{i}.vcf", vcard(f"u{i}", f"Card{i} Person"))
        monkeypatch.setenv("CARD_PASSWORD", "wrong")
        refused = runner.invoke(
            app,
            [
                "accounts",
                "create",
                "--email",
                "t@example.com",
                "--provider",
                "carddav",
                "--url",
                server.base_url,
                "--username",
                "test",
                "--password-env",
                "CARD_PASSWORD",
                "--database-url",
                db,
            ],
        )
        assert refused.exit_code == 1 and "invalid credentials" in refused.output
        assert run("accounts", "list", "--json", "--database-url", db) == []
        password_file = tmp_path / "password"
        password_file.write_text("secret\n")
        created = run(
            "accounts",
            "create",
            "--email",
            "t@example.com",
            "--provider",
            "carddav",
            "--url",
            server.base_url,
            "--username",
            "test",
            "--password-file",
            str(password_file),
            "--database-url",
            db,
        )
        assert isinstance(created, dict)
        result = runner.invoke(app, ["sync", str(created["account_id"]), "--database-url", db])
        assert result.exit_code == 0, result.output
        assert "pull" in result.stderr and "3/3" in result.stderr
        assert json.loads(result.stdout)["created_or_updated"] == 3


def test_app_show_is_stable(db: str) -> None:
    first = run("app", "show", "--database-url", db)
    assert isinstance(first, dict) and first["client_id"] and first["client_secret"]
    assert run("app", "show", "--database-url", db) == first


def test_db_upgrade(db: str) -> None:
    assert "up to date" in str(run("db", "upgrade", "--database-url", db))


def test_serve_prints_a_working_curl_line(tmp_path: Path) -> None:
    """What a newcomer does: start the server, paste the printed line."""
    port = free_port()
    env = {**os.environ, "ROLODEX_SECRET_KEY": TEST_SECRET_KEY, "COLUMNS": "60"}
    server = subprocess.Popen(
        [sys.executable, "-m", "rolodex", "serve", "--port", str(port), "--sync-interval", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert server.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            lines.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        output = "".join(lines)
        match = re.search(r"curl -u (\S+): '(\S+)'", output)
        assert match, output
        token, url = match.groups()
        answer = httpx.get(url, auth=(token, ""))
        assert answer.status_code == 200
        contacts = answer.json()
        assert len(contacts) == 3 and contacts[0]["picture_url"].startswith(
            f"http://127.0.0.1:{port}/"
        )
        assert (tmp_path / "rolodex.db").exists()
    finally:
        server.terminate()
        server.wait(10)


def test_serve_on_a_database_with_accounts_says_so_on_whole_lines(db: str) -> None:
    """The second `make run`: the hint names `rolodex accounts token ACCOUNT_ID` whole,
    not cut at the terminal's width (off a terminal: 80 columns) in the middle."""
    run("accounts", "create", "--email", "s@example.com", "--database-url", db)
    env = {**os.environ, "COLUMNS": "60"}
    server = subprocess.Popen(
        [sys.executable, "-m", "rolodex", "serve", "--port", str(free_port()),
         "--sync-interval", "0", "--database-url", db],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines = []
        while not lines or "API docs" not in lines[-1]:
            line = server.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        said = "".join(lines)
        assert (
            "Accounts exist; `rolodex accounts list` shows them and "
            "`rolodex accounts token ACCOUNT_ID` issues a token." in said
        ), said
    finally:
        server.terminate()
        server.wait(10)


def test_sync_of_an_account_that_does_not_exist_fails_at_once(db: str) -> None:
    """A mistyped id is an error, not a wait for a sync in progress that never ends (nor,
    with --no-wait, "another process is syncing")."""
    for extra in ([], ["--no-wait"]):
        result = runner.invoke(app, ["sync", "nosuchaccount", *extra, "--database-url", db])
        assert result.exit_code == 1, result.output
        assert "no account nosuchaccount" in result.output
        assert "waiting" not in result.output and "another process" not in result.output


def test_sync_waits_for_the_sync_in_progress_and_no_wait_fails_fast(
    db: str, tmp_path: Path
) -> None:
    from rolodex.service.mirror import Mirror
    from rolodex.store import Store

    with RadicaleServer(users={"test": "secret"}) as server:
        server.put_card(server.default_addressbook + "c.vcf", vcard("u1", "Card Person"))
        password_file = tmp_path / "password"
        password_file.write_text("secret\n")
        connect = (
            "accounts", "create", "--email", "w@example.com", "--provider", "carddav",
            "--url", server.base_url, "--username", "test",
            "--password-file", str(password_file), "--database-url", db,
        )  # fmt: skip
        created = run(*connect)
        assert isinstance(created, dict)
        account_id = str(created["account_id"])
        # Connecting the same address again re-links the same account.
        again = run(*connect)
        assert isinstance(again, dict) and again["account_id"] == account_id
        store = Store(db)
        mirror = Mirror(store)
        assert mirror.lease(account_id, "the-server", 30)  # a sync in progress elsewhere
        busy = runner.invoke(app, ["sync", account_id, "--no-wait", "--database-url", db])
        assert busy.exit_code == 3, busy.output
        assert "another process is syncing" in busy.output
        env = {**os.environ, "ROLODEX_DATABASE_URL": db}
        waiting = subprocess.Popen(
            [sys.executable, "-m", "rolodex", "sync", account_id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiting.stderr is not None
        said = waiting.stderr.readline()  # blocks until the command says it waits
        assert "waiting for the sync in progress (the-server)" in said
        time.sleep(1)
        assert waiting.poll() is None  # still waiting
        mirror.release(account_id, "the-server")
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert json.loads(out)["created_or_updated"] == 1
        store.close()


def test_a_command_on_sqlite_does_not_import_the_postgresql_driver() -> None:
    """psycopg took a tenth of a second of every command's start (``rolodex --help``
    included) before it was imported only where PostgreSQL is used."""
    code = "import sys, rolodex.cli.main; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
