"""Just enough of the zip format to tell zipped documents apart, in constant memory.

:func:`bot.ingest.filetypes.detect_kind` runs in the bot's own process for every
upload, before the sandbox: it must read two small members of a zip (``mimetype``,
``[Content_Types].xml``) without ``zipfile``, which builds an object per member (a
zip of a million empty members would cost the bot hundreds of MB) and would inflate
a member whole.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["KIND_MEMBERS", "DamagedZip", "member_head", "zip_directory"]

_EOCD = b"PK\x05\x06"
_CENTRAL_ENTRY = b"PK\x01\x02"
_LOCAL_ENTRY = b"PK\x03\x04"
_EOCD_WINDOW = 22 + 65535  # the end record plus the longest archive comment
# Members of the central directory read at most while looking for the two that name a
# zip's kind; real documents have tens to a few thousand.
_MAX_DIRECTORY_SCAN = 50_000
KIND_MEMBERS = (b"mimetype", b"[Content_Types].xml")


class DamagedZip(Exception):
    """The zip's directory or a member's header is not where it says."""


def zip_directory(data: bytes) -> dict[bytes, tuple[int, int, int, int]]:
    """The central directory entries of :data:`KIND_MEMBERS`, by name.

    Values are (flags, method, compressed size, local header offset).

    Raises:
        DamagedZip: no end-of-directory record, or a ZIP64 archive.
        struct.error: the directory is cut short.
    """
    eocd = data.rfind(_EOCD, max(0, len(data) - _EOCD_WINDOW))
    if eocd < 0 or len(data) < eocd + 22:
        raise DamagedZip
    entries, size, offset = struct.unpack("<HII", data[eocd + 10 : eocd + 20])
    if offset == 0xFFFFFFFF or size == 0xFFFFFFFF:
        raise DamagedZip  # ZIP64: over 4 GB, no document we read
    # Bytes before the zip (a self-extractor's stub) shift every offset equally.
    shift = max(0, eocd - size - offset)
    pos = offset + shift
    limit = _MAX_DIRECTORY_SCAN if entries == 0xFFFF else min(entries, _MAX_DIRECTORY_SCAN)
    found: dict[bytes, tuple[int, int, int, int]] = {}
    for _ in range(limit):
        if data[pos : pos + 4] != _CENTRAL_ENTRY:
            break
        flags, method = struct.unpack("<HH", data[pos + 8 : pos + 12])
        (compressed,) = struct.unpack("<I", data[pos + 20 : pos + 24])
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        (local,) = struct.unpack("<I", data[pos + 42 : pos + 46])
        name = data[pos + 46 : pos + 46 + name_len]
        if name in KIND_MEMBERS:
            found[name] = (flags, method, compressed, local + shift)
            if len(found) == len(KIND_MEMBERS):
                break
        pos += 46 + name_len + extra_len + comment_len
    return found


def member_head(data: bytes, entry: tuple[int, int, int, int], limit: int) -> bytes:
    """At most ``limit`` bytes of a member, inflated if need be (never the whole of it)."""
    _, method, compressed, local = entry
    if data[local : local + 4] != _LOCAL_ENTRY:
        raise DamagedZip
    name_len, extra_len = struct.unpack("<HH", data[local + 26 : local + 30])
    start = local + 30 + name_len + extra_len
    raw = data[start : start + compressed]
    if method == 0:
        return raw[:limit]
    if method == 8:
        try:
            return zlib.decompressobj(-15).decompress(raw, limit)
        except zlib.error:
            raise DamagedZip from None
    return b""  # a compression no document writer uses for these members
