"""Identifiers and secrets: random, never sequential."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25
# Two base36 digits at a time: a first sync makes an id per contact, and twelve divisions
# instead of twenty-five take an id from 3.0 to 2.1 us.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def new_id() -> str:
    """A random lowercase base36 id of 25 characters, the shape of v2 ids (128 random bits;
    36**25 > 2**128, so every value fits: twelve pairs of digits and a leading one)."""
    number = int.from_bytes(secrets.token_bytes(16))
    pairs = []
    for _ in range(12):
        number, pair = divmod(number, 1296)
        pairs.append(_PAIRS[pair])
    pairs.append(_ALPHABET[number])
    return "".join(reversed(pairs))


def looks_like_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c in _ALPHABET for c in value)


def new_token() -> str:
    """256 random bits, URL-safe; never starting with "-", which a command line reads as an
    option (``rolodex accounts revoke -TM7...`` failed for one token in 64)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def hash_token(token: str) -> str:
    """Tokens are stored only as hashes; a 256-bit random token needs no salt or stretching."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(given: str, known: str) -> bool:
    """A constant-time comparison that takes any text a client sends: ``hmac.compare_digest``
    refuses str with non-ASCII characters (a TypeError, so a 500), and a JSON body can hold
    lone surrogates that plain ``encode()`` refuses too."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), known.encode("utf-8", "surrogatepass")
    )
