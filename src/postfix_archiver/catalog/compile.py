"""Compiling the search AST to a SQL condition on ``messages m``, with bound parameters only.

The SQL shape is shared by the backends; what differs (the full-text match, the parameter
marker, case-insensitive LIKE) comes from a small ``Dialect``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard

from ..message import normalize_message_id
from ..search import (
    All,
    And,
    DateBound,
    Field,
    HasAttachment,
    IdIs,
    Node,
    Not,
    Or,
    RetainedUntil,
    SizeBound,
    Text,
)

# fields searched in the full-text index (each backend maps them to its columns): the
# subject, and the attachments (their file names, the names inside them, their text)
FULLTEXT_FIELDS = ("subject", "attachment")

# which address kinds each address field looks at; "sender"/"rcpt" are the envelope's
ADDRESS_KINDS: dict[str, tuple[str, ...]] = {
    "from": ("from", "sender"),
    "to": ("to", "cc", "rcpt"),
    "cc": ("cc",),
}
VISIBLE_KINDS = ("from", "to", "cc", "sender", "rcpt")


class Dialect(Protocol):
    param: str  # "?" or "%s"
    like: str  # case-insensitive LIKE operator

    def fulltext(
        self,
        terms: Sequence[Text | Field],
        params: list[object],
        *,
        correlated: bool = False,
        excluded: Sequence[Text | Field] = (),
    ) -> str:
        """A condition on ``m.id`` matching all ``terms`` (free text, subject: or attachment:)
        and none of ``excluded`` (only given beside at least one of ``terms``: the index
        subtracts them from what it found); ``correlated``: looked up for this ``m.id``
        only, not over the whole index. Each
        term's value goes through ``bigrams.query_form``, as the index went through
        ``bigrams.index_form`` (CJK runs in pairs), so every backend finds the same."""
        ...


@dataclass
class Compiled:
    where: str
    params: list[object] = field(default_factory=list)
    # the whole query is one full-text lookup (``where`` is the dialect's ``fulltext`` with
    # ``params`` its own): what it finds can be counted in the index alone
    index_only: bool = False


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(value: str) -> str:
    return like_escape(value).replace("*", "%")


class Compiler:
    """Compiles one caller's queries. ``own``: the caller's addresses when they may see only
    their own mail; envelope recipients other than these are hidden from them (Bcc), so
    ``to:`` must not match them either, or a search would tell who was Bcc'd.

    ``correlated``: for a condition checked on a few known messages (a hold's query on a
    commit's new arrivals), each address, attachment and full-text test looks at that
    message's rows only (``EXISTS ... WHERE message = m.id``), never the whole archive's as
    ``m.id IN (SELECT ...)`` does, which suits a search over everything."""

    def __init__(
        self, dialect: Dialect, own: Sequence[str] | None = None, *, correlated: bool = False
    ) -> None:
        self.d = dialect
        self._own = [a.lower() for a in own] if own is not None else None
        self._correlated = correlated

    def _rows_of(self, table: str, cond: str) -> str:
        """``m`` has a row in ``table`` (addresses, attachments) where ``cond`` holds."""
        if self._correlated:
            return f"EXISTS (SELECT 1 FROM {table} WHERE message = m.id AND {cond})"
        return f"m.id IN (SELECT message FROM {table} WHERE {cond})"

    def _fulltext(self, terms: Sequence[Text | Field], params: list[object]) -> str:
        return self.d.fulltext(terms, params, correlated=self._correlated)

    def compile(self, node: Node) -> Compiled:
        params: list[object] = []
        where = self._node(node, params)
        return Compiled(where, params, index_only=not self._correlated and _index_only(node))

    def visible(self, addresses: Sequence[str], params: list[object]) -> str:
        p = self.d.param
        marks = ", ".join(p for _ in addresses) or "NULL"
        kinds = ", ".join(f"'{k}'" for k in VISIBLE_KINDS)
        params.extend(a.lower() for a in addresses)
        return (
            f"m.id IN (SELECT message FROM addresses WHERE kind IN ({kinds}) "
            f"AND address IN ({marks}))"
        )

    def _node(self, node: Node, params: list[object]) -> str:
        p = self.d.param
        match node:
            case All():
                return "1=1"
            case Text() | Field(name="subject" | "attachment"):
                return self._fulltext([node], params)
            case Field(name="from" | "to" | "cc" as name, value=value):
                return self._address(ADDRESS_KINDS[name], value, params)
            case Field(name="filename", value=value):
                params.append(glob_to_like(value))
                return self._rows_of("attachments", f"filename {self.d.like} {p} ESCAPE '\\'")
            case Field(name="msgid", value=value):
                if "*" in value:
                    params.append(glob_to_like(normalize_message_id(value)))
                    return f"m.message_id {self.d.like} {p} ESCAPE '\\'"
                params.append(normalize_message_id(value))
                return f"m.message_id = {p}"
            case Field(name=name):
                raise ValueError(f"unknown field {name!r}")
            case DateBound(name="after", value=value):
                params.append(int(value.timestamp()))
                return f"m.date >= {p}"
            case DateBound(name="before", value=value):
                params.append(int(value.timestamp()))
                return f"m.date < {p}"
            case SizeBound(name="larger", value=value):
                params.append(value)
                return f"m.size > {p}"
            case SizeBound(name="smaller", value=value):
                params.append(value)
                return f"m.size < {p}"
            case HasAttachment():
                return "m.attachment_count > 0"
            # NULL is forever: each condition says what it does with it, so that NOT of it is
            # the complement (SQL's NOT of NULL would drop the message from both)
            case RetainedUntil(name="forever"):
                return "m.retain_until IS NULL"
            case RetainedUntil(name="before", seconds=seconds):
                params.append(seconds)
                return f"(m.retain_until IS NOT NULL AND m.retain_until < {p})"
            case RetainedUntil(name="after", seconds=seconds):
                params.append(seconds)
                return f"(m.retain_until IS NULL OR m.retain_until >= {p})"
            case IdIs(value=value):
                params.append(value)
                return f"m.id = {p}"
            case Not(child=child):
                return f"NOT ({self._node(child, params)})"
            case And(children=children):
                return self._and(children, params)
            case Or(children=children):
                return "(" + " OR ".join(self._node(c, params) for c in children) + ")"
        raise ValueError(f"cannot compile {node!r}")

    def _and(self, children: Sequence[Node], params: list[object]) -> str:
        # all full-text terms of a conjunction go to the index as one match: one lookup; so
        # do its negated terms ("budget -draft"), which the index subtracts from that match
        # instead of a second lookup of every message with the excluded word
        text_terms: list[Text | Field] = [c for c in children if _is_fulltext(c)]
        excluded: list[Text | Field] = []
        if text_terms:
            excluded = [c.child for c in children if isinstance(c, Not) and _is_fulltext(c.child)]
        parts: list[str] = []
        if text_terms:
            # beside an exact address (a few hundred messages at most), the index is asked
            # about those messages only: "from:bob@x invoice" ran through every message
            # with "invoice" (38,000 of 100,000, attachment text included) to keep 19
            correlated = self._correlated or any(_exact_address(c) for c in children)
            parts.append(
                self.d.fulltext(
                    text_terms,
                    params,
                    correlated=correlated,
                    excluded=excluded,
                )
            )
        parts.extend(
            self._node(c, params)
            for c in children
            if c not in text_terms and not (isinstance(c, Not) and c.child in excluded)
        )
        return "(" + " AND ".join(parts) + ")" if len(parts) > 1 else parts[0]

    def _address(self, kinds: tuple[str, ...], value: str, params: list[object]) -> str:
        p = self.d.param
        kind_list = ", ".join(f"'{k}'" for k in kinds)
        if "rcpt" in kinds and self._own is not None:
            header_kinds = ", ".join(f"'{k}'" for k in kinds if k != "rcpt")
            marks = ", ".join(p for _ in self._own) or "NULL"
            params.extend(self._own)
            kind_sql = f"(kind IN ({header_kinds}) OR (kind = 'rcpt' AND address IN ({marks})))"
        else:
            kind_sql = f"kind IN ({kind_list})"
        v = value.lower()
        if "*" in v:
            cond = f"address {self.d.like} {p} ESCAPE '\\'"
            params.append(glob_to_like(v))
        elif v.startswith("@"):
            cond = f"address {self.d.like} {p} ESCAPE '\\'"
            params.append("%" + like_escape(v))
        elif "@" in v:
            cond = f"address = {p}"
            params.append(v)
        else:
            cond = f"(address {self.d.like} {p} ESCAPE '\\' OR name {self.d.like} {p} ESCAPE '\\')"
            params.extend(["%" + like_escape(v) + "%"] * 2)
        return self._rows_of("addresses", f"{kind_sql} AND {cond}")


def _is_fulltext(node: Node) -> TypeGuard[Text | Field]:
    return isinstance(node, Text) or (isinstance(node, Field) and node.name in FULLTEXT_FIELDS)


def _index_only(node: Node) -> bool:
    """Whether ``node`` compiles to one full-text lookup and nothing else."""
    if _is_fulltext(node):
        return True
    return (
        isinstance(node, And)
        and any(_is_fulltext(c) for c in node.children)
        and all(
            _is_fulltext(c) or (isinstance(c, Not) and _is_fulltext(c.child)) for c in node.children
        )
    )


def _exact_address(node: Node) -> bool:
    """``from:``, ``to:`` or ``cc:`` with a whole address: an indexed lookup, few rows."""
    return (
        isinstance(node, Field)
        and node.name in ADDRESS_KINDS
        and "@" in node.value
        and "*" not in node.value
        and not node.value.startswith("@")
    )
