"""Conversations of mail archived before they were recorded (catalog migration 6).

New arrivals get theirs at ingest (``NewArrival.thread``). Older messages have none yet:
the indexer thread, once the index queue is empty, reads their headers from their blobs a
batch at a time and records them (``backfill_threads``); ``postfix-archiver index`` does
the same. A message page meanwhile shows no conversation for such a message.
"""

from __future__ import annotations

import logging
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING

from ..conversation import thread_key
from ..errors import StoreError
from ..message import decode_header_value

if TYPE_CHECKING:
    from .service import Archive

log = logging.getLogger("postfix_archiver.indexer")

BATCH = 200


def backfill_threads(archive: Archive, batch: int = BATCH) -> int:
    """Records the conversation of up to ``batch`` messages that have none recorded;
    returns how many (0: none left)."""
    todo = archive.catalog.unthreaded(batch)
    found: list[tuple[int, str, str]] = []
    for message, sha in todo:
        try:
            raw = archive.read_blob(sha)
        except StoreError as exc:
            # verify reports the damage; recorded as alone, so the backfill goes on
            log.error("message %d unreadable (%s): no conversation recorded", message, exc)
            found.append((message, "", ""))
            continue
        head = BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True)
        # decoded as parse_message decodes them at ingest: the same key either way
        key = thread_key(
            decode_header_value(head.get("Message-ID")),
            decode_header_value(head.get("In-Reply-To")),
            decode_header_value(head.get("References")),
        )
        found.append((message, key.key, key.parent))
    if found:
        archive.catalog.set_threads(found)
    return len(found)
