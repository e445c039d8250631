"""The OAuth helpers both providers' sign-ins share (rolodex.connectors.oauth)."""

from __future__ import annotations

import base64

import orjson
import pytest

from rolodex.connectors.oauth import id_token_claims


def _jwt(claims: object) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.sig"


def test_the_claims_of_an_id_token_for_this_client() -> None:
    token = {"id_token": _jwt({"aud": "me", "email": "ada@example.com"})}
    assert id_token_claims(token, "me") == {"aud": "me", "email": "ada@example.com"}
    listed = {"id_token": _jwt({"aud": ["other", "me"], "email": "ada@example.com"})}
    assert id_token_claims(listed, "me") is not None


@pytest.mark.parametrize(
    "token",
    [
        {},
        {"id_token": 5},
        {"id_token": "not a jwt"},
        {"id_token": "a.%%%.c"},
        {"id_token": "a." + base64.urlsafe_b64encode(b"[1]").decode() + ".c"},
        {"id_token": _jwt({"aud": "someone else", "email": "eve@example.com"})},
        {"id_token": _jwt({"email": "eve@example.com"})},
    ],
)
def test_an_id_token_that_is_missing_broken_or_for_another_client_is_none(
    token: dict[str, object],
) -> None:
    assert id_token_claims(token, "me") is None
