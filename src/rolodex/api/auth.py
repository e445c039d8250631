"""Access tokens arrive as the HTTP Basic user name (empty password) or as a Bearer token."""

from __future__ import annotations

import base64
import binascii


def token_from_authorization(header: str | None) -> str | None:
    if not header:
        return None
    parts = header.split()
    if len(parts) != 2:
        return None
    scheme, credential = parts
    scheme = scheme.lower()
    if scheme == "bearer":
        return credential
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None
