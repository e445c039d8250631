"""Ids and tokens: random, of the v2 shapes, and safe to pass on a command line."""

from __future__ import annotations

import secrets

import pytest

from rolodex.domain import ids
from rolodex.domain.ids import ID_LENGTH, looks_like_id, new_id, new_token


def test_ids_are_base36_of_the_v2_length() -> None:
    made = {new_id() for _ in range(1000)}
    assert len(made) == 1000
    assert all(len(i) == ID_LENGTH and looks_like_id(i) for i in made)


def test_a_token_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # A command line reads "-TM7..." as an option: `rolodex accounts revoke -TM7...` failed.
    drawn = iter(["-TM7OfoxxeE6mNlyi_2S5nMcCvPedZXbe3jufA_8q9I", "TM7OfoxxeE6mN"])
    monkeypatch.setattr(ids.secrets, "token_urlsafe", lambda n: next(drawn))
    assert new_token() == "TM7OfoxxeE6mN"


def test_tokens_carry_256_random_bits() -> None:
    token = new_token()
    assert len(token) == len(secrets.token_urlsafe(32)) and not token.startswith("-")
