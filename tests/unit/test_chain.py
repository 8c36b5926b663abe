"""The generic hash chain, and the two chains built on it keeping their stored format."""

from __future__ import annotations

import hashlib

import pytest

from postfix_archiver import chain
from postfix_archiver.chain import GENESIS, Link, check_links, event_hash, link_hash


def chained(entries: list[dict[str, object]]) -> list[Link]:
    links, prev = [], GENESIS
    for number, entry in enumerate(entries, 1):
        digest = link_hash(prev, entry)
        links.append(Link(number, prev, digest, entry))
        prev = digest
    return links


def test_a_link_hashes_the_canonical_json_of_the_entry_with_the_previous_hash() -> None:
    entry = {"b": [1, "\u00e9"], "a": {"y": None, "x": True}}
    expected = hashlib.sha256(
        b'{"a":{"x":true,"y":null},"b":[1,"\\u00e9"],"prev":"' + GENESIS.encode() + b'"}'
    ).hexdigest()
    assert link_hash(GENESIS, entry) == expected
    assert link_hash("1" * 64, entry) != expected
    with pytest.raises(ValueError, match="'prev'"):
        link_hash(GENESIS, {"prev": "x"})


def test_archive_events_hash_as_before() -> None:
    # computed by the event hash of the previous release: stored catalogs still verify
    envelope = {
        "sender": "a@example.com",
        "recipients": ["b@example.org", "c\u00e9@example.org"],
        "queue_id": "4ABC",
    }
    assert event_hash(GENESIS, 1, "ab" * 32, 1234, envelope) == (
        "eb55424ec1c2a2791ad4e58d72e2bcb97a1b4f6d8d3ea7732d4bdf4c7a6441b0"
    )


def test_an_intact_chain_checks_out() -> None:
    links = chained([{"n": n} for n in range(5)])
    assert check_links(links) == chain.ChainCheck(True, 5, links[-1].hash)
    assert check_links([]) == chain.ChainCheck(True, 0, GENESIS)


def test_the_first_break_is_named() -> None:
    links = chained([{"n": n} for n in range(4)])
    gap = [links[0], links[2], links[3]]
    assert check_links(gap, "event") == chain.ChainCheck(
        False, 1, links[0].hash, "event 2 is missing (next is 3)"
    )
    edited = [links[0], Link(2, links[1].prev_hash, links[1].hash, {"n": 9}), *links[2:]]
    assert check_links(edited).problem == "entry 2 was altered"
    relinked = [links[0], links[1], Link(3, GENESIS, links[2].hash, links[2].entry)]
    assert check_links(relinked) == chain.ChainCheck(
        False, 2, links[1].hash, f"entry 3 does not link to {links[1].hash}"
    )
