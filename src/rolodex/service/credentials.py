"""Provider credentials are encrypted at rest with a key from configuration."""

from __future__ import annotations

import os
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from rolodex.config import Settings


class CredentialBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialBox:
        if settings.secret_key:
            return cls(settings.secret_key.encode())
        return cls(_key_from_file(settings.secret_key_file))

    def seal(self, connection: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(connection))

    def open(self, sealed: bytes) -> dict[str, Any]:
        try:
            value: dict[str, Any] = orjson.loads(self._fernet.decrypt(sealed))
        except InvalidToken:
            raise ValueError(
                "cannot decrypt provider credentials: the secret key is not the one they "
                "were sealed with (ROLODEX_SECRET_KEY / ROLODEX_SECRET_KEY_FILE)"
            ) from None
        return value


def _key_from_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as handle:
            return handle.read().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
