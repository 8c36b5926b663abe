"""Which conversation a message belongs to, from its Message-ID, In-Reply-To and References.

A conversation is named by its first message's Message-ID: References lists the thread from
its root (RFC 5322 3.6.4; clients that shorten it keep the first), so a reply names the root
first, and the root names itself. A reply with In-Reply-To but no References (some clients)
is given its parent's conversation when the parent is archived (the catalog looks it up),
else the parent's Message-ID. A message with none of the three is a conversation of its own
(the empty key: never grouped).

The subject is not used, not even as a fallback: "Re: Invoice" or "Hello" would join the
mail of strangers who happened to write the same words; a conversation shown on a message
page must be that conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .envelope import clean_text
from .message import ParsedMessage, normalize_message_id

# a msg-id in angle brackets; anything between them but whitespace and brackets
_MSG_ID = re.compile(r"<([^<>\s]{1,990})>")
MAX_KEY = 998  # a header line's length: a longer "id" is no Message-ID


@dataclass(frozen=True, slots=True)
class ThreadKey:
    key: str  # the conversation's root Message-ID ("" : a conversation of its own)
    parent: str = ""  # In-Reply-To when there was no References: the catalog may know better


def message_ids(value: str | None) -> list[str]:
    """The msg-ids in a References or In-Reply-To header, in order."""
    return list(_MSG_ID.findall(value or ""))


def thread_key(message_id: str, in_reply_to: str | None, references: str | None) -> ThreadKey:
    """The conversation key from the three headers' decoded values (as ``ParsedMessage``
    has them); 8-bit bytes left escaped in them are read as ``clean_text`` reads them, so a
    key is always storable text."""
    refs = message_ids(references)
    if refs:
        return ThreadKey(clean_text(refs[0]))
    parents = message_ids(in_reply_to)
    if parents:
        parent = clean_text(parents[0])
        return ThreadKey(parent, parent=parent)
    own = normalize_message_id(message_id)
    ok = 0 < len(own) <= MAX_KEY and not any(c.isspace() for c in own)
    return ThreadKey(clean_text(own) if ok else "")


def thread_of(parsed: ParsedMessage) -> ThreadKey:
    return thread_key(parsed.message_id, parsed.header("In-Reply-To"), parsed.header("References"))
