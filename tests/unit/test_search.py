"""Unit tests for the query-language parser (``postfix_archiver.search.parse_query``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postfix_archiver.errors import QueryError
from postfix_archiver.search import (
    FIELDS,
    MAX_DEPTH,
    MAX_INT,
    MAX_TERMS,
    ORDERS,
    STRING_FIELDS,
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
    parse_int,
    parse_query,
)

NODE_TYPES = (All, Text, Field, DateBound, SizeBound, HasAttachment, IdIs, Not, And, Or)


def T(value: str, phrase: bool = False) -> Text:
    return Text(value, phrase)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


def error_of(query: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    return info.value


# --- empty queries and free text ---------------------------------------------------------


@pytest.mark.parametrize("query", ["", " ", "   \t\n ", "\u00a0\u2003"])
def test_empty_or_whitespace_is_all(query: str) -> None:
    assert parse_query(query) == All()


def test_single_word_is_bare_text() -> None:
    assert parse_query("invoice") == T("invoice")


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_query("  invoice \n") == T("invoice")


def test_words_are_anded_in_order() -> None:
    assert parse_query("a  b\tc") == And((T("a"), T("b"), T("c")))


def test_unicode_words() -> None:
    assert parse_query("größe café 日本語 Ελλάδα") == And(
        (T("größe"), T("café"), T("日本語"), T("Ελλάδα"))
    )


def test_unicode_whitespace_separates_words() -> None:
    assert parse_query("a\u3000b\u00a0c") == And((T("a"), T("b"), T("c")))


def test_case_of_free_words_is_kept() -> None:
    assert parse_query("Invoice") == T("Invoice")


@pytest.mark.parametrize(
    "word", ["http://x.example/a?b=c", "12:30", "fe80::1", ":x", "re:", "e-mail", "a*b"]
)
def test_words_that_are_not_field_terms_stay_free_text(word: str) -> None:
    assert parse_query(word) == T(word)


def test_only_the_prefix_before_the_first_colon_decides() -> None:
    assert parse_query("x1:from:alice") == T("x1:from:alice")


@pytest.mark.parametrize("word", ["or", "Or", "not", "Not", "AND", "and", "ORDER", "NOTE"])
def test_operator_lookalikes_are_words(word: str) -> None:
    assert parse_query(f"a {word} b") == And((T("a"), T(word), T("b")))


def test_backslash_outside_quotes_is_literal() -> None:
    assert parse_query(r"C:\temp") == T(r"C:\temp")


# --- quoting -------------------------------------------------------------------------------


def test_quoted_phrase() -> None:
    assert parse_query('"q3 report"') == T("q3 report", phrase=True)


def test_quoted_single_word_is_still_a_phrase() -> None:
    assert parse_query('"invoice"') == T("invoice", phrase=True)


def test_phrase_keeps_inner_whitespace_and_operators() -> None:
    assert parse_query('"a  OR (b) -c NOT from:x"') == T("a  OR (b) -c NOT from:x", phrase=True)


def test_phrase_among_words() -> None:
    assert parse_query('a "b c" d') == And((T("a"), T("b c", phrase=True), T("d")))


def test_escaped_quote_inside_phrase() -> None:
    assert parse_query(r'"say \"hi\""') == T('say "hi"', phrase=True)


def test_escaped_backslash_inside_phrase() -> None:
    assert parse_query(r'"ends with \\"') == T("ends with \\", phrase=True)


def test_other_backslashes_inside_phrase_are_kept() -> None:
    assert parse_query(r'"C:\temp\n"') == T(r"C:\temp\n", phrase=True)


def test_quote_ends_a_bare_word() -> None:
    assert parse_query('foo"bar baz"qux') == And((T("foo"), T("bar baz", phrase=True), T("qux")))


def test_unicode_phrase() -> None:
    assert parse_query('"grüße aus Köln"') == T("grüße aus Köln", phrase=True)


# --- string fields -------------------------------------------------------------------------


@pytest.mark.parametrize("name", STRING_FIELDS)
def test_each_string_field(name: str) -> None:
    assert parse_query(f"{name}:value.x") == Field(name, "value.x")


@pytest.mark.parametrize("name", STRING_FIELDS)
def test_each_string_field_quoted(name: str) -> None:
    assert parse_query(f'{name}:"two words"') == Field(name, "two words", phrase=True)


@pytest.mark.parametrize("prefix", ["FROM", "From", "fRoM"])
def test_field_names_are_case_insensitive(prefix: str) -> None:
    assert parse_query(f"{prefix}:Alice") == Field("from", "Alice")


def test_field_value_keeps_everything_after_the_first_colon() -> None:
    assert parse_query("msgid:<a:b@example.com>") == Field("msgid", "<a:b@example.com>")


def test_field_value_keeps_glob_star() -> None:
    assert parse_query("filename:*.pdf") == Field("filename", "*.pdf")


def test_field_value_with_escaped_quote() -> None:
    assert parse_query(r'subject:"the \"plan\""') == Field("subject", 'the "plan"', phrase=True)


def test_field_value_may_start_with_dash() -> None:
    assert parse_query("subject:-draft") == Field("subject", "-draft")


def test_unicode_field_value() -> None:
    assert parse_query("from:jürgen@bücher.example") == Field("from", "jürgen@bücher.example")


def test_unknown_field_with_quoted_value_is_an_error() -> None:
    err = error_of('a foo:"a b"')
    assert err.position == 2
    assert err.reason.startswith("unknown field 'foo:'")


def test_known_fields_are_exactly_the_documented_ones() -> None:
    assert set(FIELDS) == {
        "from",
        "to",
        "cc",
        "subject",
        "filename",
        "attachment",
        "msgid",
        "id",
        "after",
        "before",
        "larger",
        "smaller",
        "has",
        "retained-until",
        "date",
    }


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-31", utc(2024, 1, 31)),
        ("2024-01-31T10:00", utc(2024, 1, 31, 10, 0)),
        ("2024-01-31T10:00:59", utc(2024, 1, 31, 10, 0, 59)),
        ("2024-01-31T10:00Z", utc(2024, 1, 31, 10, 0)),
        ("2024-01-31T10:00:30Z", utc(2024, 1, 31, 10, 0, 30)),
        ("2024-01-31t10:00z", utc(2024, 1, 31, 10, 0)),
        ("2024-01-31T10:00+01:00", utc(2024, 1, 31, 9, 0)),
        ("2024-01-31T10:00:00-05:30", utc(2024, 1, 31, 15, 30)),
        ("2024-01-01T00:30+01:00", utc(2023, 12, 31, 23, 30)),
        ("2024-02-29", utc(2024, 2, 29)),
    ],
)
def test_after_dates(value: str, expected: datetime) -> None:
    node = parse_query(f"after:{value}")
    assert node == DateBound("after", expected)
    assert isinstance(node, DateBound)
    assert node.value.utcoffset() is not None
    assert node.value.utcoffset() == expected.utcoffset()


def test_before_date() -> None:
    assert parse_query("before:2024-02-01") == DateBound("before", utc(2024, 2, 1))


def test_date_result_is_utc_even_with_offset() -> None:
    node = parse_query("before:2024-01-31T10:00+02:00")
    assert isinstance(node, DateBound)
    assert node.value.tzinfo is UTC


def test_quoted_date_is_accepted() -> None:
    assert parse_query('after:"2024-01-31"') == DateBound("after", utc(2024, 1, 31))


@pytest.mark.parametrize(
    "value",
    [
        "2024-1-31",
        "2024-01-31T",
        "2024-01-31T10",
        "2024-01-31T10:00:00.5",
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-01-31T24:00",
        "2024-01-31T10:60",
        "2024-01-31T10:00+24:00",
        "2024-01-31T10:00+0100",
        "0000-01-01",
        "0001-01-01T00:00+01:00",
        "9999-12-31T23:00-02:00",
        "20240131",
        "2024-W05",
        "31.01.2024",
        "yesterday",
        "２０２４-01-31",
        # issue 9: hostile dates answer a query error, never a 500
        "99999-01-01",
        "0000-00-00",
        "2024-13-45",
        "２０２４-01-01",
        "2024-01-01T10:00+99:99",
    ],
)
def test_bad_dates(value: str) -> None:
    err = error_of(f"x after:{value}")
    assert err.position == 2
    assert "after: needs a date like 2024-01-31" in err.reason


def test_quoted_date_with_a_space_is_an_error() -> None:
    assert error_of('after:"2024-01-31 10:00"').reason.startswith("after: needs a date")


def test_bad_before_date_names_before() -> None:
    err = error_of("before:soon")
    assert err.position == 0
    assert err.reason.startswith("before: needs a date")


# --- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("1500", 1500),
        ("007", 7),
        ("10B", 10),
        ("1K", 1024),
        ("1k", 1024),
        ("2KB", 2048),
        ("2kb", 2048),
        ("1M", 1048576),
        ("1mb", 1048576),
        ("3G", 3 * 1024**3),
        ("1Gb", 1024**3),
    ],
)
def test_larger_sizes(value: str, expected: int) -> None:
    assert parse_query(f"larger:{value}") == SizeBound("larger", expected)


def test_smaller_size() -> None:
    assert parse_query("smaller:500K") == SizeBound("smaller", 512000)


def test_largest_size_that_fits_64_bits() -> None:
    assert parse_query(f"larger:{2**63 - 1}") == SizeBound("larger", 2**63 - 1)


@pytest.mark.parametrize(
    "value",
    [
        "1T",
        "1.5M",
        "M",
        "K1",
        "-1",
        "+1",
        "1MiB",
        "1KK",
        "1_000",
        "١٢٣",
        "1\u212a",  # KELVIN SIGN, which case-insensitive Unicode matching takes for K
        str(2**63),
        "9" * 30,
        "9999999999G",
    ],
)
def test_bad_sizes(value: str) -> None:
    err = error_of(f"ab larger:{value}")
    assert err.position == 3
    assert err.reason.startswith("larger: needs a size")


def test_bad_smaller_size_names_smaller() -> None:
    assert error_of("smaller:big").reason.startswith("smaller: needs a size")


# --- has: and id: --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["attachment", "attachments", "Attachment", "ATTACHMENTS"])
def test_has_attachment(value: str) -> None:
    assert parse_query(f"has:{value}") == HasAttachment()


@pytest.mark.parametrize("value", ["file", "attach", "attachmentx", "star", "attachment*"])
def test_has_anything_else_is_an_error(value: str) -> None:
    err = error_of(f"a has:{value}")
    assert err.position == 2
    assert "has:attachment" in err.reason


@pytest.mark.parametrize(("value", "expected"), [("42", 42), ("1", 1), ("0042", 42)])
def test_id(value: str, expected: int) -> None:
    assert parse_query(f"id:{value}") == IdIs(expected)


def test_largest_id() -> None:
    assert parse_query(f"id:{2**63 - 1}") == IdIs(2**63 - 1)


@pytest.mark.parametrize("value", ["0", "000", "-1", "+1", "1.0", "abc", "4x", "١", str(2**63)])
def test_bad_ids(value: str) -> None:
    err = error_of(f"a id:{value}")
    assert err.position == 2
    assert "positive whole number" in err.reason


def test_empty_field_value_is_an_error_for_every_field() -> None:
    for name in FIELDS:
        err = error_of(f"ab {name}:")
        assert err.position == 3, name
        assert err.reason.startswith(f"{name}: needs a value"), name


@pytest.mark.parametrize("query", ['from:""', 'from:"   "', "from: alice"])
def test_blank_field_values_are_errors(query: str) -> None:
    err = error_of(query)
    assert err.position == 0
    assert "from: needs a value" in err.reason


# --- boolean structure ---------------------------------------------------------------------


def test_or() -> None:
    assert parse_query("a OR b") == Or((T("a"), T("b")))


def test_or_chain_is_flat() -> None:
    assert parse_query("a OR b OR c") == Or((T("a"), T("b"), T("c")))


def test_or_binds_tighter_than_and() -> None:
    assert parse_query("a b OR c d") == And((T("a"), Or((T("b"), T("c"))), T("d")))


def test_or_binds_tighter_than_and_on_one_side() -> None:
    assert parse_query("a OR b c") == And((Or((T("a"), T("b"))), T("c")))


def test_parentheses_group_a_conjunction_inside_or() -> None:
    assert parse_query("(a b) OR c") == Or((And((T("a"), T("b"))), T("c")))


def test_parentheses_override_precedence() -> None:
    assert parse_query("(a OR b) c") == And((Or((T("a"), T("b"))), T("c")))


def test_parenthesised_single_term_is_unwrapped() -> None:
    assert parse_query("(a)") == T("a")
    assert parse_query("((a))") == T("a")


def test_parentheses_end_words() -> None:
    assert parse_query("(a OR b)c") == And((Or((T("a"), T("b"))), T("c")))


def test_nested_and_is_flattened() -> None:
    assert parse_query("a (b (c d)) e") == And((T("a"), T("b"), T("c"), T("d"), T("e")))


def test_nested_or_is_flattened() -> None:
    assert parse_query("(a OR b) OR (c OR (d OR e))") == Or(
        (T("a"), T("b"), T("c"), T("d"), T("e"))
    )


def test_and_inside_or_is_not_flattened_into_it() -> None:
    assert parse_query("(a b) OR c") == Or((And((T("a"), T("b"))), T("c")))


def test_or_inside_and_is_kept() -> None:
    assert parse_query("a (b OR c)") == And((T("a"), Or((T("b"), T("c")))))


def test_minus_negates() -> None:
    assert parse_query("-draft") == Not(T("draft"))


def test_not_negates() -> None:
    assert parse_query("NOT draft") == Not(T("draft"))


def test_negation_binds_to_one_term() -> None:
    assert parse_query("-a b") == And((Not(T("a")), T("b")))
    assert parse_query("NOT a b") == And((Not(T("a")), T("b")))


def test_negation_binds_tighter_than_or() -> None:
    assert parse_query("a OR -b") == Or((T("a"), Not(T("b"))))


def test_negated_group() -> None:
    assert parse_query("-(a OR b)") == Not(Or((T("a"), T("b"))))
    assert parse_query("NOT (a b)") == Not(And((T("a"), T("b"))))
    assert parse_query("NOT(a)") == Not(T("a"))


def test_negated_phrase_and_field() -> None:
    assert parse_query('-"q3 report" -from:bob') == And(
        (Not(T("q3 report", phrase=True)), Not(Field("from", "bob")))
    )


def test_negated_quoted_field() -> None:
    assert parse_query('-subject:"a b"') == Not(Field("subject", "a b", phrase=True))


def test_double_negation_is_kept() -> None:
    assert parse_query("--a") == Not(Not(T("a")))
    assert parse_query("NOT -a") == Not(Not(T("a")))
    assert parse_query("NOT NOT a") == Not(Not(T("a")))


def test_dash_inside_a_word_is_not_negation() -> None:
    assert parse_query("e-mail x-") == And((T("e-mail"), T("x-")))


def test_negative_number_is_negation() -> None:
    assert parse_query("-5") == Not(T("5"))


def test_design_example_query() -> None:
    query = (
        'from:alice@example.com to:bob subject:"q3 report" after:2024-01-01 before:2024-02-01 '
        "has:attachment filename:*.pdf larger:1M invoice OR bill -draft"
    )
    # OR binds tighter than the implicit AND: the filters apply to both words
    assert parse_query(query) == And(
        (
            Field("from", "alice@example.com"),
            Field("to", "bob"),
            Field("subject", "q3 report", phrase=True),
            DateBound("after", utc(2024, 1, 1)),
            DateBound("before", utc(2024, 2, 1)),
            HasAttachment(),
            Field("filename", "*.pdf"),
            SizeBound("larger", 1048576),
            Or((T("invoice"), T("bill"))),
            Not(T("draft")),
        )
    )


def test_design_example_with_explicit_grouping() -> None:
    assert parse_query("from:alice (invoice OR bill) -draft") == And(
        (Field("from", "alice"), Or((T("invoice"), T("bill"))), Not(T("draft")))
    )


def test_nesting_up_to_the_limit_is_fine() -> None:
    depth = MAX_DEPTH
    assert parse_query("(" * depth + "a" + ")" * depth) == T("a")
    node = parse_query("-" * depth + "a")
    for _ in range(depth):
        assert isinstance(node, Not)
        node = node.child
    assert node == T("a")


# --- errors and their positions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        # lone or dangling negation
        ("-", 0, "'-' must be followed directly"),
        ("a -", 2, "'-' must be followed directly"),
        ("a - b", 2, "'-' must be followed directly"),
        ("-)", 0, "'-' must be followed by the term"),
        ("(a -)", 3, "'-' must be followed by the term"),
        ("a -OR b", 2, "'-' must be followed by the term"),
        ("NOT", 0, "NOT must be followed"),
        ("a NOT", 2, "NOT must be followed"),
        ("a NOT OR b", 2, "NOT must be followed"),
        ("(NOT) a", 1, "NOT must be followed"),
        ("-NOT", 1, "NOT must be followed"),
        # misplaced OR
        ("OR", 0, "OR must come between two terms"),
        ("OR a", 0, "OR must come between two terms"),
        ("  OR a", 2, "OR must come between two terms"),
        ("(OR a)", 1, "OR must come between two terms"),
        ("a OR", 2, "OR must be followed by a term"),
        ("a OR  ", 2, "OR must be followed by a term"),
        ("a OR OR b", 2, "OR must be followed by a term"),
        ("(a OR) b", 3, "OR must be followed by a term"),
        ("a OR )", 2, "OR must be followed by a term"),
        # parentheses
        ("(", 0, "unclosed '('"),
        ("(a", 0, "unclosed '('"),
        ("a (b (c)", 2, "unclosed '('"),
        ("-(", 1, "unclosed '('"),
        (")", 0, "unmatched ')'"),
        ("a)", 1, "unmatched ')'"),
        ("(a))", 3, "unmatched ')'"),
        ("a OR b) c", 6, "unmatched ')'"),
        ("()", 0, "empty parentheses"),
        ("a ( ) b", 2, "empty parentheses"),
        # quotes
        ('"', 0, "unterminated quote"),
        ('a "b c', 2, "unterminated quote"),
        ('"a\\"', 0, "unterminated quote"),
        ('subject:"q3 report', 8, "unterminated quote"),
        ('"a" "b', 4, "unterminated quote"),
        ('""', 0, "empty phrase"),
        ('a " " b', 2, "empty phrase"),
        # field values
        ("from:", 0, "from: needs a value, like from:alice@example.com"),
        ("a to: b", 2, "to: needs a value"),
        ("x (cc:)", 3, "cc: needs a value"),
        ("after:2024-13-01", 0, "after: needs a date like 2024-01-31"),
        ("a -before:tomorrow", 3, "before: needs a date"),
        ("larger:1T", 0, "larger: needs a size"),
        ("(smaller:x)", 1, "smaller: needs a size"),
        ("has:pdf", 0, "has: only has:attachment is supported"),
        ("id:0", 0, "id: needs a positive whole number"),
        ("NOT id:x", 4, "id: needs a positive whole number"),
    ],
)
def test_error_position_and_reason(query: str, position: int, reason: str) -> None:
    err = error_of(query)
    assert err.position == position
    assert reason in err.reason
    assert err.query == query


def test_error_message_is_one_based_and_names_the_reason() -> None:
    err = error_of("a OR")
    assert str(err) == "bad query at position 3: OR must be followed by a term"


def test_error_quotes_the_bad_value() -> None:
    assert "'2024-13-01'" in error_of("after:2024-13-01").reason


def test_too_deep_parentheses() -> None:
    depth = MAX_DEPTH + 1
    err = error_of("(" * depth + "a" + ")" * depth)
    assert err.position == MAX_DEPTH
    assert "too deeply nested" in err.reason


def test_too_many_negations() -> None:
    err = error_of("x " + "-" * (MAX_DEPTH + 1) + "a")
    assert err.position == 2 + MAX_DEPTH
    assert "too deeply nested" in err.reason


def test_parentheses_and_negations_count_together() -> None:
    half = MAX_DEPTH // 2
    assert "too deeply nested" in error_of("(-" * half + "(a" + ")" * (half + 1)).reason


def test_very_deep_nesting_raises_query_error_not_recursion_error() -> None:
    assert "too deeply nested" in error_of("(" * 5000 + "a" + ")" * 5000).reason
    assert "too deeply nested" in error_of("NOT " * 5000 + "a").reason


def test_long_flat_query_up_to_the_term_limit_is_fine() -> None:
    node = parse_query(" ".join(f"w{i}" for i in range(MAX_TERMS)))
    assert isinstance(node, And)
    assert len(node.children) == MAX_TERMS


def test_too_many_terms() -> None:
    words = [f"w{i}" for i in range(MAX_TERMS + 1)]
    err = error_of(" ".join(words))
    assert err.position == len(" ".join(words[:-1])) + 1  # the first term past the limit
    assert err.reason == (
        f"too many terms: at most {MAX_TERMS} words, phrases and field:value terms"
    )


@pytest.mark.parametrize(
    "query",
    [
        "-a " * 1333,  # issue 9: within the API's 4000 characters, too deep for SQLite
        " OR ".join(["from:x"] * (MAX_TERMS + 1)),
        "(" + "a " * (MAX_TERMS + 1) + ")",
        '"a" ' * (MAX_TERMS + 1),
        "-(a b) " * (MAX_TERMS // 2 + 1),
    ],
)
def test_every_kind_of_term_counts_toward_the_limit(query: str) -> None:
    assert error_of(query).reason.startswith("too many terms")


# --- numbers users type (ids, offsets, limits) ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("0", 0), ("42", 42), ("007", 7), (str(MAX_INT), MAX_INT)]
)
def test_parse_int(text: str, expected: int) -> None:
    assert parse_int(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "²",  # str.isdigit() says yes, int() says no
        "١٢",  # int() reads Arabic-Indic digits
        "４２",
        "1_000",
        " 42",
        "42\n",
        "-1",
        "+1",
        "1.0",
        str(MAX_INT + 1),
        "9" * 20,
        "9" * 5000,  # int() refuses past 4300 digits
        "0" * 30 + "1" * 20,
    ],
)
def test_parse_int_refuses(text: str) -> None:
    assert parse_int(text) is None


def test_orders_include_sender_and_default_first() -> None:
    assert ORDERS[0] == "-date"
    assert set(ORDERS) == {"-date", "date", "-size", "size", "subject", "-subject", "from", "-from"}


# --- properties ----------------------------------------------------------------------------


def check_tree(node: Node) -> None:
    """Structural invariants every parsed tree keeps."""
    assert isinstance(node, NODE_TYPES)
    if isinstance(node, And | Or):
        assert len(node.children) >= 2
        for child in node.children:
            assert not isinstance(child, type(node)), "nested And/Or must be flattened"
            assert not isinstance(child, All)
            check_tree(child)
    elif isinstance(node, Not):
        assert not isinstance(node.child, All)
        check_tree(node.child)
    elif isinstance(node, Text | Field):
        assert node.value.strip()
    elif isinstance(node, DateBound):
        assert node.value.tzinfo is UTC


def parse_or_error(text: str) -> Node | QueryError:
    """The tree, or the QueryError; any other exception propagates and fails the test."""
    try:
        return parse_query(text)
    except QueryError as err:
        return err


QUERY_ALPHABET = st.sampled_from(
    [" ", "(", ")", '"', "\\", "-", ":", "*", "a", "é", "1", "OR", "NOT", "K"]
    + [f"{name}:" for name in FIELDS]
    + ["2024-01-31", "T10:00", "+01:00", "attachment"]
)


@given(st.text())
def test_arbitrary_text_parses_or_raises_query_error(text: str) -> None:
    result = parse_or_error(text)
    if isinstance(result, QueryError):
        assert 0 <= result.position <= len(text)
        assert result.query == text
        assert result.reason
    else:
        check_tree(result)


@given(st.lists(QUERY_ALPHABET).map("".join))
def test_query_like_text_parses_or_raises_query_error(text: str) -> None:
    result = parse_or_error(text)
    if isinstance(result, QueryError):
        assert 0 <= result.position <= len(text)
    else:
        check_tree(result)


WORD = st.text(
    st.characters(
        blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), blacklist_characters='()"-:'
    ),
    min_size=1,
).filter(lambda w: w not in ("OR", "NOT") and not any(c.isspace() for c in w))


@given(st.lists(WORD, min_size=1, max_size=8))
def test_plain_words_are_anded_text(words: list[str]) -> None:
    expected = [T(w) for w in words]
    assert parse_query(" ".join(words)) == (
        expected[0] if len(words) == 1 else And(tuple(expected))
    )


@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_any_phrase_round_trips_through_escaping(phrase: str) -> None:
    quoted = '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert parse_query(quoted) == T(phrase, phrase=True)
    assert parse_query("subject:" + quoted) == Field("subject", phrase, phrase=True)
