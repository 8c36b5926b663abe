"""Words that look like ``field:value``: unknown fields are errors with a suggestion, words
with colons that are not field-like stay text, ``filename:pdf`` is the extension and
``date:`` is a year, month or day (``postfix_archiver.search``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postfix_archiver.errors import QueryError
from postfix_archiver.search import And, DateBound, Field, Not, Or, Text, parse_query


def error_of(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    return info.value


def span(start: datetime, end: datetime) -> And:
    return And((DateBound("after", start), DateBound("before", end)))


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


# --- unknown fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "hint"),
    [
        ("is:unread", 0, "no read, unread or starred state"),
        ("invoice in:inbox", 8, "no folders or labels"),
        ("foo:bar", 0, "fields are from, to, cc,"),
        ("a form:alice", 2, "did you mean from:?"),
        ("subjet:hi", 0, "did you mean subject:?"),
        ("FROMM:x", 0, "did you mean from:?"),
        ("retained_until:<2030", 0, "did you mean retained-until:?"),
        ("on:2024-01-31", 0, "did you mean date:?"),
        ("bcc:bob", 0, "Bcc included"),
        ("x (a OR -zz:1)", 9, "fields are"),
        ('foo:"a b"', 0, "fields are"),
    ],
)
def test_unknown_field_is_an_error_naming_it_with_a_hint(
    query: str, position: int, hint: str
) -> None:
    err = error_of(query)
    assert err.position == position
    assert err.reason.startswith("unknown field '"), err.reason
    assert hint in err.reason
    assert "quote it" in err.reason


def test_the_error_names_the_field_and_says_how_to_search_the_text() -> None:
    assert error_of("is:unread").reason == (
        "unknown field 'is:' (the archive keeps no read, unread or starred state); "
        'to search for the text, quote it: "is:unread"'
    )


def test_a_huge_unknown_field_is_cut_in_the_message() -> None:
    err = error_of("a" * 5000 + ":b")
    assert len(err.reason) < 400


@pytest.mark.parametrize("query", ['"is:unread"', '"foo:bar"', 'subject:"is:unread"'])
def test_quoted_text_with_a_colon_is_literal(query: str) -> None:
    node = parse_query(query)
    assert isinstance(node, Text | Field)
    assert node.value == "is:unread" or node.value == "foo:bar"


@pytest.mark.parametrize(
    "word",
    [
        "http://x.example/a",
        "https://x.example",
        "ftp://x",
        "10:30",
        "12:30:15",
        "fe80::1",
        "2001:db8::1",
        "::1",
        "abcd::1",
        "Re:",
        "Note:",
        "Re:hello",
        "AW:Angebot",
        "Fwd:report",
        "mailto:bob@example.com",
        "urn:isbn:123",
        "x1:y",
        "über:x",
        ":x",
        "C:\\temp",
        "x:/y",
    ],
)
def test_words_with_colons_that_are_not_field_like_stay_text(word: str) -> None:
    assert parse_query(word) == Text(word)


def test_a_trailing_colon_word_stays_text_before_a_free_word() -> None:
    assert parse_query("Re: hello") == And((Text("Re:"), Text("hello")))


# --- filename: the extension ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("filename:pdf", "*.pdf"),
        ("filename:PDF", "*.PDF"),
        ("filename:tar", "*.tar"),
        ("filename:*.pdf", "*.pdf"),
        ("filename:report.pdf", "report.pdf"),
        ("filename:report*", "report*"),
    ],
)
def test_filename_without_dot_or_wildcard_is_the_extension(query: str, value: str) -> None:
    assert parse_query(query) == Field("filename", value)


def test_quoted_filename_is_the_whole_name() -> None:
    assert parse_query('filename:"pdf"') == Field("filename", "pdf", phrase=True)


# --- date: a year, month or day ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("date:2002", utc(2002, 1, 1), utc(2003, 1, 1)),
        ("date:2002-12", utc(2002, 12, 1), utc(2003, 1, 1)),
        ("date:2024-02", utc(2024, 2, 1), utc(2024, 3, 1)),
        ("date:2024-02-29", utc(2024, 2, 29), utc(2024, 3, 1)),
        ("DATE:0001", utc(1, 1, 1), utc(2, 1, 1)),
    ],
)
def test_date_is_a_range(query: str, start: datetime, end: datetime) -> None:
    assert parse_query(query) == span(start, end)


def test_date_of_the_last_year_has_no_end() -> None:
    assert parse_query("date:9999") == DateBound("after", utc(9999, 1, 1))
    assert parse_query("date:9999-12-31") == DateBound("after", utc(9999, 12, 31))


def test_date_combines_like_any_term() -> None:
    a, b = span(utc(2002, 1, 1), utc(2003, 1, 1)), span(utc(2004, 1, 1), utc(2005, 1, 1))
    assert parse_query("date:2002 OR date:2004") == Or((a, b))
    assert parse_query("-date:2002") == Not(a)
    assert parse_query("x date:2002") == And((Text("x"), *a.children))


@pytest.mark.parametrize(
    "value",
    [
        "0000",
        "02",
        "20020",
        "2002-13",
        "2002-00",
        "2002-02-30",
        "2002-02-02T10:00",
        "２００２",
        "99999-01-01",
        "yesterday",
        "2002-1",
        "-2002",
    ],
)
def test_bad_dates_are_errors(value: str) -> None:
    err = error_of(f"a date:{value}")
    assert err.position == 2
    assert err.reason.startswith("date: needs a year, month or day"), err.reason


def test_a_stored_query_reads_an_unknown_field_as_the_word_it_was() -> None:
    # holds saved by an earlier version: their meaning must not change under them
    assert parse_query("is:unread x", stored=True) == And((Text("is:unread"), Text("x")))
