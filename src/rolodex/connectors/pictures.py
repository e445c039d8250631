"""Pictures in a format the provider takes.

Rolodex takes JPEG, PNG, GIF and WebP pictures (checked by decoding them), but the
providers take fewer: Google's ``people.updateContactPhoto`` "All requests must have a
valid photo format: JPEG or PNG" (UpdateContactPhotoRequest), and Graph's photo update
wants ``Content-Type: image/jpeg. Required.`` (DOC profilephoto-update, "Request
headers"). A picture in another format is converted before it is sent, rather than
refused there after it was accepted here.
"""

from __future__ import annotations

import io

from PIL import Image

from rolodex.connectors.base import PermanentError

JPEG = "image/jpeg"
PNG = "image/png"
_PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG"}


def sniffed(data: bytes) -> str | None:
    """JPEG or PNG by their signatures (the only two any provider here takes as is)."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    return None


def in_format(
    data: bytes, content_type: str | None, accepted: frozenset[str], target: str
) -> tuple[bytes, str]:
    """``data`` and its type if the provider takes it (``accepted``), else the picture
    converted to ``target`` (the first frame of an animation; transparency on white for
    JPEG)."""
    kind = sniffed(data) or content_type
    if kind in accepted:
        return data, str(kind)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if target == JPEG:
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                converted = flat
            else:
                converted = image.convert("RGBA")
            out = io.BytesIO()
            converted.save(out, format=_PIL_FORMAT[target], quality=90)
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError... for broken data
        raise PermanentError(
            f"the contact's picture ({content_type or 'unknown type'}) could not be "
            f"converted to {target}, the format the provider takes",
            400,
        ) from None
    return out.getvalue(), target
