"""The PostgreSQL catalog's full-text documents and queries: ``tsvector`` and ``tsquery``
built from the same tokens the SQLite index holds, so both backends find the same messages.

PostgreSQL's own parser (``to_tsvector('simple', ...)``) splits text otherwise than SQLite's
``unicode61`` tokenizer: it keeps ``alice@example.com``, ``foo-bar`` and ``3.14`` whole, and
classifies characters by a newer Unicode; a word found on one backend would be missed on the
other. So the tokens are SQLite's, made here by the tokenizer itself (an in-memory FTS5 table
read back through ``fts5vocab``: exact, including its folding of case and diacritics), and
PostgreSQL stores, indexes (GIN) and matches them: a document is the ``tsvector`` of those
tokens with their positions, a query the ``tsquery`` of a term's tokens as a phrase.

Columns: the index's five columns become weights (``subject`` A; attachment ``names`` and
``attachments`` B, which ``attachment:`` searches; ``body`` and ``addrs`` D), and each column
starts after a gap in positions so that a phrase never spans two of them. The weights make
the field columns ``subject_doc`` and ``attachment_doc`` (``ts_filter``, schema step 4), which
``subject:`` and ``attachment:`` match.

Where PostgreSQL's limits bound a document, it differs from SQLite's index (README, "Scaling
out"): positions end at 16,383 (later tokens all count as there: a word is found, a phrase
that far in is not), a lexeme keeps at most 256 positions, and a document is at most 1 MB
(lexemes beyond that are left out). A token longer than PostgreSQL's 2,046 bytes is cut to
that length, in documents and queries alike.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from ..bigrams import query_form
from ..search import Field, Text
from .records import IndexEntry

# PostgreSQL's limits (src/include/tsearch/ts_type.h)
MAX_POSITION = 16383
MAX_LEXEME_BYTES = 2046
MAX_POSITIONS_PER_LEXEME = 256
MAX_DOCUMENT_BYTES = (1 << 20) - 1 - 4096  # MAXSTRPOS, less a margin for the header

# the columns in the order their positions are laid out: the short ones first, so that the
# body's phrases stay under MAX_POSITION as far as it goes
_COLUMNS = ("subject", "addrs", "names", "body", "attachments")
_WEIGHT = {"subject": "A", "names": "B", "attachments": "B", "body": "D", "addrs": "D"}
# compile.FULLTEXT_FIELDS: the columns of ``fts`` holding a field's tokens alone (schema step 4:
# the document's lexemes of that weight, made by PostgreSQL from ``doc``)
FIELD_COLUMNS = {"subject": "subject_doc", "attachment": "attachment_doc"}


class _Tokenizer:
    """SQLite's ``unicode61 remove_diacritics 2``, as the SQLite catalog's index is made: one
    in-memory database per thread (a connection is not shared between threads)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(":memory:")
            conn.execute(
                "CREATE VIRTUAL TABLE t USING fts5(subject, addrs, names, body, attachments, "
                "tokenize = 'unicode61 remove_diacritics 2')"
            )
            conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
            self._local.conn = conn
        return conn

    def columns(self, values: Sequence[str]) -> list[list[tuple[int, str]]]:
        """For each of the five columns (``_COLUMNS`` order), its (offset, token) pairs."""
        conn = self._conn()
        # a NUL ends SQLite's C string; it is no token character, so a space stands in
        clean = [v.replace("\x00", " ") for v in values]
        found: list[list[tuple[int, str]]] = [[] for _ in _COLUMNS]
        with conn:
            conn.execute("DELETE FROM t")
            conn.execute("INSERT INTO t (rowid, subject, addrs, names, body, attachments) "
                         "VALUES (1, ?, ?, ?, ?, ?)", clean)  # fmt: skip
            column = {name: i for i, name in enumerate(_COLUMNS)}
            for term, col, offset in conn.execute("SELECT term, col, offset FROM v"):
                found[column[str(col)]].append((int(offset), str(term)))
            conn.execute("DELETE FROM t")
        for tokens in found:
            tokens.sort()
        return found

    def tokens(self, text: str) -> list[str]:
        return [t for _, t in self.columns(("", "", "", text, ""))[3]]


_TOKENIZER = _Tokenizer()


def _cut(token: str) -> str:
    data = token.encode()
    if len(data) <= MAX_LEXEME_BYTES:
        return token
    return data[:MAX_LEXEME_BYTES].decode(errors="ignore")


def _quote(token: str) -> str:
    """A lexeme in ``tsvector``/``tsquery`` input syntax: quoted, never read as syntax."""
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def document(entry: IndexEntry) -> str:
    """The ``tsvector`` input text of ``entry`` (cast by the statement: a bound parameter)."""
    values = {
        "subject": entry.subject,
        "addrs": entry.addrs,
        "names": entry.names,
        "body": entry.body,
        "attachments": entry.attachments,
    }
    positions: dict[str, list[str]] = {}
    start = 1
    for name, tokens in zip(
        _COLUMNS, _TOKENIZER.columns([values[c] for c in _COLUMNS]), strict=True
    ):
        weight = _WEIGHT[name]
        last = start
        for offset, token in tokens:
            pos = min(start + offset, MAX_POSITION)
            last = max(last, start + offset)
            at = positions.setdefault(_cut(token), [])
            if len(at) < MAX_POSITIONS_PER_LEXEME:
                at.append(f"{pos}{weight}")
        start = last + 2  # a gap: no phrase spans two columns
    parts: list[str] = []
    size = 0
    for lexeme, at in positions.items():
        part = f"{_quote(lexeme)}:{','.join(dict.fromkeys(at))}"
        size += len(lexeme.encode()) + 2 * len(at) + 8
        if size > MAX_DOCUMENT_BYTES:
            break
        parts.append(part)
    return " ".join(parts)


def _phrase(node: Text | Field) -> str | None:
    """The ``tsquery`` of one term: its tokens as a phrase, the last a prefix if asked; None if
    it has no token (as SQLite's empty phrase, it matches nothing)."""
    value = node.value
    prefix = not node.phrase and value.endswith("*") and len(value.rstrip("*")) > 0
    form = query_form(value.rstrip("*") if prefix else value)
    tokens = [_cut(t) for t in _TOKENIZER.tokens(form.text)]
    if not tokens:
        return None
    marks = [_quote(t) for t in tokens]
    if prefix or form.prefix:
        marks[-1] = f"{_quote(tokens[-1])}:*"
    return "(" + " <-> ".join(marks) + ")"


def _column(node: Text | Field) -> str:
    return FIELD_COLUMNS[node.name] if isinstance(node, Field) else "doc"


def conditions(
    terms: Sequence[Text | Field], excluded: Sequence[Text | Field] = ()
) -> list[tuple[str, str, bool]] | None:
    """What matches all ``terms`` and none of ``excluded``: (column, ``tsquery`` input text,
    negated) conditions on one ``fts`` row, all of which must hold; None when it can match
    nothing (a term without a token).

    Each column's terms are one ``tsquery`` (its excluded terms in it too, as ``& !``: the
    GIN index answers that exactly); a field's terms go to that field's own column, not to
    the whole document with a weight: GIN keeps no weights, so a weighted match would be
    checked again in every document that has the word anywhere (``subject:word`` read the
    whole archive's documents, 900 ms at 20,000 messages)."""
    wanted = [(_column(t), _phrase(t)) for t in terms]
    if not wanted or any(p is None for _, p in wanted):
        return None
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for column, phrase in wanted:
        groups.setdefault(column, ([], []))[0].append(str(phrase))
    for t in excluded:
        phrase = _phrase(t)
        if phrase is not None:
            groups.setdefault(_column(t), ([], []))[1].append(phrase)
    found: list[tuple[str, str, bool]] = []
    for column, (want, unwanted) in groups.items():
        if want:
            text = " & ".join(want)
            if unwanted:
                text = f"({text}) & !({' | '.join(unwanted)})"
            found.append((column, text, False))
    # a column with excluded terms only: a test of each row the others found
    found += [(c, " | ".join(u), True) for c, (w, u) in groups.items() if not w]
    return found
