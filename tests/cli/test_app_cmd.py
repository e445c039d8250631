"""``rolodex app``: what hosted sign-in needs (redirect URIs, the callbacks to register)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rolodex.cli.main import app
from tests.conftest import TEST_SECRET_KEY

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ROLODEX_SECRET_KEY", TEST_SECRET_KEY)
    for name in ("GOOGLE", "MICROSOFT"):
        monkeypatch.delenv(f"ROLODEX_{name}_CLIENT_ID", raising=False)
        monkeypatch.delenv(f"ROLODEX_{name}_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("ROLODEX_PUBLIC_URL", raising=False)
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_redirect_uris_are_added_listed_and_removed(db: str) -> None:
    first, second = "https://app.example/oauth/callback", "com.example.app:/oauth"
    assert "registered" in invoke("app", "redirect-uri", "add", first, "--database-url", db)
    invoke("app", "redirect-uri", "add", second, "--database-url", db)
    assert "already" in invoke("app", "redirect-uri", "add", first, "--database-url", db)
    listed = invoke("app", "redirect-uri", "list", "--database-url", db)
    assert listed.splitlines() == [first, second]
    assert "fragment" in invoke(
        "app", "redirect-uri", "add", "https://x.example/#f", "--database-url", db, code=2
    )
    invoke("app", "redirect-uri", "remove", first, "--database-url", db)
    assert "not registered" in invoke(
        "app", "redirect-uri", "remove", first, "--database-url", db, code=1
    )
    shown = json.loads(invoke("app", "show", "--database-url", db))
    assert shown["redirect_uris"] == [second]


def test_app_show_says_what_is_offered_and_the_callbacks(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = json.loads(invoke("app", "show", "--database-url", db))
    assert bare["client_id"] and bare["client_secret"]
    assert bare["hosted_sign_in"]["google"]["offered"] is False
    assert bare["hosted_sign_in"]["carddav"]["offered"] is True
    assert "ROLODEX_PUBLIC_URL" in bare["note"]
    monkeypatch.setenv("ROLODEX_PUBLIC_URL", "https://contacts.example.org/")
    monkeypatch.setenv("ROLODEX_GOOGLE_CLIENT_ID", "g")
    monkeypatch.setenv("ROLODEX_GOOGLE_CLIENT_SECRET", "gs")
    shown = json.loads(invoke("app", "show", "--database-url", db))
    google, microsoft = shown["hosted_sign_in"]["google"], shown["hosted_sign_in"]["microsoft"]
    assert google["offered"] is True
    assert google["callback_url"] == "https://contacts.example.org/oauth/callback/google"
    assert microsoft["offered"] is False and "ROLODEX_MICROSOFT_CLIENT_ID" in microsoft["configure"]
    assert microsoft["callback_url"] == "https://contacts.example.org/oauth/callback/microsoft"
    assert shown["client_id"] == bare["client_id"] and "note" not in shown
