"""The archive's chain events, computed here so that every catalog backend only stores them.

An event records one arrival: ``hash = SHA-256(canonical form)``, where the canonical form
is the JSON of the previous event's hash, the event's sequence number, the message's SHA-256
and size, and the arrival's canonical envelope (``Envelope.canonical``), with sorted keys,
no spaces and ASCII only. The format is fixed: archives written before must verify the same.
The backend hands over the last event it holds (inside its write transaction, so another
process writing the same catalog cannot fork the chain) and stores what ``seal`` returns.
"""

from __future__ import annotations

import hashlib
import json

from ..catalog.records import ChainEvent, NewArrival
from ..chain import GENESIS
from ..envelope import Envelope


def canonical_event(
    prev_hash: str, seq: int, message_sha256: str, size: int, envelope: Envelope
) -> bytes:
    """The bytes an event's hash covers."""
    body = json.dumps(
        {
            "prev": prev_hash,
            "seq": seq,
            "sha256": message_sha256,
            "size": size,
            "envelope": envelope.canonical(),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return body.encode("ascii")


def event_hash(prev_hash: str, seq: int, message_sha256: str, size: int, envelope: Envelope) -> str:
    return hashlib.sha256(
        canonical_event(prev_hash, seq, message_sha256, size, envelope)
    ).hexdigest()


def seal(last: ChainEvent | None, arrival: NewArrival) -> ChainEvent:
    """The event that records ``arrival`` after ``last`` (``None``: the chain is empty)."""
    seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS)
    return ChainEvent(
        seq, prev, event_hash(prev, seq, arrival.sha256, arrival.size, arrival.envelope)
    )
