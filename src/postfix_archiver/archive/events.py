"""The archive's chain events, computed here so that every catalog backend only stores them.

An event records one arrival: ``hash = SHA-256(canonical form)``, where the canonical form
is the JSON of the previous event's hash, the event's sequence number, the message's SHA-256
and size, and the arrival's canonical envelope (``Envelope.canonical``), with sorted keys,
no spaces and ASCII only. The format is fixed: archives written before must verify the same.
The backend hands over the last event it holds (inside its write transaction, so another
process writing the same catalog cannot fork the chain) and stores what ``seal`` returns.

A removal (purge or erasure) appends a tombstone per message: ``chain.link_hash`` of the
previous hash and ``{"kind": "tombstone", "seq", "message", "sha256", "size", "envelopes":
[SHA-256 of each removed envelope's canonical JSON], "arrivals": [{"seq", "hash"} of the
message's arrival events], "why", "reason", "who", "when"}``. Only tombstones have ``kind``:
an arrival's bytes are as they always were. The arrival events stay (their links hold the
chain together); the tombstone names them, so verify knows why their rows are gone. The
envelopes are kept as hashes only: an erasure must not keep the addresses.
"""

from __future__ import annotations

import hashlib
import json

from ..catalog.records import ChainEvent, NewArrival, Removed
from ..chain import GENESIS, canonical_json, link_hash
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


TOMBSTONE = "tombstone"


def envelope_hash(envelope: Envelope) -> str:
    """What a tombstone keeps of a removed envelope: the SHA-256 of its canonical JSON (which
    someone holding the envelope can confirm, and nobody can read back)."""
    return hashlib.sha256(canonical_json(envelope.canonical())).hexdigest()


def tombstone_content(seq: int, removed: Removed) -> dict[str, object]:
    """The entry a tombstone's hash covers (with ``prev``, as every link)."""
    r = removed.removal
    return {
        "kind": TOMBSTONE,
        "seq": seq,
        "message": r.message,
        "sha256": removed.sha256,
        "size": removed.size,
        "envelopes": [envelope_hash(e) for e in removed.envelopes],
        "arrivals": [{"seq": a.seq, "hash": a.hash} for a in removed.arrivals],
        "why": r.why,
        "reason": r.reason,
        "who": r.who,
        "when": r.when.isoformat(timespec="seconds"),
    }


def seal_tombstone(last: ChainEvent, removed: Removed) -> tuple[ChainEvent, dict[str, object]]:
    """The tombstone recording ``removed`` after ``last``, and the content it covers."""
    seq = last.seq + 1
    content = tombstone_content(seq, removed)
    return ChainEvent(seq, last.hash, link_hash(last.hash, content)), content
