"""The index text of a message read for snippets (``index_text_of``): a plain single part's
header block only searched for its text fields (``text_tree``), and the text always the one
a whole parse gives (``parse_message(raw).index_text()``), whatever the header block."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
_BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
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
    ),
)


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
        b"Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\ninner\n--b--\n",
    ):
        assert "Subject" in text_tree(raw), raw  # the whole block was parsed
        assert index_text_of(raw) == parse_message(raw).index_text(), raw
