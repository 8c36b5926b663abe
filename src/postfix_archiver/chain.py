"""The integrity chain: each archived arrival is an event whose hash covers the previous one.

``hash(n) = SHA-256(hash(n-1) | seq | message SHA-256 | size | canonical envelope)``. Changing
a stored byte breaks the message's SHA-256; editing, removing or reordering a catalog row
breaks the hash of its event or the link of the next one. ``verify`` recomputes all of it from
the catalog rows and the blobs. The head hash (printed by ``verify``) can be written down
elsewhere: a later head that does not descend from it shows the history was rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

GENESIS = "0" * 64


def event_hash(
    prev_hash: str, seq: int, message_sha256: str, size: int, envelope: Mapping[str, object]
) -> str:
    body = json.dumps(
        {
            "prev": prev_hash,
            "seq": seq,
            "sha256": message_sha256,
            "size": size,
            "envelope": envelope,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()
