"""Hash chains: each link's hash covers the one before, so history cannot be edited quietly.

``link_hash(prev, entry) = SHA-256(canonical JSON of entry with prev under "prev")``: the
entry is any JSON object (the backend does not matter, only the values), keys sorted, no
spaces, ASCII only. The first link's ``prev`` is ``GENESIS``. Two chains use it:

- the archive's events (``event_hash``): each archived arrival covers the previous event,
  its message's SHA-256 and size and its canonical envelope. Changing a stored byte breaks
  the message's SHA-256; editing, removing or reordering a catalog row breaks the hash of its
  event or the link of the next one (``archive.verify`` recomputes it all);
- the web audit log (``postfix_archiver.accounts``): each entry covers the previous one.

``check_links`` walks a chain from its first link and names the first break. The head hash
(printed by ``verify`` and ``audit --verify``) can be written down elsewhere: a later head
that does not descend from it shows the history was rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS = "0" * 64


def canonical_json(value: Mapping[str, object]) -> bytes:
    """The one byte form of ``value`` that is hashed: sorted keys, no spaces, ASCII only."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def link_hash(prev_hash: str, entry: Mapping[str, object]) -> str:
    """The hash of the link holding ``entry`` after the link whose hash is ``prev_hash``."""
    if "prev" in entry:
        # it would be overwritten, and a hash that silently ignores a field covers nothing
        raise ValueError("a chained entry may not have a field named 'prev'")
    return hashlib.sha256(canonical_json({"prev": prev_hash, **entry})).hexdigest()


def event_hash(
    prev_hash: str, seq: int, message_sha256: str, size: int, envelope: Mapping[str, object]
) -> str:
    """The hash of the archive's chain event ``seq``: one archived arrival."""
    return link_hash(
        prev_hash, {"seq": seq, "sha256": message_sha256, "size": size, "envelope": envelope}
    )


@dataclass(frozen=True, slots=True)
class Link:
    """One stored link: its number (1, 2, ...), the hashes as stored, the entry it covers."""

    number: int
    prev_hash: str
    hash: str
    entry: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """``links`` checked before the first break (all of them when ``ok``); ``head`` is the
    hash of the last good one (``GENESIS`` for none)."""

    ok: bool
    links: int
    head: str
    problem: str | None = None


def check_links(links: Iterable[Link], noun: str = "entry") -> ChainCheck:
    """Recompute a chain from its first link, numbered from 1 without gaps; the first
    missing, unlinked or altered link is the problem (``noun`` names a link in it)."""
    prev = GENESIS
    expected = 1
    count = 0
    for link in links:
        if link.number != expected:
            problem = f"{noun} {expected} is missing (next is {link.number})"
            return ChainCheck(False, count, prev, problem)
        if link.prev_hash != prev:
            return ChainCheck(False, count, prev, f"{noun} {link.number} does not link to {prev}")
        if link_hash(prev, link.entry) != link.hash:
            return ChainCheck(False, count, prev, f"{noun} {link.number} was altered")
        prev = link.hash
        expected += 1
        count += 1
    return ChainCheck(True, count, prev)
