"""The catalog's tables as a copy between backends sees them (``migrate``): names, columns,
keys, in an order that satisfies every foreign key.

Both backends hold the same tables with the same columns (``postgresql_schema`` follows
``sqlite``'s steps), so a row read from one is a row for the other, as it is: ids, chain
hashes, envelope keys and dates unchanged, nothing re-ingested. Left out: the full-text
index (SQLite's FTS5 and PostgreSQL's tsvector hold tokens, not text: the target builds its
own from the blobs) and the index queue (every copied message is queued there instead).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..errors import CatalogError
from .records import ChainEvent


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    # where a copy that ran before (interrupted, or before the source took more mail)
    # resumes reading its source: "key", from the highest first key column the target
    # holds (ids that only grow); "message", from there or from the lowest message that
    # got a new envelope since, whichever is lower (an older message's rows can grow);
    # "all", the whole table again (small ones, or keyed by a hash or text, whose order
    # the backends do not share). A row read again replaces the target's, so what changed
    # is carried. "key" and "message" only for an integer first key column.
    resume: Literal["key", "message", "all"] = "key"


# Parents before children (PostgreSQL and SQLite both check the REFERENCES). The chain's
# events first: a target holding a prefix of the source's chain is an earlier run of this
# copy (``migrate`` resumes it), one holding another chain is another archive.
TABLES: tuple[Table, ...] = (
    Table("events", ("seq", "message", "envelope", "prev_hash", "hash", "tombstone"), ("seq",)),
    Table(
        "messages",
        (
            "id",
            "sha256",
            "size",
            "stored_size",
            "date",
            "received",
            "message_id",
            "subject",
            "from_text",
            "to_text",
            "cc_text",
            "attachment_count",
            "defects",
            "retain_until",
            "indexed_with",
            "thread",
        ),
        ("id",),
    ),
    Table(
        "addresses",
        ("message", "kind", "address", "name"),
        ("message", "kind", "address"),
        resume="message",
    ),
    Table(
        "envelopes",
        (
            "id",
            "message",
            "env_key",
            "sender",
            "queue_id",
            "client_address",
            "client_name",
            "helo",
            "received",
            "source",
            "retention",
            "tags",
        ),
        ("id",),
    ),
    Table("envelope_recipients", ("envelope", "position", "address"), ("envelope", "position")),
    Table(
        "attachments",
        ("message", "position", "filename", "content_type", "size", "sha256"),
        ("message", "position"),
    ),
    Table("parts", ("sha256", "stored_size"), ("sha256",), resume="all"),
    Table("message_parts", ("message", "sha256"), ("message", "sha256")),
    Table(
        "holds",
        (
            "id",
            "name",
            "query",
            "reason",
            "created_by",
            "created_at",
            "released_by",
            "released_at",
        ),
        ("id",),
        resume="all",
    ),
    Table("message_holds", ("hold", "message"), ("hold", "message"), resume="all"),
    Table("imports", ("id", "source", "started", "finished"), ("id",), resume="all"),
    Table("envelope_imports", ("envelope", "import", "origin"), ("envelope",)),
    Table("import_cursors", ("source", "cursor"), ("source",), resume="all"),
    Table("extracts", ("sha256", "version", "status", "detail"), ("sha256",), resume="all"),
    Table("removed_blobs", ("kind", "sha256"), ("kind", "sha256"), resume="all"),
    Table("deleted_blobs", ("seq", "kind", "sha256"), ("seq",), resume="all"),
)

BY_NAME = {t.name: t for t in TABLES}

# the ids PostgreSQL's sequences give (BIGSERIAL): set past the copied ones when a copy ends
SERIALS: tuple[tuple[str, str], ...] = (
    ("holds", "id"),
    ("imports", "id"),
    ("deleted_blobs", "seq"),
)


def table(name: str) -> Table:
    """The table of that name; ``CatalogError`` for any other (names go into SQL)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise CatalogError(f"no catalog table {name!r} to copy") from None


def quoted(column: str) -> str:
    # "import" is a keyword in neither backend, but quoting every name costs nothing
    return f'"{column}"'


def select_sql(t: Table, *, param: str, start: bool) -> str:
    """Every row of ``t`` in key order; with ``start``, from the first key column's value
    ``param`` on (an integer: ``Table.resume``)."""
    columns = ", ".join(quoted(c) for c in t.columns)
    order = ", ".join(quoted(c) for c in t.key)
    where = f" WHERE {quoted(t.key[0])} >= {param}" if start else ""
    return f"SELECT {columns} FROM {quoted(t.name)}{where} ORDER BY {order}"


def resume_sql(t: Table) -> str:
    """The highest first key column the target holds (where a resumed copy starts)."""
    return f"SELECT max({quoted(t.key[0])}) FROM {quoted(t.name)}"


def upsert_sql(t: Table, param: str) -> str:
    """One copied row in: a row of that key there already (an earlier, interrupted run read
    it) takes the copy's values, so what changed at the source since is carried; a
    message's index entry (``indexed_with``) stays the target's own."""
    columns = ", ".join(quoted(c) for c in t.columns)
    marks = ", ".join(param for _ in t.columns)
    keys = ", ".join(quoted(c) for c in t.key)
    changed = [c for c in t.columns if c not in t.key and c != "indexed_with"]
    sets = ", ".join(f"{quoted(c)} = excluded.{quoted(c)}" for c in changed)
    action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
    return (
        f"INSERT INTO {quoted(t.name)} ({columns}) VALUES ({marks}) ON CONFLICT ({keys}) {action}"
    )


class TableRows(Protocol):
    """One consistent read of a catalog's tables (one read transaction): what a copy reads
    while mail may still be arriving there (``Catalog.snapshot``)."""

    def rows(self, t: Table, start: object | None = None) -> Generator[tuple[Any, ...]]:
        """``t``'s rows in key order (from the first key column's ``start`` on), as stored."""
        ...

    def count(self, t: Table) -> int: ...

    def head(self) -> ChainEvent | None:
        """The chain's head in this read."""
        ...
