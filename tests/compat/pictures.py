"""Real image bytes for the picture tests, built here so no binary file is checked in."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG. Its signature starts with 0x89 and its compressed data holds bytes
    that are not valid UTF-8, so any client that decodes the body as text would mangle it."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 61 % 256, y * 97 % 256, 0xC8)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def tagged_png(tag: str) -> bytes:
    """A valid PNG told apart from others by ``tag``, kept in a tEXt chunk."""
    plain = png(2, 2)
    text = _chunk(b"tEXt", b"Comment\x00" + tag.encode())
    return plain[:-12] + text + plain[-12:]  # before IEND


# GIF89a whose every byte is ASCII (< 0x80), so it survives the Node SDK's text decoding of
# picture bodies: a 1x1 image with a 2-entry colour table and no bytes >= 0x80. The 7th
# field byte (0x00) means "no global colour table"; the image carries a local one.
ASCII_GIF = (
    b"GIF89a"
    + b"\x01\x00\x01\x00"  # logical screen 1x1
    + b"\x00\x00\x00"  # no global colour table, background 0, aspect 0
    + b","  # image descriptor
    + b"\x00\x00\x00\x00\x01\x00\x01\x00"  # at 0,0, 1x1
    + b"\x00"  # no local colour table
    + b"\x02\x02\x44\x01\x00"  # LZW min code size 2; one sub-block of 2 bytes; terminator
    + b";"  # trailer
)
