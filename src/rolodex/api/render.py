"""Response bodies from stored documents, without re-encoding them."""

from __future__ import annotations

from collections.abc import Sequence

from rolodex.domain.documents import absolute

__all__ = ["absolute", "array"]


def array(docs: Sequence[bytes], base: bytes) -> bytes:
    return absolute(b"[" + b",".join(docs) + b"]", base)
