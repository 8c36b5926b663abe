"""A pack: the small blobs of one batch as ONE S3 object, with its index at the end.

An object per blob costs a PUT per blob (and a LIST entry, and a lifecycle transition): for
mail, whose blobs are mostly a few kilobytes, the requests cost more than the bytes. A batch's
small blobs are therefore written together::

    blob bytes ... | index (JSON) | index length (8 bytes, big-endian) | b"PFAPACK1"

The index lists ``[key, offset, length]`` for each blob and the retention date the pack is
locked until; a reader reads a blob with one ranged GET, and learns a pack's contents with one
ranged GET of its end. Packs are named ``<time in ns, 20 digits>-<random>``, so they list in
the order written (give or take clock skew between hosts) and a later pack's copy of a key
wins.
"""

from __future__ import annotations

import json
import secrets
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..errors import StoreError

MAGIC = b"PFAPACK1"
_TRAILER = struct.Struct(">Q")
TRAILER_SIZE = _TRAILER.size + len(MAGIC)
# the first read of a pack's end: enough for the index of a usual batch
TAIL_READ = 64 * 1024


@dataclass(frozen=True)
class PackIndex:
    """What a pack holds: each key's ``(offset, length)``, and its lock date (None: none)."""

    entries: dict[str, tuple[int, int]]
    retain_until: datetime | None


def pack_name(now_ns: int | None = None) -> str:
    return f"{now_ns if now_ns is not None else time.time_ns():020d}-{secrets.token_hex(8)}"


def build(
    items: Sequence[tuple[str, bytes]], retain_until: datetime | None
) -> tuple[bytes, PackIndex]:
    """The pack object's bytes for ``items`` (a key given twice: its last value), and its
    index."""
    chunks: list[bytes] = []
    entries: dict[str, tuple[int, int]] = {}
    offset = 0
    for key, data in items:
        chunks.append(data)
        entries[key] = (offset, len(data))
        offset += len(data)
    index = json.dumps(
        {
            "v": 1,
            "retain_until": retain_until.isoformat() if retain_until else None,
            "blobs": [[k, o, n] for k, (o, n) in entries.items()],
        },
        separators=(",", ":"),
    ).encode()
    body = b"".join([*chunks, index, _TRAILER.pack(len(index)), MAGIC])
    return body, PackIndex(entries, retain_until)


def index_length(tail: bytes, name: str) -> int:
    """From the last bytes of a pack, its index's length (the index ends where they start)."""
    if len(tail) < TRAILER_SIZE or tail[-len(MAGIC) :] != MAGIC:
        raise StoreError(f"S3 pack {name} is damaged (no pack trailer)")
    (length,) = _TRAILER.unpack(tail[-TRAILER_SIZE : -len(MAGIC)])
    return int(length)


def parse_index(data: bytes, name: str) -> PackIndex:
    """The index from its JSON bytes (exactly the index, without the trailer)."""
    try:
        value = json.loads(data)
        entries = {str(k): (int(o), int(n)) for k, o, n in value["blobs"]}
        if any(o < 0 or n < 0 for o, n in entries.values()):
            raise ValueError("negative offset or length")
        until = value["retain_until"]
        return PackIndex(entries, datetime.fromisoformat(until) if until else None)
    except (ValueError, KeyError, TypeError, OverflowError) as exc:
        raise StoreError(f"S3 pack {name} is damaged (index unreadable: {exc})") from None
