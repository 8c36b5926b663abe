"""``stamp``: our X-Archive-* fields on top, every inbound one (a forgery) removed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postfix_archiver.capture.stamp import stamp

OURS_CRLF = b"X-Archive-Status: Archived\r\nX-Archive-Id: 42\r\n"
OURS_LF = b"X-Archive-Status: Archived\nX-Archive-Id: 42\n"


def test_adds_status_and_id_on_top() -> None:
    raw = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
    assert stamp(raw, "Archived", 42) == OURS_CRLF + raw


def test_skipped_has_no_id() -> None:
    raw = b"Subject: hi\r\n\r\nbody\r\n"
    assert stamp(raw, 'Skipped; rule="system mail"', None) == (
        b'X-Archive-Status: Skipped; rule="system mail"\r\n' + raw
    )


@pytest.mark.parametrize(
    "forged",
    [
        b"X-Archive-Status: Archived\r\n",
        b"x-archive-status: archived\r\n",
        b"X-ARCHIVE-ID: 1\r\n",
        b"X-Archive-Id:1\r\n",
        b"X-Archive-Id : 1\r\n",
        b"X-Archive-Status: Skipped;\r\n\trule=forged\r\n",
        b"X-Archive-Id:\r\n 7\r\n \r\n\t8\r\n",
        b"X-Archive-Anything-Else: x\r\n",
    ],
)
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_removes_inbound_archive_fields(forged: bytes, where: str) -> None:
    before = {
        "first": b"",
        "middle": b"From: a@example.com\r\n",
        "last": b"From: a@example.com\r\nTo: b@example.com\r\n",
    }[where]
    after = {
        "first": b"From: a@example.com\r\nTo: b@example.com\r\n",
        "middle": b"To: b@example.com\r\n",
        "last": b"",
    }[where]
    body = b"\r\nX-Archive-Id: 3 stays, it is body text\r\n"

    result = stamp(before + forged + after + body, "Archived", 42)

    assert result == OURS_CRLF + before + after + body


def test_keeps_fields_that_only_look_alike() -> None:
    headers = (
        b"X-Archived-By: other tool\r\n"
        b"X-Archiver: x\r\n"
        b"X-Original-Archive-Id: 5\r\n"
        b"Subject: X-Archive-Id: 3\r\n"
        b"Comments: folded\r\n X-Archive-Id: 4\r\n"
    )
    raw = headers + b"\r\nbody\r\n"
    assert stamp(raw, "Archived", 42) == OURS_CRLF + raw


def test_lf_message_keeps_lf_line_endings() -> None:
    raw = b"From: a@example.com\nX-Archive-Status: forged\n\tfolded\nSubject: s\n\nbody\r\nmore\n"
    result = stamp(raw, "Archived", 42)
    assert result == OURS_LF + b"From: a@example.com\nSubject: s\n\nbody\r\nmore\n"


def test_crlf_message_keeps_crlf_line_endings() -> None:
    raw = b"From: a@example.com\r\nX-Archive-Id: 9\r\nSubject: s\r\n\r\nbody\nbare lf in body\r\n"
    result = stamp(raw, "Archived", 42)
    assert (
        result == OURS_CRLF + b"From: a@example.com\r\nSubject: s\r\n\r\nbody\nbare lf in body\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Subject: s\r\nX-Archive-Id: 9\r\n", OURS_CRLF + b"Subject: s\r\n"),
        (b"Subject: s\nX-Archive-Id: 9\n", OURS_LF + b"Subject: s\n"),
        (b"Subject: s\r\nX-Archive-Id: 9", OURS_CRLF + b"Subject: s\r\n"),
        (b"X-Archive-Id: 9\r\n", OURS_CRLF),
    ],
    ids=["crlf", "lf", "no final newline", "only a forgery"],
)
def test_headers_only_message(raw: bytes, expected: bytes) -> None:
    assert stamp(raw, "Archived", 42) == expected


@pytest.mark.parametrize(
    ("raw", "eol"),
    [
        (b"\r\nX-Archive-Status: forged but in the body\r\n", b"\r\n"),
        (b"\nX-Archive-Status: forged but in the body\n", b"\n"),
    ],
)
def test_message_starting_with_a_blank_line_is_all_body(raw: bytes, eol: bytes) -> None:
    assert stamp(raw, "Archived", 42) == (OURS_CRLF if eol == b"\r\n" else OURS_LF) + raw


def test_empty_message() -> None:
    assert stamp(b"", "Archived", 1) == b"X-Archive-Status: Archived\nX-Archive-Id: 1\n"


def test_status_cannot_inject_header_lines() -> None:
    result = stamp(b"Subject: s\r\n\r\nb\r\n", "Skipped; rule=x\r\nBcc: everyone@example.com", None)
    assert (
        result.split(b"\r\n")[0] == b"X-Archive-Status: Skipped; rule=x Bcc: everyone@example.com"
    )
    assert b"\r\nBcc:" not in result


_header_names = st.sampled_from(
    [
        "Subject",
        "From",
        "To",
        "X-Archive-Status",
        "x-archive-id",
        "X-ARCHIVE-Foo",
        "X-Archived",
        "Received",
    ]
)
_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@given(
    fields=st.lists(st.tuples(_header_names, _values, st.lists(_values, max_size=2)), max_size=8),
    body=st.binary(max_size=40),
    eol=st.sampled_from([b"\r\n", b"\n"]),
)
def test_property_exactly_our_fields_remain(
    fields: list[tuple[str, str, list[str]]], body: bytes, eol: bytes
) -> None:
    header = b"".join(
        name.encode()
        + b": "
        + value.encode()
        + b"".join(eol + b"\t" + c.encode() for c in folds)
        + eol
        for name, value, folds in fields
    )
    body = b"text " + body  # a leading CR right after an empty header is out of scope
    raw = header + eol + body

    result = stamp(raw, "Archived", 7)

    kept = b"".join(
        name.encode()
        + b": "
        + value.encode()
        + b"".join(eol + b"\t" + c.encode() for c in folds)
        + eol
        for name, value, folds in fields
        if not name.lower().startswith("x-archive-")
    )
    assert (
        result == b"X-Archive-Status: Archived" + eol + b"X-Archive-Id: 7" + eol + kept + eol + body
    )
