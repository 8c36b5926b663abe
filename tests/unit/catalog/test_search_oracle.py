"""``Archive.search`` checked against an independent scan of the original messages.

A seeded corpus of a few hundred messages (varied display names and address case, envelope
senders, Bcc-only envelope recipients, subjects, bodies with HTML alternatives, dates around
day boundaries, sizes, attachments with file names) is ingested once. For every query the ids
the archive returns are compared with what a pure-Python oracle finds by scanning the
messages and envelopes it generated, using the semantics documented in
``postfix_archiver.catalog.compile``:

* ``from:`` header From and envelope sender; ``to:`` To, Cc and envelope recipients;
  ``cc:`` header Cc. A value with ``*`` is a glob on the address, ``@domain`` an address
  suffix, a value with ``@`` an exact address, anything else a substring of the address or
  the display name; all case-insensitive.
* ``subject:`` and free text are full-text word matches (unicode61 tokens: for ASCII text,
  runs of letters and digits, lower-cased); a quoted value or a word that tokenizes to several
  tokens is a phrase within one column; ``word*`` is a prefix on the last token.
* ``after:`` date >= the UTC day start, ``before:`` date < it; ``larger:``/``smaller:`` strict
  on the raw size; ``filename:`` a case-insensitive glob on attachment names.

The oracle walks the parsed tree (the parser has its own tests), never SQL. The corpus is
built once for each catalog backend (``tests.catalog_helpers.BACKENDS``).
"""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, formataddr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.catalog_helpers import BACKENDS, backend_params
from tests.conftest import make_config

from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import QueryError
from postfix_archiver.search import (
    All,
    And,
    DateBound,
    Field,
    HasAttachment,
    IdIs,
    Node,
    Not,
    Or,
    SizeBound,
    Text,
    parse_query,
)

SEED = 20240611
N_MESSAGES = 300

# lower-case ASCII words, so the oracle's tokenization is unambiguous; "near", "or", "and"
# and "not" are FTS5 and query operators in other spellings and must stay plain words here
_WORD_LIST = (
    "invoice bill report quarterly budget meeting agenda minutes draft final review "
    "contract renewal payment overdue reminder shipping delivery order tracking parcel "
    "server outage backup restore migration ticket urgent weekly summary lunch friday "
    "holiday vacation approval request policy audit compliance legal hold retention "
    "customer support feedback survey release notes roadmap launch q3 q4 2024 near or "
    "and not alpha beta gamma delta omega project phoenix atlas orion"
)
WORDS = tuple(_WORD_LIST.split())
# common phrases, so phrase queries find something (and their reversed order does not)
PHRASES = ("quarterly report", "budget meeting", "weekly summary", "invoice overdue", "legal hold")
# only in HTML alternatives: the index must strip the tags and keep the text
HTML_WORDS = ("newsletter", "unsubscribe", "webinar", "promo", "banner")


@dataclass(frozen=True)
class Person:
    address: str
    names: tuple[str, ...]  # display-name variants seen on this person's mail ("" = none)


PEOPLE = (
    Person("alice@example.com", ("Alice Smith", "ALICE SMITH", "A. Smith", "")),
    Person("Bob.Jones@Example.ORG", ("Bob Jones", "bob jones", "")),
    Person("carol@sub.example.com", ("", "Carol")),
    Person("dave@example.net", ("Dave Example", "")),
    Person("EVE@Corp.Example.com", ("Eve", "eve the auditor")),
    Person("frank_miller@example.com", ("Frank Miller", "")),
    Person("frank.miller@example.net", ("F. Miller", "")),
    Person("grace@example.org", ("Grace 100% Hopper", "Grace Hopper")),
    Person("heidi@mail.example.de", ("Heidi Klum", "")),
    Person("ivan@example.com.evil.net", ("Ivan", "")),
    Person("mallory@notexample.com", ("Mallory", "")),
    Person("zoe.q@example.com", ("Zoe Quinn", "")),
)
# recipients only the envelope knows (Bcc, list expansion, journaling)
BCC_ONLY = ("audit@example.com", "Legal.Hold@Compliance.example.org", "secret.bcc@hidden.example")
LATE_BCC = "late.bcc@example.net"  # only on second arrivals of the same bytes
BOUNCES = ("bounces+{n}@lists.example.com", "noreply@mailer.example.net")
FILENAMES = (
    "report.pdf",
    "Q3_Report.PDF",
    "q3-report.pdf",
    "invoice-2024.pdf",
    "photo.JPG",
    "scan 100%.pdf",
    "notes.txt",
    "data.csv",
    "archive.tar.gz",
    "budget_final.xlsx",
    "budgetXfinal.xlsx",
)
MSGID_HOSTS = ("mail.example.com", "MX.Example.ORG")

# exact instants at and around a day boundary, to pin after:/before: to the UTC day start
BOUNDARY_DATES = (
    datetime(2024, 3, 10, 0, 0, 0, tzinfo=UTC),
    datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 3, 10, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))),  # 9th 23:00 UTC
    datetime(2024, 3, 9, 20, 0, 0, tzinfo=timezone(timedelta(hours=-5))),  # 10th 01:00 UTC
)


@dataclass
class Mail:
    """What the oracle knows of one message: everything it was generated from."""

    raw: bytes
    subject: str
    date_ts: int
    from_: list[tuple[str, str]]  # (name, address)
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    body: str  # the text the index should hold: plain text, then the HTML's words
    filenames: list[str]
    message_id: str  # without <>
    senders: set[str] = field(default_factory=set)  # envelope senders, lower-cased
    rcpts: set[str] = field(default_factory=set)  # envelope recipients, lower-cased
    id: int = 0

    @property
    def size(self) -> int:
        return len(self.raw)


# --- corpus generation ---------------------------------------------------------------------


def _words(rng: random.Random, low: int, high: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(low, high))]


def _people(rng: random.Random, low: int, high: int) -> list[tuple[str, str]]:
    chosen = rng.sample(PEOPLE, rng.randint(low, high))
    return [(rng.choice(p.names), p.address) for p in chosen]


def _addr_header(people: list[tuple[str, str]]) -> str:
    return ", ".join(formataddr(p) for p in people)


def _date(rng: random.Random, n: int) -> datetime:
    if n < len(BOUNDARY_DATES):
        return BOUNDARY_DATES[n]
    if n % 37 == 0:  # several messages share one instant: order falls back to id
        return datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
    offset = timezone(timedelta(minutes=rng.choice((0, 60, 120, -300, -420, 330))))
    start = datetime(2023, 1, 1, tzinfo=UTC)
    when = start + timedelta(seconds=rng.randrange(2 * 365 * 86400))
    return when.astimezone(offset)


def _text_part(body: str) -> list[str]:
    return [
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        body,
    ]


def _html_part(words: list[str]) -> list[str]:
    paragraphs = "\n".join(f"<p>{' '.join(words[i : i + 4])}</p>" for i in range(0, len(words), 4))
    return [
        "Content-Type: text/html; charset=us-ascii",
        "",
        "<html><head><style>p { color: red }</style></head>\n"
        f"<body>\n{paragraphs}\n</body></html>",
    ]


def _multipart(subtype: str, boundary: str, parts: list[list[str]]) -> list[str]:
    lines = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"', "", "preamble"]
    for part in parts:
        lines += [f"--{boundary}", *part]
    lines += [f"--{boundary}--", ""]
    return lines


def _attachment(rng: random.Random, filename: str) -> list[str]:
    # random bytes behind a PNG signature, whatever the name says: an image has no text to
    # extract (the oracle knows file names, not attachment contents; extraction goes by the
    # first bytes before the type and the name, so notes.txt is not read as text)
    data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(100, 12000))
    b64 = base64.encodebytes(data).decode().rstrip("\n")
    ctype = "application/octet-stream"
    return [
        f'Content-Type: {ctype}; name="{filename}"',
        f'Content-Disposition: attachment; filename="{filename}"',
        "Content-Transfer-Encoding: base64",
        "",
        b64,
    ]


def make_mail(rng: random.Random, n: int) -> tuple[Mail, Envelope]:
    from_ = _people(rng, 1, 1)
    to = _people(rng, 1, 3)
    cc = _people(rng, 0, 2) if rng.random() < 0.5 else []
    cc = [c for c in cc if c[1] not in {t[1] for t in to}]
    subject_words = _words(rng, 1, 5)
    if rng.random() < 0.4:
        subject_words.insert(rng.randint(0, len(subject_words)), rng.choice(PHRASES))
    subject = " ".join(w.capitalize() if rng.random() < 0.3 else w for w in subject_words)
    if rng.random() < 0.2:
        subject = "Re: " + subject + "!"
    lines = [_words(rng, 3, 12) for _ in range(rng.randint(1, 8))]
    if rng.random() < 0.3:
        lines[-1].append(rng.choice(PHRASES))
    plain = "\n".join(" ".join(line) for line in lines)
    date = _date(rng, n)
    has_date = n < len(BOUNDARY_DATES) or rng.random() > 0.08
    msgid = f"{n}.{rng.randrange(16**8):08x}@{rng.choice(MSGID_HOSTS)}"
    has_msgid = rng.random() > 0.05

    headers = [f"From: {_addr_header(from_)}", f"To: {_addr_header(to)}"]
    if cc:
        headers.append(f"Cc: {_addr_header(cc)}")
    if rng.random() < 0.1:  # an RFC 2047 encoded subject decodes to the same words
        encoded = subject.replace(" ", "_").replace("!", "=21")
        headers.append(f"Subject: =?utf-8?q?{encoded}?=")
    else:
        headers.append(f"Subject: {subject}")
    if has_date:
        headers.append(f"Date: {format_datetime(date)}")
    if has_msgid:
        headers.append(f"Message-ID: <{msgid}>")
    headers.append("MIME-Version: 1.0")

    html_words: list[str] = []
    body_part = _text_part(plain)
    if rng.random() < 0.3:
        html_words = [rng.choice(HTML_WORDS + WORDS) for _ in range(rng.randint(4, 12))]
        body_part = _multipart("alternative", f"alt-{n}", [body_part, _html_part(html_words)])
    filenames: list[str] = []
    if rng.random() < 0.4:
        filenames = rng.sample(FILENAMES, rng.randint(1, 3))
        parts = [body_part, *(_attachment(rng, f) for f in filenames)]
        body_part = _multipart("mixed", f"mixed-{n}", parts)
    text = "\n".join(headers + body_part) + "\n"
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")

    # envelope: sometimes the From address, sometimes a bounce address, sometimes null
    roll = rng.random()
    if roll < 0.5:
        sender = from_[0][1]
    elif roll < 0.8:
        sender = rng.choice(BOUNCES).format(n=n)
    else:
        sender = ""
    rcpts = [a for _, a in to + cc if rng.random() < 0.8]
    rcpts = [a.upper() if rng.random() < 0.2 else a for a in rcpts]
    if rng.random() < 0.35:
        rcpts.append(rng.choice(BCC_ONLY))
    received = date.astimezone(UTC) + timedelta(seconds=rng.randint(1, 600))
    envelope = Envelope(
        sender=sender,
        recipients=tuple(rcpts) or ("postmaster@example.com",),
        queue_id=f"Q{n:06d}",
        received=received,
        source="smtp",
    )
    mail = Mail(
        raw=text.encode("ascii"),
        subject=subject,
        date_ts=int((date if has_date else received).timestamp()),
        from_=from_,
        to=to,
        cc=cc,
        body=plain + "\n" + " ".join(html_words),
        filenames=filenames,
        message_id=msgid if has_msgid else "",
    )
    return mail, envelope


def _record(mail: Mail, envelope: Envelope) -> None:
    if envelope.sender:
        mail.senders.add(envelope.sender.lower())
    mail.rcpts.update(r.lower() for r in envelope.recipients)


@dataclass(repr=False)
class Corpus:
    archive: Archive
    mails: list[Mail]

    def __repr__(self) -> str:  # hypothesis prints its arguments: keep that short
        return f"<Corpus of {len(self.mails)} messages>"

    @property
    def ids(self) -> set[int]:
        return {m.id for m in self.mails}

    def expected(self, query: str) -> list[Mail]:
        """The oracle: matches of ``query``, newest first (date desc, id desc)."""
        node = parse_query(query)
        found = [m for m in self.mails if matches(node, m)]
        return sorted(found, key=lambda m: (-m.date_ts, -m.id))

    def expected_ids(self, query: str) -> set[int]:
        return {m.id for m in self.expected(query)}

    def found_ids(self, query: str) -> set[int]:
        page = self.archive.search(query, limit=10_000)
        ids = [r.id for r in page.results]
        assert len(ids) == len(set(ids)), f"{query!r}: duplicate results"
        assert page.total == len(ids), f"{query!r}: total {page.total} != {len(ids)} rows"
        return set(ids)

    def by_id(self, ident: int) -> Mail:
        return next(m for m in self.mails if m.id == ident)


@pytest.fixture(scope="module", params=backend_params())
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    rng = random.Random(SEED)
    generated = [make_mail(rng, n) for n in range(N_MESSAGES)]
    home = tmp_path_factory.mktemp("oracle") / "data"
    url = BACKENDS[request.param](home)
    with Archive(make_config(home, f"catalog = {url!r}")) as archive:
        results = list(archive.ingest_many((m.raw, e) for m, e in generated))
        mails: list[Mail] = []
        for (mail, envelope), result in zip(generated, results, strict=True):
            assert result.new_message
            assert result.new_envelope
            mail.id = result.id
            _record(mail, envelope)
            mails.append(mail)
        # second arrivals of the same bytes, with another envelope: one message, and the
        # addresses of both envelopes find it
        for mail, envelope in generated[10:40:2]:
            again = Envelope(
                sender=f"relay+{mail.id}@forwarder.example.org",
                recipients=(LATE_BCC, *envelope.recipients[:1]),
                queue_id=f"R{mail.id}",
                received=envelope.received + timedelta(hours=1),
            )
            result = archive.ingest(mail.raw, again)
            assert (result.id, result.new_message, result.new_envelope) == (mail.id, False, True)
            _record(mail, again)
        # ingest_many (the import's path) indexes what it stores: nothing is left queued
        assert archive.index_pending() == 0
        assert archive.search("", limit=1).total == N_MESSAGES
        yield Corpus(archive, mails)


# --- the oracle ----------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _columns(mail: Mail, only_subject: bool) -> list[list[str]]:
    if only_subject:
        return [tokens(mail.subject)]
    addrs = " ".join(f"{n} <{a}>" if n else a for n, a in mail.from_ + mail.to + mail.cc)
    return [
        tokens(mail.subject),
        tokens(mail.body),
        tokens(" ".join(mail.filenames)),
        tokens(addrs),
    ]


def text_matches(value: str, phrase: bool, mail: Mail, only_subject: bool = False) -> bool:
    prefix = not phrase and value.endswith("*") and value.rstrip("*") != ""
    wanted = tokens(value.rstrip("*") if prefix else value)
    if not wanted:  # nothing to look for in the index: no match
        return False
    n = len(wanted)
    for column in _columns(mail, only_subject):
        for i in range(len(column) - n + 1):
            window = column[i : i + n]
            if window[:-1] != wanted[:-1]:
                continue
            last = window[-1]
            if last == wanted[-1] or (prefix and last.startswith(wanted[-1])):
                return True
    return False


def glob_matches(pattern: str, value: str) -> bool:
    regex = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def address_rows(mail: Mail, name: str) -> list[tuple[str, str]]:
    """(address, display name) rows a ``from:``/``to:``/``cc:`` term looks at."""
    header = {"from": mail.from_, "to": mail.to + mail.cc, "cc": mail.cc}[name]
    rows = [(a.lower(), n) for n, a in header]
    if name == "from":
        rows += [(s, "") for s in mail.senders]
    elif name == "to":
        rows += [(r, "") for r in mail.rcpts]
    return rows


def address_matches(value: str, rows: list[tuple[str, str]]) -> bool:
    v = value.lower()
    if "*" in v:
        return any(glob_matches(v, a) for a, _ in rows)
    if v.startswith("@"):
        return any(a.endswith(v) for a, _ in rows)
    if "@" in v:
        return any(a == v for a, _ in rows)
    return any(v in a or v in n.lower() for a, n in rows)


def matches(node: Node, mail: Mail) -> bool:
    match node:
        case All():
            return True
        case Text(value=value, phrase=phrase):
            return text_matches(value, phrase, mail)
        case Field(name="subject", value=value, phrase=phrase):
            return text_matches(value, phrase, mail, only_subject=True)
        case Field(name="from" | "to" | "cc" as name, value=value):
            return address_matches(value, address_rows(mail, name))
        case Field(name="filename", value=value):
            return any(glob_matches(value, f) for f in mail.filenames)
        case Field(name="msgid", value=value):
            wanted = value.strip().strip("<>").strip()
            if "*" in wanted:
                return glob_matches(wanted, mail.message_id)
            return mail.message_id == wanted
        case DateBound(name="after", value=value):
            return mail.date_ts >= value.timestamp()
        case DateBound(name="before", value=value):
            return mail.date_ts < value.timestamp()
        case SizeBound(name="larger", value=value):
            return mail.size > value
        case SizeBound(name="smaller", value=value):
            return mail.size < value
        case HasAttachment():
            return bool(mail.filenames)
        case IdIs(value=value):
            return mail.id == value
        case Not(child=child):
            return not matches(child, mail)
        case And(children=children):
            return all(matches(c, mail) for c in children)
        case Or(children=children):
            return any(matches(c, mail) for c in children)
    raise AssertionError(f"oracle cannot evaluate {node!r}")


# --- the corpus is what the tests assume ---------------------------------------------------


def test_corpus_covers_what_the_queries_need(corpus: Corpus) -> None:
    mails = corpus.mails
    assert len(mails) == N_MESSAGES
    assert sum(bool(m.filenames) for m in mails) > 50
    assert any(b.lower() in m.rcpts for m in mails for b in BCC_ONLY)
    assert any(b"\r\n" in m.raw for m in mails)
    assert len({m.date_ts for m in mails}) < len(mails)  # ties on date exist
    # Bcc-only recipients are in no header of their message
    for m in mails:
        headers = {a.lower() for _, a in m.to + m.cc + m.from_}
        assert not headers & {b.lower() for b in BCC_ONLY}


# --- every field against the oracle --------------------------------------------------------

FIELD_QUERIES = [
    # from: header From and envelope sender
    "from:alice@example.com",
    "from:ALICE@EXAMPLE.COM",
    "from:bob.jones@example.org",
    "from:@example.com",
    "from:@example.org",
    "from:@lists.example.com",
    "from:smith",
    "from:SMITH",
    "from:ali",
    "from:frank_miller",
    "from:100%",
    "from:*@example.com",
    "from:*miller@*",
    "from:bounces+*",
    "from:noreply@mailer.example.net",
    'from:"alice smith"',
    'from:"Grace 100% Hopper"',
    "from:auditor",
    # to: To, Cc and envelope recipients (Bcc)
    "to:audit@example.com",
    "to:legal.hold@compliance.example.org",
    "to:secret.bcc@hidden.example",
    "to:@hidden.example",
    "to:*.bcc@*",
    f"to:{LATE_BCC}",
    "to:carol",
    "to:@sub.example.com",
    "to:@example.com",
    "to:example.org",
    "to:eve@corp.example.com",
    "to:jones",
    "to:*@example.com*",
    # cc: header Cc only
    "cc:bob",
    "cc:@example.net",
    "cc:grace@example.org",
    "cc:*e*",
    # subject: full-text words in the subject only
    "subject:report",
    "subject:REPORT",
    "subject:invoice",
    "subject:q3",
    "subject:rep*",
    'subject:"weekly summary"',
    "subject:re",
    # dates, sizes, attachments, ids
    "after:2024-01-01",
    "before:2024-01-01",
    "after:2024-03-10",
    "before:2024-03-10",
    "after:2024-03-09 before:2024-03-11",
    "after:2024-06-01T12:00:00Z",
    "has:attachment",
    "filename:*.pdf",
    "filename:*.PDF",
    "filename:report.pdf",
    "filename:q3_report.pdf",
    "filename:*_*",
    "filename:*100%*",
    "filename:budget*final.xlsx",
    "filename:*.tar.*",
    "larger:8K",
    "smaller:4K",
    "larger:2K smaller:10K",
    "msgid:*@mx.example.org",
    "msgid:*@MAIL.EXAMPLE.COM",
    # free words, phrases, prefixes
    "invoice",
    "INVOICE",
    "invoice budget",
    "report*",
    "q3",
    '"quarterly report"',
    '"budget meeting"',
    "smith",
    "corp",
    "pdf",
    "newsletter",
    "webinar",
    "near",
    "or",
    "and",
    "not",
    # negation and OR
    "-invoice",
    "-from:alice",
    "NOT has:attachment",
    "-to:audit@example.com",
    "invoice OR bill",
    "from:alice invoice OR bill -draft",
    "from:alice OR from:bob subject:report",
    '-"budget meeting"',
    "-(invoice OR bill)",
    "has:attachment -filename:*.pdf",
    "(from:alice OR to:alice) after:2024-01-01",
    "NOT (from:@example.com OR to:@example.com)",
]


@pytest.mark.parametrize("query", FIELD_QUERIES)
def test_search_matches_oracle(corpus: Corpus, query: str) -> None:
    expected = corpus.expected_ids(query)
    assert 0 < len(expected) < N_MESSAGES, f"{query!r} does not discriminate in this corpus"
    assert corpus.found_ids(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "from:alice@",  # a value with @ is an exact address
        "from:@example",  # a domain suffix starts at the @
        "from:@xample.com",
        "to:nobody@example.com",
        "cc:audit@example.com",  # envelope recipients are not Cc
        "from:audit@example.com",
        "subject:smith",  # addresses are not the subject
        "subject:newsletter",  # nor is the body
        "filename:report",  # no glob: the whole name
        "filename:q3_report.pdf.gz",
        "msgid:nonexistent@example.com",
        "larger:10G",
        "smaller:1",
        "after:2030-01-01",
        "before:2000-01-01",
        "id:999999",
        "zzzzunknownword",
        '"report invoice budget policy"',
        "invoice -invoice",
    ],
)
def test_queries_that_match_nothing(corpus: Corpus, query: str) -> None:
    assert corpus.expected_ids(query) == set()
    assert corpus.found_ids(query) == set()


def test_bcc_recipient_finds_mail_no_header_names(corpus: Corpus) -> None:
    for bcc in BCC_ONLY:
        expected = {m.id for m in corpus.mails if bcc.lower() in m.rcpts}
        assert expected
        assert corpus.found_ids(f"to:{bcc}") == expected
        assert corpus.found_ids(f"to:{bcc.upper()}") == expected


def test_second_arrival_envelope_is_searchable(corpus: Corpus) -> None:
    found = corpus.found_ids(f"to:{LATE_BCC}")
    assert len(found) == 15
    assert corpus.found_ids("from:@forwarder.example.org") == found


def test_from_matches_envelope_sender_not_in_header(corpus: Corpus) -> None:
    bounced = {m.id for m in corpus.mails if any(s.startswith("bounces+") for s in m.senders)}
    assert bounced
    assert corpus.found_ids("from:@lists.example.com") == bounced
    one = corpus.by_id(min(bounced))
    (sender,) = (s for s in one.senders if s.startswith("bounces+"))
    assert corpus.found_ids(f"from:{sender}") == {one.id}


def test_date_bounds_at_the_utc_day_start(corpus: Corpus) -> None:
    boundary = {int(d.timestamp()): corpus.mails[i].id for i, d in enumerate(BOUNDARY_DATES)}
    midnight = boundary[int(datetime(2024, 3, 10, tzinfo=UTC).timestamp())]
    before_midnight = boundary[int(datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC).timestamp())]
    after_ids = corpus.found_ids("after:2024-03-10")
    before_ids = corpus.found_ids("before:2024-03-10")
    assert midnight in after_ids
    assert midnight not in before_ids
    assert before_midnight in before_ids
    assert before_midnight not in after_ids
    # +02:00 at 01:00 on the 10th is the 9th in UTC; -05:00 at 20:00 on the 9th is the 10th
    assert corpus.mails[2].id in before_ids
    assert corpus.mails[3].id in after_ids
    assert after_ids | before_ids == corpus.ids
    assert not after_ids & before_ids


def test_size_bounds_are_strict(corpus: Corpus) -> None:
    mail = corpus.mails[len(corpus.mails) // 2]
    size = mail.size
    assert mail.id not in corpus.found_ids(f"larger:{size}")
    assert mail.id not in corpus.found_ids(f"smaller:{size}")
    assert mail.id in corpus.found_ids(f"larger:{size - 1}")
    assert mail.id in corpus.found_ids(f"smaller:{size + 1}")
    assert corpus.found_ids(f"larger:{size - 1} smaller:{size + 1}") == {
        m.id for m in corpus.mails if m.size == size
    }


def test_id_and_msgid_pick_one_message(corpus: Corpus) -> None:
    for mail in corpus.mails[::29]:
        assert corpus.found_ids(f"id:{mail.id}") == {mail.id}
        if mail.message_id:
            assert corpus.found_ids(f"msgid:{mail.message_id}") == {mail.id}
            assert corpus.found_ids(f"msgid:<{mail.message_id}>") == {mail.id}


def test_or_binds_tighter_than_and(corpus: Corpus) -> None:
    query = "from:alice invoice OR bill"
    gmail = {
        m.id
        for m in corpus.mails
        if address_matches("alice", address_rows(m, "from"))
        and (text_matches("invoice", False, m) or text_matches("bill", False, m))
    }
    sql_style = {
        m.id
        for m in corpus.mails
        if (address_matches("alice", address_rows(m, "from")) and text_matches("invoice", False, m))
        or text_matches("bill", False, m)
    }
    assert gmail != sql_style  # the corpus tells the two readings apart
    assert corpus.found_ids(query) == gmail


def test_empty_query_matches_everything(corpus: Corpus) -> None:
    for query in ("", "   ", "\t\n"):
        page = corpus.archive.search(query, limit=10_000)
        assert page.total == N_MESSAGES
        assert {r.id for r in page.results} == corpus.ids


def test_bad_query_raises_query_error_with_position(corpus: Corpus) -> None:
    with pytest.raises(QueryError) as info:
        corpus.archive.search("invoice after:yesterday")
    assert info.value.position == len("invoice ")
    with pytest.raises(QueryError) as info:
        corpus.archive.search('subject:"unterminated')
    assert info.value.position == len("subject:")
    with pytest.raises(QueryError) as info:
        list(corpus.archive.iter_search("(invoice"))
    assert info.value.position == 0


# --- order, total and paging ---------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "has:attachment", "invoice OR bill", "-from:alice"])
def test_newest_first_order_and_total(corpus: Corpus, query: str) -> None:
    expected = [m.id for m in corpus.expected(query)]
    page = corpus.archive.search(query, limit=10_000)
    assert page.total == len(expected)
    assert [r.id for r in page.results] == expected
    dates = [int(r.date.timestamp()) for r in page.results]
    assert dates == [corpus.by_id(i).date_ts for i in expected]


@pytest.mark.parametrize(
    ("limit", "offset"), [(1, 0), (7, 0), (7, 7), (50, 280), (10, 299), (10, 300), (5, 1000)]
)
def test_paging(corpus: Corpus, limit: int, offset: int) -> None:
    expected = [m.id for m in corpus.expected("")]
    page = corpus.archive.search("", limit=limit, offset=offset)
    assert page.total == N_MESSAGES
    assert [r.id for r in page.results] == expected[offset : offset + limit]


def test_pages_cover_every_match_once(corpus: Corpus) -> None:
    query = "-invoice"
    expected = [m.id for m in corpus.expected(query)]
    seen: list[int] = []
    offset = 0
    while True:
        page = corpus.archive.search(query, limit=23, offset=offset)
        assert page.total == len(expected)
        if not page.results:
            break
        seen += [r.id for r in page.results]
        offset += 23
    assert seen == expected


def test_other_orders(corpus: Corpus) -> None:
    mails = corpus.mails
    orders = {
        "date": sorted(mails, key=lambda m: (m.date_ts, m.id)),
        "-size": sorted(mails, key=lambda m: (-m.size, -m.id)),
        "size": sorted(mails, key=lambda m: (m.size, m.id)),
    }
    for order, expected in orders.items():
        page = corpus.archive.search("", limit=10_000, order=order)
        assert [r.id for r in page.results] == [m.id for m in expected], order


def test_iter_search_yields_every_match_oldest_first(corpus: Corpus) -> None:
    query = "-has:attachment"
    expected = sorted(corpus.expected(query), key=lambda m: (m.date_ts, m.id))
    rows = list(corpus.archive.iter_search(query, batch=17))
    assert [r.id for r in rows] == [m.id for m in expected]


def test_rows_carry_the_message_metadata(corpus: Corpus) -> None:
    for mail in corpus.mails[::41]:
        (row,) = corpus.archive.search(f"id:{mail.id}").results
        assert row.size == mail.size
        assert int(row.date.timestamp()) == mail.date_ts
        assert row.subject == mail.subject
        assert row.attachment_count == len(mail.filenames)
        assert row.message_id == mail.message_id


# --- compound queries, generated -----------------------------------------------------------

ATOMS = (
    "from:alice",
    "from:@example.com",
    "from:*miller*",
    "to:audit@example.com",
    "to:@example.org",
    "to:carol",
    "cc:bob",
    "subject:report",
    '"budget meeting"',
    "invoice",
    "q*",
    "has:attachment",
    "filename:*.pdf",
    "after:2024-01-01",
    "before:2023-07-01",
    "larger:6K",
    "smaller:3K",
    "msgid:*@mx.example.org",
    "near",
)


def _queries() -> st.SearchStrategy[str]:
    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        several = st.lists(children, min_size=2, max_size=3)
        return st.one_of(
            several.map(" ".join),  # implicit AND (OR inside binds tighter)
            several.map(" OR ".join),
            children.map(lambda q: f"({q})"),
            children.map(lambda q: f"-({q})"),
            children.map(lambda q: f"NOT ({q})"),
        )

    atoms = st.sampled_from(ATOMS) | st.sampled_from(ATOMS).map(lambda a: "-" + a)
    return st.recursive(atoms, extend, max_leaves=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=_queries())
def test_generated_compound_queries_match_oracle(corpus: Corpus, query: str) -> None:
    assert corpus.found_ids(query) == corpus.expected_ids(query)


# --- SQL and FTS5 safety -------------------------------------------------------------------

# every one of these parses; each must return exactly what the oracle finds (often nothing),
# never a SQLite error, never everything
HOSTILE_QUERIES = [
    "' OR 1=1",
    '"\' OR 1=1 --"',
    "x' OR '1'='1",
    "'; DROP TABLE messages;",
    '"\'; DROP TABLE messages; --"',
    "invoice'",
    "O'Brien",
    '"a \\" b"',
    '"\\\\"',
    "NEAR",
    "NEAR(invoice bill)",
    '"NEAR(invoice bill)"',
    '"invoice NEAR bill"',
    "invoice AND bill",
    '"invoice OR bill"',
    '"invoice NOT bill"',
    "^invoice",
    '"^invoice"',
    "invoice^",
    "subject:^report",
    "*",
    "**",
    '"*"',
    "*invoice",
    "inv*oice",
    '"invoice*"',
    "subject:*",
    "subject:report*",
    '"body:invoice"',  # FTS5's column filter syntax, quoted: unquoted it is an unknown field
    "subject:body:invoice",
    '"subject : invoice"',
    "{subject}",
    '"{subject} : invoice"',
    "{subject}:invoice",
    '"(invoice)"',
    '"(invoice OR bill)"',
    '"invoice) OR (bill"',
    '"a:b"',
    "12:30",
    "http://example.com/invoice",
    "from:%",
    "from:_",
    "to:%@%",
    "from:\"x' OR '1'='1\"",
    'from:"alice OR 1=1"',
    "cc:*",
    "filename:%",
    "filename:_",
    "filename:*%*",
    "filename:\\",
    "msgid:%",
    "msgid:_*",
    "msgid:'",
    'msgid:"<a> OR 1=1"',
    'subject:"\') OR 1=1 --"',
    "';--",
    "\x00",
    "invoice\x00bill",
    "%",
    "_",
    "\\",
    "--invoice",
    "-'",
    "NOT '",
    "invoice -*",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_match_only_what_they_should(corpus: Corpus, query: str) -> None:
    expected = corpus.expected_ids(query)  # parses (else this test's list is wrong)
    found = corpus.found_ids(query)
    assert found == expected
    assert corpus.archive.stats().messages == N_MESSAGES


@pytest.mark.parametrize(
    "query",
    [
        "' OR 1=1 --",
        "'; DROP TABLE messages; --",
        "(invoice",
        "invoice)",
        "NEAR(a",
        "subject:",
        "-",
        "body:invoice",
    ],
)
def test_unparseable_hostile_queries_raise_query_error(corpus: Corpus, query: str) -> None:
    with pytest.raises(QueryError):
        corpus.archive.search(query)


def test_table_survives_hostile_queries(corpus: Corpus) -> None:
    page = corpus.archive.search("", limit=1)
    assert page.total == N_MESSAGES


@settings(max_examples=150, deadline=None)
@given(
    query=st.text(alphabet=st.sampled_from(list("ab'\"*^:()-_%\\ {}ORNTEAi@.\x00")), max_size=20)
)
def test_arbitrary_text_never_reaches_sqlite_as_syntax(corpus: Corpus, query: str) -> None:
    try:
        node = parse_query(query)
    except QueryError:
        return
    found = {r.id for r in corpus.archive.search(node, limit=10_000).results}
    assert found == {m.id for m in corpus.mails if matches(node, m)}


def test_search_accepts_a_parsed_tree(corpus: Corpus) -> None:
    node = parse_query("subject:report has:attachment")
    assert {r.id for r in corpus.archive.search(node, limit=10_000).results} == (
        corpus.expected_ids("subject:report has:attachment")
    )


# --- pages in date order: the walk along the date index and its fallback -------------------


def _pages_match_oracle(corpus: Corpus, query: str, limit: int) -> None:
    expected = corpus.expected(query)
    for order, newest in (("-date", True), ("date", False)):
        ordered = sorted(expected, key=lambda m: (m.date_ts, m.id), reverse=newest)
        for offset in sorted({0, 1, 7, max(0, len(ordered) - limit)}):
            page = corpus.archive.search(query, limit=limit, offset=offset, order=order)
            want = [m.id for m in ordered[offset : offset + limit]]
            assert [r.id for r in page.results] == want, (query, order, offset)
            assert page.total == len(ordered), query


def test_pages_of_frequent_words_in_date_order(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    from postfix_archiver.catalog.sqlite import SqliteCatalog

    walked: list[str] = []
    walk = SqliteCatalog._newest_first

    def spy(self: SqliteCatalog, *args: object, **kwargs: object) -> object:
        rows = walk(self, *args, **kwargs)  # type: ignore[arg-type]
        if rows is not None:
            walked.append(str(args[0]))
        return rows

    monkeypatch.setattr(SqliteCatalog, "_newest_first", spy)
    frequent = [w for w in WORDS if len(corpus.expected_ids(w)) >= 120]
    assert frequent, "the corpus has no word in 120 of its messages"
    for word in frequent[:6]:
        _pages_match_oracle(corpus, word, 3)
        other = next(w for w in WORDS if w != word)
        _pages_match_oracle(corpus, f"{word} -{other}", 3)
    if isinstance(corpus.archive.catalog, SqliteCatalog):  # SQLite's own plan for these pages
        assert walked, "no page was found by walking the date index"


def test_a_walk_that_finds_too_few_falls_back_to_the_sort(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    import postfix_archiver.catalog.sqlite as sqlite_catalog

    # walk only 100 messages: oldest first, the 100 oldest are all before the bound
    monkeypatch.setattr(sqlite_catalog, "DATE_WALK_MARGIN", 0)
    stamps = sorted(m.date_ts for m in corpus.mails)
    middle = datetime.fromtimestamp(stamps[len(stamps) // 2], UTC) + timedelta(days=1)
    query = f"after:{middle:%Y-%m-%d}"
    assert len(corpus.expected_ids(query)) > 100
    _pages_match_oracle(corpus, query, 5)


def test_hundreds_of_negated_words(corpus: Corpus) -> None:
    common = max(WORDS, key=lambda w: len(corpus.expected_ids(w)))
    others = [w for w in WORDS if w != common][:5]
    filler = [f"-zz{n}" for n in range(295)]
    query = " ".join([common, *(f"-{w}" for w in others), *filler])
    assert corpus.found_ids(query) == corpus.expected_ids(query)
    assert corpus.found_ids(query)


# the SQLite catalog's own plans: these run on its corpus alone (a skip is not a pass)
_sqlite_corpus = pytest.mark.parametrize("corpus", ["sqlite"], indirect=True)


@_sqlite_corpus
def test_a_walk_that_looks_each_message_up_finds_the_same_pages(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # at a million messages a common word's walk checks each message walked over in the
    # index by itself (its list of matches would be longer than the walk): the pages and
    # totals stay the oracle's
    import postfix_archiver.catalog.sqlite as sqlite_catalog

    monkeypatch.setattr(sqlite_catalog, "LOOKUP_COST", 0)  # always looked up
    walked = _walks_recorded(monkeypatch)
    frequent = [w for w in WORDS if len(corpus.expected_ids(w)) >= 120]
    for word in frequent[:4]:
        _pages_match_oracle(corpus, word, 3)
        other = next(w for w in WORDS if w != word)
        _pages_match_oracle(corpus, f"{word} -{other}", 3)
        _pages_match_oracle(corpus, f"subject:{word} OR {other}", 3)
    assert walked, "no page was found by walking the date index"


@_sqlite_corpus
def test_pages_of_rarer_words_are_walked_too(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a phrase in a few percent of the archive: its walk is many times longer than its list of
    # matches, yet checks each message's id alone where sorting reads every match's row (at
    # a million messages, 60 ms for a word in 1%): walked, with the oracle's pages and totals
    walked = _walks_recorded(monkeypatch)
    pairs = [f"{a} {b}" for a, b in itertools.pairwise(WORDS)]
    rarer = [q for q in [*(f'"{p}"' for p in PHRASES), *pairs] if corpus.expected_ids(q)]
    rarer = [q for q in rarer if 20 <= len(corpus.expected_ids(q)) <= 80]
    assert len(rarer) >= 4, "the corpus has no phrase or pair in 20 to 80 of its messages"
    for query in rarer[:6]:
        walked.clear()
        _pages_match_oracle(corpus, query, 3)
        assert walked, f"no page of {query} was found by walking the date index"
        _pages_match_oracle(corpus, f"{query} -{WORDS[-1]}", 3)
        _pages_match_oracle(corpus, f"{query} has:attachment", 3)


@_sqlite_corpus
@pytest.mark.parametrize("few", [0, 5, 2000])
@pytest.mark.parametrize(
    "query",
    [
        "subject:report has:attachment",
        "invoice",
        "from:alice invoice OR bill -draft",
        "has:attachment -filename:*.pdf",
        '"budget meeting"',
        "-invoice",
    ],
)
def test_pages_and_totals_with_few_or_many_matches(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch, few: int, query: str
) -> None:
    # up to FEW_MATCHES matches are listed once (the total and the page from that list),
    # more are counted and their page found apart: both give the oracle's pages
    import postfix_archiver.catalog.sqlite as sqlite_catalog

    monkeypatch.setattr(sqlite_catalog, "FEW_MATCHES", few)
    assert 8 < len(corpus.expected_ids(query)) < N_MESSAGES, query
    _pages_match_oracle(corpus, query, 7)
    ordered = corpus.expected(query)
    for order, key in (("size", lambda m: (m.size, m.id)), ("-size", lambda m: (-m.size, -m.id))):
        page = corpus.archive.search(query, limit=5, offset=3, order=order)
        want = [m.id for m in sorted(ordered, key=key)[3:8]]
        assert [r.id for r in page.results] == want, (query, order)
        assert page.total == len(ordered), (query, order)


def _walks_recorded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries whose page the SQLite catalog found by walking the date index, as they
    happen."""
    import postfix_archiver.catalog.sqlite as sqlite_catalog

    walked: list[str] = []
    walk = sqlite_catalog.SqliteCatalog._newest_first

    def spy(self: sqlite_catalog.SqliteCatalog, *args: object, **kwargs: object) -> object:
        rows = walk(self, *args, **kwargs)  # type: ignore[arg-type]
        if rows is not None:
            walked.append(str(args[0]))
        return rows

    monkeypatch.setattr(sqlite_catalog.SqliteCatalog, "_newest_first", spy)
    return walked
