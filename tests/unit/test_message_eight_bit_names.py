"""Attachment file names written in raw 8-bit bytes (no RFC 2047 or 2231 encoding), as
SMTPUTF8 mail and many clients send them."""

from __future__ import annotations

import pytest

from postfix_archiver.message import parse_message


def with_attachment(headers: bytes) -> bytes:
    return (
        b"Subject: names\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b"--b\r\n" + headers + b"\r\n\r\nxx\r\n--b--\r\n"
    )


@pytest.mark.parametrize(
    ("headers", "name"),
    [
        (
            b"Content-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="\xed\x9a\x8c\xec\x9d\x98.bin"',
            "회의.bin",
        ),
        (b'Content-Type: application/pdf; name="r\xc3\xa9sum\xc3\xa9.pdf"', "résumé.pdf"),
        # not UTF-8: Latin-1, never an exception
        (b'Content-Type: application/pdf; name="caf\xe9.pdf"', "café.pdf"),
    ],
)
def test_eight_bit_file_names_are_read(headers: bytes, name: str) -> None:
    parsed = parse_message(with_attachment(headers))
    assert [a.filename for a in parsed.attachments] == [name]
