"""Identifiers and secrets: random, never sequential."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25


def new_id() -> str:
    """A random lowercase base36 id of 25 characters, the shape of v2 ids (128 random bits;
    36**25 > 2**128, so every value fits)."""
    number = int.from_bytes(secrets.token_bytes(16))
    digits = []
    while number:
        number, digit = divmod(number, 36)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(ID_LENGTH, "0")


def looks_like_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c in _ALPHABET for c in value)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored only as hashes; a 256-bit random token needs no salt or stretching."""
    return hashlib.sha256(token.encode()).hexdigest()
