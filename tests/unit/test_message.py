"""Parsing raw bytes into what the archive indexes and shows (``postfix_archiver.message``)."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.message import (
    Address,
    _parse_single_part,
    attachment_payload,
    decode_header_value,
    decode_text,
    html_to_text,
    index_text_of,
    parse_message,
)


def msg(headers: str, body: str = "body\n") -> bytes:
    return (headers.strip("\n") + "\n\n" + body).encode()


# -- RFC 2047 subjects -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"),
        ("=?UTF-8?Q?caf=C3=A9?=", "café"),
        ("=?utf-8?b?0J/RgNC40LLQtdGCINC80LjRgA==?=", "Привет мир"),
        ("=?UTF-8?B?8J+Ygg==?=", "😂"),
        ("=?iso-8859-1?q?r=E9sum=E9?=", "résumé"),
        ("=?ISO-8859-1?B?Zvxy?=", "für"),
        ("=?windows-1252?q?=80_100?=", "€ 100"),
        # plain words around an encoded word keep their spaces
        ("Re: =?utf-8?q?caf=C3=A9?= au lait", "Re: café au lait"),
        ("Fwd: [list] =?iso-8859-1?q?Men=FC?= heute", "Fwd: [list] Menü heute"),
        # whitespace between two encoded words is not part of the text (RFC 2047 6.2)
        ("=?utf-8?q?Gr=C3=BC?= =?utf-8?q?=C3=9Fe?=", "Grüße"),
        ("=?utf-8?q?one?=   =?iso-8859-1?q?_two?=", "one two"),
        # an encoded space inside the word is kept
        ("=?utf-8?q?hello_world?= again", "hello world again"),
        ("plain ascii subject", "plain ascii subject"),
        # not an encoded word at all: shown as it is
        ("=?utf-8?q?never closed", "=?utf-8?q?never closed"),
    ],
)
def test_rfc2047_subjects(subject: str, expected: str) -> None:
    parsed = parse_message(msg(f"Subject: {subject}"))
    assert parsed.subject == expected


@pytest.mark.parametrize(
    ("folded", "expected"),
    [
        (b"=?utf-8?q?first?=\r\n =?utf-8?q?_second?=\r\n\tplain tail", "first second plain tail"),
        (
            b"plain head\n =?utf-8?q?caf=C3=A9?=\n =?utf-8?q?_cr=C3=A8me?= end",
            "plain head café crème end",
        ),
        (b"one\r\n two\r\n\tthree", "one two three"),
    ],
)
def test_folded_subject_is_unfolded(folded: bytes, expected: str) -> None:
    raw = b"Subject: " + folded + b"\r\n\r\nbody\r\n"
    assert parse_message(raw).subject == expected


def test_decode_header_value_collapses_whitespace_and_drops_nul() -> None:
    assert decode_header_value("a \t  b\x00c") == "a bc"
    assert decode_header_value(None) == ""


def test_eight_bit_utf8_headers_are_read_as_utf8() -> None:
    raw = "Subject: Grüße aus Köln\nFrom: Jörg <jörg@exämple.de>\n\nx\n".encode()
    parsed = parse_message(raw)
    assert parsed.subject == "Grüße aus Köln"
    assert parsed.from_ == [Address("Jörg", "jörg@exämple.de")]


def test_eight_bit_latin1_headers_fall_back_to_latin1() -> None:
    raw = "Subject: Grüße\nFrom: J\xf6rg <j@example.de>\n\nx\n".encode("latin-1")
    parsed = parse_message(raw)
    assert parsed.subject == "Grüße"
    assert parsed.from_ == [Address("Jörg", "j@example.de")]


# -- addresses ---------------------------------------------------------------------------


def test_addresses_with_encoded_display_names() -> None:
    parsed = parse_message(
        msg(
            "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\n"
            'To: "Doe, John" <john@example.com>, bob@example.com\n'
            "Cc: =?utf-8?q?Doe=2C_Jane?= <jane@example.com>, =?iso-8859-1?q?Ren=E9?= "
            "<rene@example.fr>"
        )
    )
    assert parsed.from_ == [Address("Jörg Müller", "joerg@example.de")]
    assert parsed.to == [
        Address("Doe, John", "john@example.com"),
        Address("", "bob@example.com"),
    ]
    # the comma inside the encoded word does not split the address list
    assert parsed.cc == [
        Address("Doe, Jane", "jane@example.com"),
        Address("René", "rene@example.fr"),
    ]
    assert "Jörg Müller <joerg@example.de>" in " ".join(
        str(a) for a in (*parsed.from_, *parsed.to, *parsed.cc)
    )
    assert str(Address("", "x@y")) == "x@y"


def test_several_to_headers_and_groups() -> None:
    parsed = parse_message(
        msg("To: a@example.com\nTo: Team: b@example.com, c@example.com;\nCc: undisclosed:;")
    )
    assert [a.address for a in parsed.to] == ["a@example.com", "b@example.com", "c@example.com"]
    assert parsed.cc == []


# -- dates -------------------------------------------------------------------------------


def test_date_with_offset_is_aware() -> None:
    parsed = parse_message(msg("Date: Tue, 01 Oct 2024 10:00:00 +0200"))
    assert parsed.date == datetime(2024, 10, 1, 8, 0, tzinfo=UTC)
    assert parsed.date is not None
    assert parsed.date.utcoffset() == timedelta(hours=2)
    assert parsed.defects == []


def test_date_without_zone_is_taken_as_utc() -> None:
    parsed = parse_message(msg("Date: Tue, 01 Oct 2024 10:00:00 -0000"))
    assert parsed.date == datetime(2024, 10, 1, 10, 0, tzinfo=UTC)
    assert parsed.date is not None
    assert parsed.date.tzinfo is not None


def test_obsolete_zone_names() -> None:
    parsed = parse_message(msg("Date: 1 Oct 2024 10:00:00 EST"))
    assert parsed.date == datetime(2024, 10, 1, 10, 0, tzinfo=timezone(timedelta(hours=-5)))


@pytest.mark.parametrize(
    "value", ["not a date", "Tue, 31 Feb 2024 10:00:00 +0000", "yesterday at noon", "2024"]
)
def test_bad_date_is_a_defect_and_none(value: str) -> None:
    parsed = parse_message(msg(f"Date: {value}\nSubject: still parsed"))
    assert parsed.date is None
    assert any("Date" in d and value in d for d in parsed.defects), parsed.defects
    assert parsed.subject == "still parsed"


def test_missing_date_is_none_without_defect() -> None:
    parsed = parse_message(msg("Subject: x"))
    assert parsed.date is None
    assert parsed.defects == []


# -- bodies and attachments --------------------------------------------------------------


def multipart(*parts: str, boundary: str = "BOUNDARY", ctype: str = "multipart/mixed") -> bytes:
    body = "".join(f"--{boundary}\n{p.strip(chr(10))}\n" for p in parts) + f"--{boundary}--\n"
    return msg(f'Subject: m\nContent-Type: {ctype}; boundary="{boundary}"', body)


def test_rfc2231_filename_with_continuations_and_charset() -> None:
    raw = multipart(
        "Content-Type: text/plain\n\nsee attached",
        "Content-Type: application/pdf\n"
        "Content-Disposition: attachment;\n"
        " filename*0*=utf-8''%E2%82%AC%20rates;\n"
        " filename*1*=%20f%C3%BCr%20Q3.pdf\n"
        "Content-Transfer-Encoding: base64\n\n"
        "JVBERi0=",
    )
    parsed = parse_message(raw)
    [att] = parsed.attachments
    assert att.filename == "€ rates für Q3.pdf"
    assert att.content_type == "application/pdf"
    assert att.size == 5
    assert att.sha256 == hashlib.sha256(b"%PDF-").hexdigest()
    assert parsed.text_plain == "see attached"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ("filename*=iso-8859-1''r%E9sum%E9.txt", "résumé.txt"),
        ('filename*0="very long ";\n filename*1="name.txt"', "very long name.txt"),
        ('filename="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="', "résumé.pdf"),  # RFC 2047, sadly common
        ('filename="plain name.doc"', "plain name.doc"),
    ],
)
def test_filename_forms(params: str, expected: str) -> None:
    raw = multipart(
        f"Content-Type: application/octet-stream\nContent-Disposition: attachment; {params}\n\nx"
    )
    [att] = parse_message(raw).attachments
    assert att.filename == expected


def test_filename_from_content_type_name() -> None:
    raw = multipart('Content-Type: image/png; name="logo.png"\n\nPNG')
    [att] = parse_message(raw).attachments
    assert att.filename == "logo.png"


def test_attachment_detection() -> None:
    raw = multipart(
        "Content-Type: text/plain\n\nthe body",
        "Content-Type: text/plain\nContent-Disposition: attachment\n\nattached text",
        "Content-Type: text/plain\nContent-Disposition: inline; filename=notes.txt\n\nnotes",
        "Content-Type: image/png\nContent-Disposition: inline\n\n\x89PNG",
        "Content-Type: text/html\n\n<p>the html</p>",
    )
    parsed = parse_message(raw)
    assert [(a.index, a.filename, a.content_type) for a in parsed.attachments] == [
        (1, "", "text/plain"),
        (2, "notes.txt", "text/plain"),
        (3, "", "image/png"),
    ]
    assert parsed.text_plain == "the body"
    assert parsed.text_html == "<p>the html</p>"
    assert "attached text" not in parsed.index_text()


def test_alternative_text_and_html_are_bodies_not_attachments() -> None:
    raw = multipart(
        "Content-Type: text/plain; charset=utf-8\n\nHello plain",
        "Content-Type: text/html; charset=utf-8\n\n<b>Hello</b> html",
        ctype="multipart/alternative",
    )
    parsed = parse_message(raw)
    assert parsed.attachments == []
    assert parsed.text_plain == "Hello plain"
    assert parsed.body_text == "Hello plain"
    assert parsed.index_text() == "Hello plain\nHello html"


def test_attachment_payload_returns_the_decoded_bytes() -> None:
    data = bytes(range(256)) * 4
    encoded = base64.encodebytes(data).decode()
    raw = multipart(
        "Content-Type: text/plain\n\nhi",
        f'Content-Type: application/octet-stream; name="d.bin"\n'
        f"Content-Transfer-Encoding: base64\n\n{encoded}",
    )
    [att] = parse_message(raw).attachments
    meta, payload = attachment_payload(raw, att.index)
    assert payload == data
    assert meta == att
    assert att.size == len(data)
    with pytest.raises(KeyError):
        attachment_payload(raw, 7)


def test_nested_message_rfc822_is_descended() -> None:
    inner = "From: inner@example.com\nSubject: inner\n\ninner body text"
    raw = multipart(
        "Content-Type: text/plain\n\nouter body",
        f"Content-Type: message/rfc822\n\n{inner}",
        "Content-Type: application/zip; name=z.zip\n\nPK",
    )
    parsed = parse_message(raw)
    assert "inner body text" in parsed.text_plain
    assert parsed.subject == "m"
    assert [a.filename for a in parsed.attachments] == ["z.zip"]


# -- HTML --------------------------------------------------------------------------------


def test_html_is_stripped_of_tags_scripts_and_styles() -> None:
    markup = (
        "<html><head><style>p { color: red }</style><title>T</title></head>"
        "<body><script>alert('x')</script><p>Tom &amp; Jerry</p>\n\n<p>&lt;b&gt; caf&eacute;"
        " &#8364;5</p><!-- hidden comment --></body></html>"
    )
    text = html_to_text(markup)
    assert "Tom & Jerry" in text
    assert "<b> café €5" in text
    for gone in ("alert", "color", "<p>", "hidden comment", "\n"):
        assert gone not in text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        # a newsletter's table: each cell its own words
        ("<table><tr><td>Deal 4</td><td>Deal 5</td></tr></table>", "Deal 4 Deal 5"),
        ("<p>xxx</p><div>Unsubscribe</div>", "xxx Unsubscribe"),
        ("<ul><li>one</li><LI>two</LI></ul>end", "one two end"),
        ("line<br>next<BR/>last<h2>Title</h2>body", "line next last Title body"),
        # inline elements join their text as the reader sees it
        ("<b>W</b>ord <a href='x'>link</a>s <span>a</span>b", "Word links ab"),
        # a tag name inside an attribute or as text is not a block
        ("<p title='<td>'>a</p>b &lt;td&gt;c", "a b <td>c"),
    ],
)
def test_html_blocks_are_separated_by_whitespace(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    "markup",
    ["<div " * 200_000, '<td a="' * 100_000 + ">", "<div>" * 100_000 + "x"],
    ids=["tags-never-closed", "quotes-never-closed", "deep-nesting"],
)
def test_hostile_html_costs_one_pass(markup: str) -> None:
    """Markup made to make the block-tag pass backtrack or scan to the end once per tag
    (quadratic: minutes for these 1 MB) is cut in one pass."""
    start = time.perf_counter()
    html_to_text(markup)
    assert time.perf_counter() - start < 20


def test_html_only_message_body_text() -> None:
    raw = b"Content-Type: text/html; charset=iso-8859-1\n\n<div>Gr\xfc\xdfe<script>steal()</script>"
    parsed = parse_message(raw)
    assert parsed.text_plain == ""
    assert parsed.body_text == "Grüße"
    assert "steal" not in parsed.index_text()


# -- charsets and defects ----------------------------------------------------------------


def test_declared_charset_is_used() -> None:
    raw = b"Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n"
    assert parse_message(raw).text_plain == "Привет\n"


def test_unknown_charset_is_a_defect_and_falls_back() -> None:
    raw = "Content-Type: text/plain; charset=x-no-such-charset\n\ncafé\n".encode()
    parsed = parse_message(raw)
    assert parsed.text_plain == "café\n"
    assert parsed.defects == ["unknown charset 'x-no-such-charset'"]


def test_unknown_charset_falls_back_to_latin1_for_non_utf8() -> None:
    defects: list[str] = []
    assert decode_text(b"caf\xe9", "x-bogus", defects) == "café"
    assert defects == ["unknown charset 'x-bogus'"]
    assert decode_text(b"caf\xc3\xa9", None) == "café"
    assert decode_text(b"caf\xe9", "unknown-8bit") == "café"


@pytest.mark.parametrize("charset", ["idna", "punycode", "undefined"])
def test_codecs_that_cannot_replace_are_defects_not_errors(charset: str) -> None:
    raw = (
        f"Subject: =?{charset}?q?=FF=FE_x?=\nContent-Type: text/plain; charset={charset}\n\n"
        "\xff body\n"
    ).encode("latin-1")
    parsed = parse_message(raw)
    assert parsed.text_plain == "ÿ body\n"
    assert f"unknown charset '{charset}'" in parsed.defects
    assert parsed.subject.endswith("x")


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: =?utf-7?q?+2AA-?=\n\nx\n",
        b"Subject: =?unicode_escape?q?\\ud800?=\n\nx\n",
        b"Content-Type: text/plain; charset=utf-7\n\n+2AA- text\n",
    ],
)
def test_no_lone_surrogates_reach_the_index(raw: bytes) -> None:
    parsed = parse_message(raw)
    for text in (parsed.subject, parsed.text_plain, parsed.index_text()):
        text.encode("utf-8")  # would raise on a lone surrogate


def test_broken_base64_is_a_defect() -> None:
    raw = multipart(
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!aGVsbG8=",
        "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nQUJDRA=",
    )
    parsed = parse_message(raw)
    assert "InvalidBase64CharactersDefect" in parsed.defects
    assert "InvalidBase64PaddingDefect" in parsed.defects
    assert parsed.text_plain == "hello"


@pytest.mark.parametrize(
    ("raw", "defect"),
    [
        (b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nno end\n", "CloseBoundaryNotFound"),
        (b"Content-Type: multipart/mixed; boundary=b\n\nno parts\n", "StartBoundaryNotFound"),
        (b"Content-Type: multipart/mixed\n\n--b\n\nx\n--b--\n", "NoBoundaryInMultipart"),
        (b"not a header line\nSubject: x\n\nbody\n", "MissingHeaderBodySeparator"),
    ],
)
def test_malformed_mime_is_noted(raw: bytes, defect: str) -> None:
    parsed = parse_message(raw)
    assert any(d.startswith(defect) for d in parsed.defects), parsed.defects
    assert parsed.size == len(raw)


def test_same_defect_on_many_parts_is_listed_once() -> None:
    bad = "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!aGk="
    parsed = parse_message(multipart(bad, bad, bad))
    assert parsed.defects.count("InvalidBase64CharactersDefect") == 1


def test_nul_bytes_are_dropped_from_text() -> None:
    raw = b"Subject: he\x00llo\nFrom: a\x00b <a@example.com>\n\nbo\x00dy\n"
    parsed = parse_message(raw)
    assert parsed.subject == "hello"
    assert parsed.text_plain == "body\n"
    assert "\x00" not in parsed.index_text()


def test_eight_bit_content_disposition_does_not_stop_the_parse() -> None:
    raw = (
        b"Subject: ok\nContent-Type: multipart/mixed; boundary=x\n\n"
        b"--x\nContent-Type: text/plain\n\nvisible body\n"
        b"--x\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
        b'filename="f\xc3\xbcr.bin"\n\nabc\n--x--\n'
    )
    parsed = parse_message(raw)
    assert parsed.text_plain == "visible body"
    assert len(parsed.attachments) == 1
    assert parsed.attachments[0].filename.startswith("f")
    assert not any("parse error" in d for d in parsed.defects), parsed.defects


def test_header_lookup() -> None:
    parsed = parse_message(msg("X-Tag: one\nx-tag: =?utf-8?q?zw=C3=B6lf?=\nSubject: s"))
    assert parsed.header("X-TAG") == "one"
    assert parsed.header_all("x-tag") == ["one", "zwölf"]
    assert parsed.header("Missing") is None


def test_empty_and_headerless_input_never_raise() -> None:
    for raw in (b"", b"\n", b"Subject: no newline", b"\x00\xff\xfe" * 100):
        parsed = parse_message(raw)
        assert parsed.size == len(raw)


# -- the single-part fast path ---------------------------------------------------------------

_HEADER_LINES = st.sampled_from(
    [
        b"From: Alice <alice@example.com>",
        b'To: bob@example.org, "Carol, C." <carol@example.net>',
        b"Subject: =?utf-8?q?caf=C3=A9?= plain",
        b"Subject: folded\r\n  over two lines",
        b"Date: Tue, 24 Nov 2026 10:00:00 +0100",
        b"Date: not a date",
        b"Content-Type: text/plain; charset=iso-8859-1",
        b"Content-Type: text/html; charset=utf-8",
        b"Content-Type: application/pdf; name=x.pdf",
        b"Content-Type: multipart/mixed; boundary=b",
        b"Content-Type: message/rfc822",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable",
        b"Content-Disposition: attachment; filename=a.txt",
        b"X-Eight-Bit: caf\xc3\xa9 \xe9",
        b" a continuation where none belongs",
        b"not a header line at all",
        b"From nobody Mon Jan  1 00:00:00 2024",
        b"Bare: cr\rinside",
        b"",
    ]
)
_BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"plain text\r\nsecond line\r\n",
            b"Y2Fmw6k=\r\n",
            b"caf=C3=A9 soft=\r\nbreak\r\n",
            b"--b\r\nContent-Type: text/plain\r\n\r\ninner\r\n--b--\r\n",
            b"\r\n\r\nleading blank lines\n\rbare cr\r",
        ]
    ),
)


@given(st.lists(_HEADER_LINES, max_size=8), _BODIES, st.sampled_from([b"\r\n", b"\n"]))
@settings(max_examples=400, deadline=None)
def test_fast_path_parses_as_the_full_parser_does(
    headers: list[bytes], body: bytes, eol: bytes
) -> None:
    raw = eol.join(h.replace(b"\r\n", eol) for h in headers) + eol + eol + body
    assert parse_message(raw) == parse_message(raw, fast=False)


def test_fast_path_is_taken_for_plain_mail_and_not_for_multipart(
    cpython_messages: list[tuple[str, bytes]],
) -> None:
    plain = b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    assert _parse_single_part(plain) is not None
    taken = 0
    for _name, raw in cpython_messages:
        for variant in (raw, raw.replace(b"\n", b"\r\n")):
            assert parse_message(variant) == parse_message(variant, fast=False)
            msg = _parse_single_part(variant)
            taken += msg is not None
            if msg is not None:
                assert not msg.is_multipart()
    assert 0 < taken < 2 * len(cpython_messages)


# -- big bodies with few copies: the same results as the stdlib's parser ---------------------

_CTES = st.sampled_from(
    ["base64", "BASE64", " base64 ", "7bit", "8bit", "binary", "", "quoted-printable", "x-uuencode"]
)
_ENCODED_BODIES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda data, width, eol, cut, junk: (
            eol.join(
                base64.b64encode(data)[i : i + width]
                for i in range(0, len(base64.b64encode(data)), width)
            )[: None if cut == 0 else -cut]
            + junk
        ),
        st.binary(max_size=120),
        st.sampled_from([4, 8, 76]),
        st.sampled_from([b"\r\n", b"\n", b"\r"]),
        st.integers(0, 3),  # a missing padding character or two, or a stray one
        st.sampled_from([b"", b"\r\n", b"=\r\n", b"!*\xe9\r\n", b"A", b"AB=", b" \t\r\n"]),
    ),
)


@given(_CTES, _ENCODED_BODIES, st.sampled_from([b"\r\n", b"\n"]), st.booleans())
@settings(max_examples=400, deadline=None)
def test_leaf_bodies_decode_as_get_payload_does(
    cte: str, body: bytes, eol: bytes, multipart: bool
) -> None:
    from email.parser import BytesParser
    from email.policy import compat32

    from postfix_archiver.message import _parse_bytes, _payload, leaf_parts

    leaf = b"Content-Transfer-Encoding: " + cte.encode() + eol + eol + body
    if multipart:
        raw = (
            b"Content-Type: multipart/mixed; boundary=b"
            + eol
            + eol
            + b"--b"
            + eol
            + leaf
            + eol
            + b"--b--"
            + eol
        )
    else:
        raw = leaf
    ours = _parse_bytes(raw)
    stdlib = BytesParser(policy=compat32).parsebytes(raw)
    assert ours.as_bytes() == stdlib.as_bytes()
    for mine, theirs in zip(leaf_parts(ours), leaf_parts(stdlib), strict=True):
        assert _payload(mine, []) == theirs.get_payload(decode=True)
        # decoding notes what was wrong on the part, as get_payload does
        assert [type(d) for d in mine.defects] == [type(d) for d in theirs.defects]


def test_index_text_of_is_the_index_text_of_a_whole_parse(
    cpython_messages: list[tuple[str, bytes]],
) -> None:
    html = (
        b"From: a@example.com\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/alternative; boundary="b"\n\n--b\n'
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n"
        b"caf=E9 \x00nul\n--b\nContent-Type: text/html; charset=utf-8\n\n"
        b"<p>Hi &amp; <script>x()</script>there</p>\n--b\n"
        b'Content-Type: text/plain; name="a.txt"\n'
        b'Content-Disposition: attachment; filename="a.txt"\n\n'
        b"attached text is not body text\n--b--\n"
    )
    odd = b"Subject: x\nContent-Type: text/plain; charset=x-nope\n\n\xff\xfe caf\xe9\n"
    messages = [raw for _, raw in cpython_messages] + [html, odd, b"", b"\n\n", b"no header"]
    for raw in messages:
        assert index_text_of(raw) == parse_message(raw).index_text(), raw[:200]
    assert index_text_of(html) == "café nul\nHi & there"


def test_parse_is_the_stdlib_parse(cpython_messages: list[tuple[str, bytes]]) -> None:
    from email.parser import BytesParser
    from email.policy import compat32

    from postfix_archiver.message import _parse_bytes

    for _name, raw in cpython_messages:
        for variant in (raw, raw.replace(b"\n", b"\r\n"), raw * 20):
            stdlib = BytesParser(policy=compat32).parsebytes(variant)
            # big base64 bodies cut out and put back: tried here on every stretch of lines
            # of base64 characters, however short
            for hollow_from, run in ((1 << 20, 0), (0, 1), (0, 40)):
                ours = _parse_bytes(variant, hollow_from=hollow_from, run=run)
                assert ours.as_bytes() == stdlib.as_bytes()
                assert [type(d) for p in ours.walk() for d in p.defects] == [
                    type(d) for p in stdlib.walk() for d in p.defects
                ]


def _tree(msg: object) -> list[object]:
    """Everything the parse made of a message, part by part, for comparing two parses."""
    from email.message import Message

    assert isinstance(msg, Message)
    return [
        (
            part.get_unixfrom(),
            part.items(),
            part.preamble,
            part.epilogue,
            part._payload if isinstance(part._payload, str) else len(part._payload),  # type: ignore[attr-defined]
            [type(d) for d in part.defects],
        )
        for part in msg.walk()
    ]


_LINES = st.sampled_from(
    [
        b"Content-Type: multipart/mixed; boundary=a",
        b"Content-Type: multipart/alternative; boundary=b",
        b"Content-Type: multipart/mixed",
        b"Content-Type: message/rfc822",
        b"Content-Type: message/delivery-status",
        b"Content-Transfer-Encoding: base64",
        b"Subject: s",
        b" folded",
        b"From nobody",
        b"--a",
        b"--a--",
        b"--b",
        b"--b--",
        b"--a \t",
        b"",
        b"",
        b"QUJDRA==",
        b"SGVsbG8gd29ybGQ",
        b"From",
        b"AAAA",
        b"abc=",
        b"x:y",
        b"=",
        b"+/+/",
    ]
)


@given(
    st.lists(st.tuples(_LINES, st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r"])), max_size=40),
    st.sampled_from([1, 4, 9]),
)
@settings(max_examples=800, deadline=None)
def test_big_base64_bodies_cut_out_parse_the_same(
    lines: list[tuple[bytes, bytes]], run: int
) -> None:
    """Stretches of base64 lines are read as one token and put back (``_parse_hollow``):
    wherever they fall (headers, preambles, bodies, delivery-status blocks, between
    boundaries), the parse is the stdlib's."""
    from email.parser import BytesParser
    from email.policy import compat32

    from postfix_archiver.message import _parse_bytes

    raw = b"".join(line + eol for line, eol in lines)
    stdlib = BytesParser(policy=compat32).parsebytes(raw)
    assert _tree(_parse_bytes(raw, hollow_from=0, run=run)) == _tree(stdlib)


def test_a_big_attachment_is_parsed_with_few_copies() -> None:
    """The parser held a big message at four bytes a character and every line of its body
    as a str, and the base64 decoding copied the body four times: 7.7 times the message at
    the peak for one attachment."""
    import tracemalloc

    data = bytes(range(256)) * 8192  # 2 MiB
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--b--\r\n"
    )
    tracemalloc.start()
    try:
        parsed = parse_message(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.attachments[0].sha256 == hashlib.sha256(data).hexdigest()
    assert peak < 2.5 * len(raw)
