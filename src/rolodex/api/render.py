"""Response bodies: from stored documents without re-encoding them, and the routes' JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi.responses import Response

from rolodex.domain.documents import absolute

__all__ = ["absolute", "array", "json_of"]


def array(docs: Sequence[bytes], base: bytes) -> bytes:
    return absolute(b"[" + b",".join(docs) + b"]", base)


def json_of(value: Any) -> Response:
    """A route's answer: ``value`` as JSON (orjson: the routes' objects are plain data)."""
    return Response(orjson.dumps(value), media_type="application/json")
