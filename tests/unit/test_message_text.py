"""The index text of a message read for snippets (``index_text_of``): a plain single part's
header block only searched for its text fields (``text_tree``), and the text always the one
a whole parse gives (``parse_message(raw).index_text()``), whatever the header block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver import message
from postfix_archiver.message import index_text_of, parse_message, text_tree

# fields as mail has them, and as it should not: what decides a part's text (type, charset,
# disposition, file name, transfer encoding) in every spelling the parser takes, and lines
# the parser reads with a defect or as body
_FIELDS = st.sampled_from(
    [
        b"From: Alice <alice@example.com>",
        b"Subject: =?utf-8?q?caf=C3=A9?= plain",
        b"Subject: folded\n  over two lines",
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: text/plain; charset="ISO-8859-1"',
        b"Content-Type: text/plain;\n charset=euc-kr",
        b"Content-Type: text/plain; charset*=us-ascii'en'utf-8",
        b"Content-Type: text/plain; charset=x-no-such-charset",
        b"Content-Type: TEXT/HTML; charset=utf-8",
        b"Content-Type: text/plain; name=notes.txt",
        b"Content-Type: text/plain; name*=utf-8''%FF%FE.txt",
        b"Content-Type: application/pdf",
        b"Content-Type: text",
        b"Content-Type:",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: message/rfc822",
        b"content-type: text/plain; charset=shift_jis",
        b"Content-Type : text/plain",
        b"Content-Disposition: attachment",
        b"Content-Disposition: inline",
        b"Content-Disposition: inline; filename=a.txt",
        b"CONTENT-DISPOSITION:attachment",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: BASE64",
        b"Content-Transfer-Encoding: base64 ",
        b"Content-Transfer-Encoding:\tquoted-printable",
        b"Content-Transfer-Encoding: 8bit",
        b"Content-Transfer-Encoding:\n base64",
        b"X-Content-Type: text/html",
        b"X-Eight-Bit: caf\xc3\xa9",
        b" a continuation where none belongs",
        b"not a header line",
        b"From nobody Mon Jan  1 00:00:00 2024",
        b":no name",
        b"Bare: cr\rinside",
    ]
)
_BODY_SAMPLES = st.sampled_from(
    [
        b"plain text about the budget\n",
        b"Y2Fmw6kgYnVkZ2V0\n",  # base64 of "café budget"
        b"caf=C3=A9 soft=\nbreak\n",
        "정기회의는 세 시".encode("euc-kr"),
        "東京での会議".encode("shift_jis"),
        b"caf\xe9 cr\xe8me \x00nul",
        b"<p>Hi &amp; <b>there</b></p>",
        b"--b\nContent-Type: text/plain\n\ninner\n--b--\n",
    ]
)
_BODIES = st.one_of(st.binary(max_size=200), _BODY_SAMPLES)


@given(st.lists(_FIELDS, max_size=6), _BODIES, st.sampled_from([b"\r\n", b"\n"]))
@settings(max_examples=500, deadline=None)
def test_the_text_is_the_text_of_a_whole_parse(
    fields: list[bytes], body: bytes, eol: bytes
) -> None:
    raw = eol.join(f.replace(b"\n", eol) for f in fields) + eol + eol + body
    assert index_text_of(raw) == parse_message(raw).index_text()


def test_a_plain_header_block_is_searched_for_its_text_fields_only() -> None:
    raw = (
        b"From: a@example.com\r\nSubject: budget\r\nContent-Type: text/plain;\r\n"
        b" charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9\r\n"
    )
    msg = text_tree(raw)
    # only what the text depends on was kept of the header block: it was not parsed whole
    assert msg.items() == [
        ("Content-Type", "text/plain;\r\n charset=iso-8859-1"),
        ("Content-Transfer-Encoding", "8bit"),
    ]
    assert index_text_of(raw) == "café\r\n" == parse_message(raw).index_text()


def test_anything_else_is_parsed_whole() -> None:
    for raw in (
        b"Subject: caf\xc3\xa9\n\nbody\n",  # 8-bit bytes in the header block
        b"From nobody Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n",
        b"Subject: x\n continued\nnot a field\n\nbody\n",
        b"Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: multipart/alternative; boundary=c\n\n--c\n\ninner\n--c--\n--b--\n",
    ):
        assert "Subject" in text_tree(raw), raw  # the whole block was parsed
        assert index_text_of(raw) == parse_message(raw).index_text(), raw


# what a multipart's body may hold around and between its parts: boundary lines as the
# feedparser takes them and as it does not, nested and digest parts, bare CRs
_BETWEEN = st.sampled_from(
    [
        b"",
        b"a preamble\n",
        b"--b\n",  # two boundaries in a row
        b"--bx\n",  # not this boundary
        b"x--b\n",  # not at a line's start
        b"--b--\n",  # closed early
        b"--b \t\n",  # blanks after a boundary
        b"text\rwith a bare CR\n",
        b"\n",
    ]
)
_PART_FIELDS = st.sampled_from(
    [
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Type: text/html; charset=iso-8859-1",
        b"Content-Type: text/plain; name=notes.txt",
        b"Content-Type: application/pdf",
        b"Content-Type: multipart/alternative; boundary=c",
        b"Content-Type: message/rfc822",
        b"Content-Disposition: attachment",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable",
        b"X-Eight-Bit: caf\xc3\xa9",
        b"not a header line",
        b"From nobody Mon Jan  1 00:00:00 2024",
    ]
)
# mostly nothing after a part: a multipart the fast path takes, whose every part is checked
_AFTER = st.one_of(st.just(b""), st.just(b""), st.just(b""), _BETWEEN)
_PART = st.tuples(
    st.lists(_PART_FIELDS, max_size=2), st.booleans(), st.one_of(_BODY_SAMPLES, _BODIES), _AFTER
)
_MULTIPART = st.sampled_from(
    [
        b"Content-Type: multipart/alternative; boundary=b",
        b'Content-Type: multipart/mixed; boundary="b"',
        b"Content-Type: multipart/digest; boundary=b",
        b"Content-Type: multipart/mixed",
        b"Content-Type: multipart/mixed; boundary=b; boundary=c",
    ]
)


@given(
    _MULTIPART,
    _AFTER,
    st.lists(_PART, max_size=4),
    st.sampled_from([b"--b--\n", b"--b--", b"--b-- \nan epilogue\n--b\n", b""]),
    st.sampled_from([b"\r\n", b"\n"]),
)
@settings(max_examples=800, deadline=None)
def test_a_multipart_gives_the_text_of_a_whole_parse(
    multipart: bytes,
    preamble: bytes,
    parts: list[tuple[list[bytes], bool, bytes, bytes]],
    close: bytes,
    eol: bytes,
) -> None:
    raw = b"Subject: x\n" + multipart + b"\n\n" + preamble
    for fields, blank, body, after in parts:
        raw += b"--b\n" + b"\n".join(fields) + (b"\n\n" if blank or fields else b"") + body
        raw += b"\n" + after
    raw = (raw + close).replace(b"\n", eol)
    assert index_text_of(raw) == parse_message(raw, fast=False).index_text()


def test_a_plain_multipart_is_split_without_the_parser() -> None:
    raw = (
        b"Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\npreamble\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9 budget\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>the <b>budget</b></p>\r\n--b--\r\n"
    )
    msg = text_tree(raw)
    # only the fields the text depends on were kept: no header block went through the parser
    assert "Subject" not in msg
    parts = msg.get_payload()
    assert isinstance(parts, list)
    # a part left as a string would be missing from the list, and the comparison fail
    assert [p.items() for p in parts if not isinstance(p, str)] == [
        [("Content-Type", "text/plain; charset=utf-8")],
        [("Content-Type", "text/html")],
    ]
    assert index_text_of(raw) == parse_message(raw).index_text()
    assert "café budget" in index_text_of(raw)


def test_the_part_fields_kept_are_bounded_whatever_the_mail() -> None:
    # hostile mail: every part's fields different, some very long; what is kept stays bounded
    # and each text is still the whole parse's
    for i in range(message._PART_FIELDS_ENTRIES + 50):
        charset = "utf-8" if i % 2 else "iso-8859-1"
        raw = f"Content-Type: text/plain; charset={charset}; x={i}\n\ncaf\xe9 {i}\n".encode(
            "latin-1"
        )
        assert index_text_of(raw) == parse_message(raw).index_text()
        assert len(message._PART_FIELDS) <= message._PART_FIELDS_ENTRIES
    long = b"Content-Type: text/plain; x=" + b"y" * 2000 + b"\n\nbody\n"
    before = len(message._PART_FIELDS)
    assert index_text_of(long) == "body\n"
    assert len(message._PART_FIELDS) == before
