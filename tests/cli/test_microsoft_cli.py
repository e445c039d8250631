"""`rolodex accounts create --provider microsoft` and `rolodex sync` against the Graph
emulator: secrets from a file and from the environment, never the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolodex.cli.main import app
from tests.cli.test_cli import run
from tests.conftest import TEST_SECRET_KEY
from tests.emulators.microsoft import GraphEmulator

runner = CliRunner()


def test_connect_a_microsoft_account_and_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLODEX_SECRET_KEY", TEST_SECRET_KEY)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    with GraphEmulator() as graph:
        monkeypatch.setenv("ROLODEX_MICROSOFT_GRAPH_URL", graph.graph_url)
        monkeypatch.setenv("ROLODEX_MICROSOFT_LOGIN_URL", graph.login_url)
        graph.add_contact({"givenName": "Cli", "surname": "Contact"})
        secret = tmp_path / "secret"
        secret.write_text(graph.client_secret + "\n")
        monkeypatch.setenv("MS_REFRESH", graph.refresh_token)
        created = run(
            "accounts", "create", "--email", graph.email, "--provider", "microsoft",
            "--microsoft-client-id", graph.client_id,
            "--microsoft-client-secret-file", str(secret),
            "--microsoft-refresh-token-env", "MS_REFRESH",
            "--redirect-uri", "http://localhost:8400/callback", "--database-url", db,
        )  # fmt: skip
        assert isinstance(created, dict)
        result = runner.invoke(app, ["sync", str(created["account_id"]), "--database-url", db])
        assert result.exit_code == 0, result.output
        assert graph.graph_requests("GET", "/contacts/delta")
        # The next sync checks the pictures the first one did not read, and says so: the
        # progress line, and in its report how many are left never checked.
        again = runner.invoke(app, ["sync", str(created["account_id"]), "--database-url", db])
        assert again.exit_code == 0, again.output
        assert "check pictures" in again.output
        assert '"pictures_checked": 1' in again.output
        assert '"pictures_unchecked": 0' in again.output
        # A refused grant: nothing is saved.
        monkeypatch.setenv("MS_REFRESH", "M.R3_BAY.not-a-grant")
        refused = runner.invoke(
            app,
            [
                "accounts", "create", "--email", "other@contoso.example",
                "--provider", "microsoft", "--microsoft-client-id", graph.client_id,
                "--microsoft-client-secret-file", str(secret),
                "--microsoft-refresh-token-env", "MS_REFRESH",
                "--redirect-uri", "http://localhost:8400/callback", "--database-url", db,
            ],
        )  # fmt: skip
        assert refused.exit_code != 0
        listed = run("accounts", "list", "--database-url", db)
        assert isinstance(listed, str) and "other@contoso.example" not in listed
        assert graph.email[:10] in listed


def test_sync_prints_no_warnings_of_its_libraries(tmp_path: Path) -> None:
    """`rolodex sync` as a user runs it, in a process of its own: its output is the
    progress and the report, not authlib's DeprecationWarning about httpx (which authlib
    makes always show) on every run."""
    env = {
        **os.environ,
        "ROLODEX_SECRET_KEY": TEST_SECRET_KEY,
        "ROLODEX_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }
    with GraphEmulator() as graph:
        env["ROLODEX_MICROSOFT_GRAPH_URL"] = graph.graph_url
        env["ROLODEX_MICROSOFT_LOGIN_URL"] = graph.login_url
        env["MS_SECRET"], env["MS_REFRESH"] = graph.client_secret, graph.refresh_token
        rolodex = [sys.executable, "-m", "rolodex"]
        created = subprocess.run(
            [*rolodex, "accounts", "create", "--email", graph.email, "--provider", "microsoft",
             "--microsoft-client-id", graph.client_id, "--microsoft-client-secret-env",
             "MS_SECRET", "--microsoft-refresh-token-env", "MS_REFRESH",
             "--redirect-uri", "http://localhost:8400/callback"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        account_id = json.loads(created.stdout)["account_id"]
        synced = subprocess.run(
            [*rolodex, "sync", account_id], env=env, capture_output=True, text=True
        )
    assert synced.returncode == 0, synced.stderr
    for output in (created.stderr, synced.stderr):
        assert "Warning" not in output, output
