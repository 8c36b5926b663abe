"""The query language: text in, an abstract syntax tree out. No SQL here.

Grammar (whitespace separates terms; AND is implicit; OR binds tighter than AND, as in
Gmail and most mail search, so ``from:alice invoice OR bill -draft`` means
``from:alice (invoice OR bill) -draft``)::

    query   := andexpr?
    andexpr := orexpr+
    orexpr  := unary ( "OR" unary )*
    unary   := ("-" | "NOT") unary | "(" andexpr ")" | term
    term    := FIELD ":" value | value
    value   := WORD | '"' phrase '"'

Fields: from to cc subject filename attachment msgid id after before date larger smaller has
retained-until. ``attachment:`` matches words in attachments: their file names, the names
inside zip files and the text extracted from them. ``filename:pdf`` (a value with no ``.``
and no ``*``) means the extension, ``filename:*.pdf``; quoted (``filename:"pdf"``) it is
the whole name. ``date:WHEN`` is the year, month or day WHEN (``date:2002``,
``date:2002-05``, ``date:2002-05-06``, UTC): ``after:`` its first instant and ``before:``
the first instant after it.
``retained-until:`` takes ``<WHEN``, ``>WHEN`` or ``forever``; WHEN is a year (``2030``), a
month (``2030-06``), a day or a date-time. ``<WHEN`` is kept until before WHEN begins (a
message kept forever never is); ``>WHEN`` is kept past the end of WHEN, and a message kept
forever always is.
Each catalog backend compiles the tree to its own SQL with bound parameters.

Lexical rules:

* Whitespace, ``(``, ``)`` and ``"`` end a bare word; to search for a parenthesis, quote it.
* ``OR`` and ``NOT`` are operators only in upper case and as whole words; ``or``, ``AND``
  and ``Not`` are ordinary words.
* ``-`` at the start of a token negates the term directly after it (``-draft``,
  ``-"q3 report"``, ``-(a OR b)``); a ``-`` followed by whitespace or the end is an error.
  Inside a word (``e-mail``) it is just a character.
* A word is ``field:value`` when the text before its first ``:`` is a known field name
  (any case). A word that only looks like one (``is:unread``, ``foo:bar``: ASCII letters,
  ``-`` or ``_`` before the colon, something after it) is an error naming the unknown field,
  with a suggestion, rather than being searched as a word the user did not mean; quoting it
  (``"foo:bar"``) searches it as text. Everything else with a colon is free text: ``12:30``,
  ``fe80::1`` (a digit or nothing before the colon), ``http://x``, ``C:\\temp`` (``/``,
  ``\\`` or ``:`` after it), ``Re:`` (nothing after it), ``Re:hello`` and ``mailto:x``
  (reply prefixes and URI schemes, ``NOT_FIELDS``). A field value may be quoted:
  ``subject:"q3 report"``.
* Inside quotes ``\\"`` is a literal ``"`` and ``\\\\`` a literal backslash; any other
  backslash is kept as it is.
* Parentheses and negations together may nest at most ``MAX_DEPTH`` levels, and a query
  holds at most ``MAX_TERMS`` terms (words, phrases and ``field:value`` terms together).

``parse_query`` raises ``QueryError`` (and nothing else) for any text it cannot parse;
``position`` is the 0-based offset of the offending token (for a ``field:value`` term, the
start of the field name).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from .dates import days_from_civil
from .errors import QueryError

# fields whose value is matched as text against addresses, subject, file names, Message-ID
STRING_FIELDS = ("from", "to", "cc", "subject", "filename", "attachment", "msgid")

# how a search result can be sorted: the CLI, the API and the web pages all offer exactly
# these (the default first), and every catalog backend implements each of them
Order = Literal["-date", "date", "-size", "size", "subject", "-subject", "from", "-from"]
ORDERS: tuple[Order, ...] = get_args(Order)

# the largest id, size, offset or limit a catalog can store (SQLite's signed 64-bit INTEGER)
MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class All:
    """The empty query: every message."""


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: a word, or a phrase when ``phrase``; matched against the full-text index."""

    value: str
    phrase: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """``name:value`` for a string field (``STRING_FIELDS``); ``value`` may contain ``*``."""

    name: str
    value: str
    phrase: bool = False


@dataclass(frozen=True, slots=True)
class DateBound:
    """``after:`` (date >= value) or ``before:`` (date < value); value is aware UTC."""

    name: Literal["after", "before"]
    value: datetime


@dataclass(frozen=True, slots=True)
class SizeBound:
    """``larger:`` (size > value) or ``smaller:`` (size < value), in bytes."""

    name: Literal["larger", "smaller"]
    value: int


@dataclass(frozen=True, slots=True)
class HasAttachment:
    """``has:attachment``."""


@dataclass(frozen=True, slots=True)
class IdIs:
    """``id:N``: the archive id."""

    value: int


@dataclass(frozen=True, slots=True)
class RetainedUntil:
    """``retained-until:``: kept until before ``seconds`` (``<``), until ``seconds`` or
    later, forever included (``>``), or forever (``seconds`` is None). Seconds since the
    epoch: the end of the year 9999 does not fit a ``datetime``."""

    name: Literal["before", "after", "forever"]
    seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = (
    All
    | Text
    | Field
    | DateBound
    | SizeBound
    | HasAttachment
    | IdIs
    | RetainedUntil
    | Not
    | And
    | Or
)


# every field name the parser knows, in the order error messages list them
FIELDS = (
    *STRING_FIELDS,
    "id",
    "after",
    "before",
    "larger",
    "smaller",
    "has",
    "retained-until",
    "date",
)

# words that look like ``name:value`` but are text people search for: reply and forward
# prefixes of pasted subjects (``Re:hello``, ``AW:Angebot``) and URI schemes without ``//``
NOT_FIELDS = frozenset(
    {"re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "rv"}
    | {"mailto", "tel", "sip", "sips", "urn", "cid", "mid", "news", "data", "xmpp"}
)

# field names of other mail programs, and what to use here instead (a "did you mean"
# from spelling alone would be wrong or missing for these)
FOREIGN_FIELDS = {
    "is": "the archive keeps no read, unread or starred state",
    "in": "the archive keeps no folders or labels: use from:, to: or subject: to narrow",
    "label": "the archive keeps no folders or labels: use from:, to: or subject: to narrow",
    "folder": "the archive keeps no folders or labels: use from:, to: or subject: to narrow",
    "on": "did you mean date:? (date:2024-01-31 is that day)",
    "since": "did you mean after:? (after:2024-01-31)",
    "until": "did you mean before:? (before:2024-01-31)",
    "older": "did you mean before:? (before:2024-01-31)",
    "newer": "did you mean after:? (after:2024-01-31)",
    "older_than": "did you mean before:? (before:2024-01-31)",
    "newer_than": "did you mean after:? (after:2024-01-31)",
    "size": "did you mean larger: or smaller:? (larger:1M)",
    "bcc": "did you mean to:? (to: matches every envelope recipient, Bcc included)",
    "sender": "did you mean from:?",
    "recipient": "did you mean to:?",
    "file": "did you mean filename:? (filename:pdf, filename:*.pdf)",
    "body": "free words search the bodies: leave out body:",
    "text": "free words search the text: leave out text:",
}

# how deeply parentheses and negations may nest (keeps the tree, and every recursive
# compiler of it, far away from Python's recursion limit)
MAX_DEPTH = 32

# how many terms one query may hold. A backend compiles each term (with the AND or OR joining
# it to the next) into at least one more level of its SQL expression, and SQLite refuses a
# tree deeper than 1000 levels (SQLITE_MAX_EXPR_DEPTH); this many terms, nested MAX_DEPTH
# deep, stays well inside that, and far above what a person types
MAX_TERMS = 500

_EXAMPLES = {
    "from": "from:alice@example.com",
    "to": "to:bob",
    "cc": "cc:carol",
    "subject": 'subject:"q3 report"',
    "filename": "filename:*.pdf",
    "attachment": "attachment:invoice",
    "msgid": "msgid:1234@example.com",
    "id": "id:42",
    "after": "after:2024-01-31",
    "before": "before:2024-01-31",
    "larger": "larger:1M",
    "smaller": "smaller:500K",
    "has": "has:attachment",
    "retained-until": "retained-until:<2030-01-01",
    "date": "date:2024-01",
}

_DATE_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?",
    re.IGNORECASE | re.ASCII,
)
# retained-until: a year, a month, or what after:/before: take
_PERIOD_RE = re.compile(r"([0-9]{4})(?:-([0-9]{2}))?", re.ASCII)
_SIZE_RE = re.compile(r"([0-9]+)([KMG]?)B?", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)
# what a field name looks like: a word of this shape before a colon is a field or an error
_FIELD_NAME_RE = re.compile(r"[A-Za-z][A-Za-z_-]*", re.ASCII)

# characters that end a bare word (besides whitespace)
_WORD_ENDS = frozenset('()"')

_TokenKind = Literal["term", "or", "not", "minus", "lparen", "rparen"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _TokenKind
    pos: int
    value: str = ""  # term text, without the field prefix or the quotes
    field: str | None = None  # lower-cased field name for ``field:value`` terms
    phrase: bool = False  # the value was quoted


def parse_query(text: str, *, stored: bool = False) -> Node:
    """Parse a search query into a tree; raise ``QueryError`` if it is malformed.

    ``stored``: a query saved by an earlier version (a hold's), read as it was then: a word
    that looks like an unknown ``field:value`` is free text, not an error."""
    return _Parser(text, _tokenize(text, stored=stored)).parse()


# --- tokenizer -----------------------------------------------------------------------------


def _tokenize(text: str, *, stored: bool = False) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(_Token("lparen", i))
            i += 1
        elif ch == ")":
            tokens.append(_Token("rparen", i))
            i += 1
        elif ch == '"':
            value, end = _read_quoted(text, i)
            tokens.append(_Token("term", i, value, phrase=True))
            i = end
        elif ch == "-":
            if i + 1 == len(text) or text[i + 1].isspace():
                raise QueryError(
                    "'-' must be followed directly by the term to exclude, like -draft", i, text
                )
            tokens.append(_Token("minus", i))
            i += 1
        else:
            token, i = _read_word(text, i, stored=stored)
            tokens.append(token)
    return tokens


def _read_word(text: str, start: int, *, stored: bool = False) -> tuple[_Token, int]:
    """Read a bare word (an operator, ``field:value`` or free text); return it and its end."""
    end = start
    while end < len(text) and not text[end].isspace() and text[end] not in _WORD_ENDS:
        end += 1
    word = text[start:end]
    if word == "OR":
        return _Token("or", start), end
    if word == "NOT":
        return _Token("not", start), end
    prefix, colon, rest = word.partition(":")
    name = prefix.lower()
    if not colon or not prefix.isascii() or name not in FIELDS:
        quoted_value = not rest and end < len(text) and text[end] == '"'
        if (
            colon
            and not stored
            and _FIELD_NAME_RE.fullmatch(prefix)
            and name not in NOT_FIELDS
            and ((rest and rest[0] not in "/\\:") or quoted_value)
        ):
            raise QueryError(_unknown_field(name, word), start, text)
        return _Token("term", start, word), end
    if not rest and end < len(text) and text[end] == '"':
        value, end = _read_quoted(text, end)
        return _Token("term", start, value, field=name, phrase=True), end
    return _Token("term", start, rest, field=name), end


def _unknown_field(name: str, word: str) -> str:
    """Why ``name:`` is refused, with what to type instead."""
    shown = name if len(name) <= 40 else name[:40] + "…"
    hint = FOREIGN_FIELDS.get(name)
    if hint is None:
        close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}:?" if close else "fields are " + ", ".join(FIELDS)
    literal = word if len(word) <= 40 else word[:40] + "…"
    return f"unknown field '{shown}:' ({hint}); to search for the text, quote it: \"{literal}\""


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted string whose opening quote is at ``start``; return it and its end."""
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            chars.append(text[i + 1])
            i += 2
        elif ch == '"':
            return "".join(chars), i + 1
        else:
            chars.append(ch)
            i += 1
    raise QueryError("unterminated quote: add a closing '\"'", start, text)


# --- parser --------------------------------------------------------------------------------


def _starts_term(token: _Token | None) -> bool:
    return token is not None and token.kind in ("term", "minus", "not", "lparen")


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.terms = 0

    def parse(self) -> Node:
        if not self.tokens:
            return All()
        node = self.and_expr()
        leftover = self.peek()
        if leftover is not None:  # or_expr stops only at the end or at a ')'
            raise self.error("unmatched ')'", leftover.pos)
        return node

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def error(self, reason: str, position: int) -> QueryError:
        return QueryError(reason, position, self.text)

    def and_expr(self) -> Node:
        token = self.peek()
        if token is None:
            raise self.error("expected a search term", len(self.text))
        if token.kind == "or":
            raise self.error("OR must come between two terms", token.pos)
        if token.kind == "rparen":
            raise self.error("unmatched ')'", token.pos)
        children: list[Node] = []
        while _starts_term(self.peek()):
            children.append(self.or_expr())
        return _and(children)

    def or_expr(self) -> Node:
        children = [self.unary()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.index += 1
            if not _starts_term(self.peek()):
                raise self.error("OR must be followed by a term", token.pos)
            children.append(self.unary())
        return _or(children)

    def unary(self) -> Node:
        token = self.tokens[self.index]
        self.index += 1
        if token.kind in ("minus", "not"):
            self.enter(token)
            if not _starts_term(self.peek()):
                operator = "'-'" if token.kind == "minus" else "NOT"
                raise self.error(f"{operator} must be followed by the term to exclude", token.pos)
            child = self.unary()
            self.depth -= 1
            return Not(child)
        if token.kind == "lparen":
            self.enter(token)
            inner = self.peek()
            if inner is not None and inner.kind == "rparen":
                raise self.error("empty parentheses", token.pos)
            if inner is None:
                raise self.error("unclosed '(': add a ')'", token.pos)
            node = self.and_expr()
            closing = self.peek()
            if closing is None or closing.kind != "rparen":
                raise self.error("unclosed '(': add a ')'", token.pos)
            self.index += 1
            self.depth -= 1
            return node
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.error(
                f"too many terms: at most {MAX_TERMS} words, phrases and field:value terms",
                token.pos,
            )
        return _term(token, self.text)

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"too deeply nested: at most {MAX_DEPTH} levels of parentheses and negations",
                token.pos,
            )


def _and(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, And) else (child,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, Or) else (child,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


# --- terms ---------------------------------------------------------------------------------


def _term(token: _Token, text: str) -> Node:
    """Turn a ``term`` token into its node, checking the value of a ``field:value``."""
    name, value = token.field, token.value
    if name is None:
        if not value.strip():
            raise QueryError("empty phrase: put words between the quotes", token.pos, text)
        return Text(value, phrase=token.phrase)
    if not value.strip():
        raise QueryError(f"{name}: needs a value, like {_EXAMPLES[name]}", token.pos, text)
    if name == "filename" and not token.phrase and "." not in value and "*" not in value:
        return Field(name, "*." + value)  # filename:pdf is the extension, as people mean it
    if name in STRING_FIELDS:
        return Field(name, value, phrase=token.phrase)
    if name == "date":
        return _date_span(value, token.pos, text)
    if name in ("after", "before"):
        when = _parse_date(value)
        if when is None:
            raise QueryError(
                f"{name}: needs a date like 2024-01-31 or 2024-01-31T10:00, got {value!r}",
                token.pos,
                text,
            )
        return DateBound("after", when) if name == "after" else DateBound("before", when)
    if name in ("larger", "smaller"):
        size = _parse_size(value)
        if size is None:
            raise QueryError(
                f"{name}: needs a size in bytes like 500K, 10M or 1G, got {value!r}",
                token.pos,
                text,
            )
        return SizeBound("larger", size) if name == "larger" else SizeBound("smaller", size)
    if name == "has":
        if value.lower() not in ("attachment", "attachments"):
            raise QueryError(
                f"has: only has:attachment is supported, got {value!r}", token.pos, text
            )
        return HasAttachment()
    if name == "retained-until":
        return _retained_until(value, token.pos, text)
    # name == "id": the last field left
    number = parse_int(value)
    if number is None or number == 0:
        raise QueryError(
            f"id: needs a positive whole number like id:42, got {value!r}", token.pos, text
        )
    return IdIs(number)


def _date_span(value: str, pos: int, text: str) -> Node:
    """``date:2002`` (a year, month or day, UTC) as ``after:`` its start ``before:`` its end."""
    span = _parse_span(value) if len(value) <= 10 else None
    if span is None:
        raise QueryError(
            "date: needs a year, month or day like 2024, 2024-01 or 2024-01-31 "
            f"(after: and before: take date-times), got {value[:40]!r}",
            pos,
            text,
        )
    start, end = (datetime.fromtimestamp(s, UTC) if s < _END_OF_9999 else None for s in span)
    assert start is not None  # the year 0 and 10000 are refused by _parse_span and _DATE_RE
    if end is None:  # the day after 9999-12-31 has no datetime: every later date is in it
        return DateBound("after", start)
    return And((DateBound("after", start), DateBound("before", end)))


def _retained_until(value: str, pos: int, text: str) -> RetainedUntil:
    if value.lower() == "forever":
        return RetainedUntil("forever")
    span = _parse_span(value[1:]) if value[:1] in ("<", ">") else None
    if span is None:
        raise QueryError(
            "retained-until: needs <WHEN, >WHEN or forever, WHEN a year, month, day or "
            f"date-time like 2030, 2030-06, 2030-06-01 or 2030-06-01T10:00, got {value[:40]!r}",
            pos,
            text,
        )
    start, end = span
    return RetainedUntil("before", start) if value[0] == "<" else RetainedUntil("after", end)


def _parse_span(value: str) -> tuple[int, int] | None:
    """The first second of ``value`` (a year, month, day or instant) and the first after it,
    in seconds since the epoch; None if invalid."""
    period = _PERIOD_RE.fullmatch(value)
    if period is not None:
        year, month = int(period.group(1)), period.group(2)
        if year == 0:
            return None
        if month is None:
            return _day_seconds(year, 1, 1), _day_seconds(year + 1, 1, 1)
        if not 1 <= int(month) <= 12:
            return None
        after = (year + 1, 1) if month == "12" else (year, int(month) + 1)
        return _day_seconds(year, int(month), 1), _day_seconds(*after, 1)
    when = _parse_date(value)
    if when is None:
        return None
    start = _day_seconds(when.year, when.month, when.day) + (
        when.hour * 3600 + when.minute * 60 + when.second
    )
    # a day is the whole day; a date-time is that instant
    return (start, start + 86400) if len(value) == 10 else (start, start + 1)


# the first second of the year 10000: datetime stops before it
_END_OF_9999 = 253402300800


def _day_seconds(year: int, month: int, day: int) -> int:
    return days_from_civil(year, month, day) * 86400


def _parse_date(value: str) -> datetime | None:
    """ISO date or date-time (naive means UTC) as an aware UTC datetime; None if invalid."""
    if _DATE_RE.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.upper())
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # Feb 30, hour 24, offset 24:00, year 1 minus 1 h
        return None


def _parse_size(value: str) -> int | None:
    """``123``, ``10K``, ``10kb``, ``1M``, ``2G``... in bytes (powers of 1024); None if invalid."""
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        return None
    number = parse_int(match.group(1))
    if number is None:
        return None
    size = number * _SIZE_UNITS[match.group(2).upper()]
    return size if size <= MAX_INT else None


def parse_int(value: str) -> int | None:
    """A non-negative ASCII-digit integer that fits a signed 64-bit column; None otherwise.

    The one parser for numbers a user types (ids, offsets, limits): ``str.isdigit`` takes
    ``²`` and ``int`` takes ``١٢`` and ``1_000``, and a number past 64 bits, or past 4300
    digits, makes SQLite or ``int`` raise instead of saying what is wrong."""
    if _DIGITS_RE.fullmatch(value) is None or len(value.lstrip("0")) > 19:
        return None
    number = int(value)
    return number if number <= MAX_INT else None
