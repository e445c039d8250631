"""Provider credentials (and the application's client secret) are encrypted at rest with a
key from configuration; a key that is not the one they were sealed with is refused at start,
not found out later by a sync."""

from __future__ import annotations

import os
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from rolodex.config import Settings
from rolodex.store import Store

# A value sealed with the key in the database's settings: the key is checked against it at
# start (and against a stored connection, in a database older than this check).
KEY_CHECK = "credential_key_check"
# How every Fernet token starts (its version byte, base64): anything else is no sample.
_FERNET = b"gAAAAA"
# The stored client secret (settings ``client_secret``): this prefix, then the secret sealed
# with the credential key.
SEALED_CLIENT_SECRET = "sealed:"


class KeyUnusable(ValueError):
    """The configured key cannot be used: an operator's mistake, said at start."""


class KeyMismatch(KeyUnusable):
    """The configured key cannot open what this database holds."""


class CredentialBox:
    def __init__(self, key: bytes, source: str = "ROLODEX_SECRET_KEY") -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:  # not base64, or not 32 bytes: a placeholder, a truncated paste
            raise KeyMismatch(
                f"{source} is not a credential key (a Fernet key: 32 url-safe base64-encoded "
                "bytes); set ROLODEX_SECRET_KEY or ROLODEX_SECRET_KEY_FILE to the key this "
                "database's credentials were sealed with, or for a new one make a key with "
                "python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
        self.source = source

    @classmethod
    def from_settings(cls, settings: Settings) -> CredentialBox:
        if settings.secret_key:
            return cls(settings.secret_key.encode())
        path = settings.key_file
        return cls(_key_from_file(path), f"the key file {path}")

    def seal(self, connection: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(connection))

    def open(self, sealed: bytes) -> dict[str, Any]:
        try:
            value: dict[str, Any] = orjson.loads(self._fernet.decrypt(sealed))
        except InvalidToken:
            raise KeyMismatch(self.mismatch()) from None
        return value

    def mismatch(self) -> str:
        return (
            f"cannot decrypt stored credentials: the credential key ({self.source}) is not the "
            "key they were sealed with; configure the original key with ROLODEX_SECRET_KEY "
            "or ROLODEX_SECRET_KEY_FILE"
        )


def check_key(store: Store, box: CredentialBox) -> None:
    """Raise KeyMismatch unless ``box`` opens what the database holds; a database seen for
    the first time remembers a value sealed with this key."""
    with store.write() as tx:
        check = tx.settings.get(KEY_CHECK)
        if check is None:
            # Whatever was sealed before the first check: the client secret (`rolodex app
            # show` seals it before any server ran), else a connected account's settings.
            stored_secret = tx.settings.get("client_secret") or ""
            secrets = (
                [stored_secret[len(SEALED_CLIENT_SECRET) :].encode()]
                if stored_secret.startswith(SEALED_CLIENT_SECRET)
                else []
            )
            connections = (tx.accounts.connection(account.id) for account in tx.accounts.all())
            sample = next(
                (
                    sealed
                    for sealed in (*secrets, *connections)
                    if sealed is not None and sealed.startswith(_FERNET)
                ),
                None,
            )
            if sample is not None:
                box.open(sample)
            tx.settings.put(KEY_CHECK, box.seal({"check": "rolodex"}).decode())
            return
    box.open(check.encode())


def _key_from_file(path: str) -> bytes:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a directory, no permission...
        raise KeyUnusable(
            f"the key file {path} cannot be read ({exc.strerror}): point "
            "ROLODEX_SECRET_KEY_FILE at a file, or set ROLODEX_SECRET_KEY"
        ) from None
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    # Written aside, then linked in: a process starting at the same moment either wins
    # the link or reads the whole key of the one that did, never a second key.
    partial = f"{path}.{os.getpid()}.new"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(partial)
    return _read_key_file(path)


def _read_key_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read().strip()
