"""Choosing the reader: first bytes, declared type, file name."""

from __future__ import annotations

import pytest

from postfix_archiver.extract.detect import HTML, MESSAGE, PDF, RTF, TEXT, ZIP, charset, kind


@pytest.mark.parametrize(
    ("head", "ctype", "name", "expected"),
    [
        (b"%PDF-1.7\n", "application/octet-stream", "", PDF),
        (b"%PDF-1.7\n", "image/png", "scan.png", PDF),  # the bytes win over a wrong type
        (b"PK\x03\x04rest", "application/octet-stream", "report", ZIP),
        (b"{\\rtf1\\ansi", "application/msword", "a.doc", RTF),
        (b"junk before\n%PDF-1.4\n", "application/octet-stream", "", PDF),
        (b"quoting a header: %PDF-1.4 in text", "text/plain", "notes.txt", TEXT),
        (b"<html>", "text/html; charset=utf-8", "", HTML),
        (b"From: a@b\r\n", "message/rfc822", "", MESSAGE),
        (b"From: a@b\r\n", "application/octet-stream", "fwd.EML", MESSAGE),
        (b"a,b\n", "application/octet-stream", "data.csv", TEXT),
        (b"\x89PNG\r\n", "image/png", "a.png", None),
        (b"\x89PNG\r\n", "image/png", "a.txt", None),  # an image named .txt stays an image
        (b"\xd0\xcf\x11\xe0", "application/msword", "old.doc", None),
        (b"MZ\x90\x00", "application/octet-stream", "setup.exe", None),
        (b"anything", "", "", None),
        # binary files under a text name or an unsaid type: not read as text
        (b"\x89PNG\r\n\x1a\nrandom", "application/octet-stream", "notes.txt", None),
        (b"\xff\xd8\xff\xe0", "application/octet-stream", "data.csv", None),
        (b"\x1f\x8b\x08\x00", "text/plain", "log.txt", None),  # gzip, whatever is declared
        (b"ab\x00\x17\x9c", "application/octet-stream", "notes.txt", None),  # a NUL: binary
        (b"ab\x00\x17\x9c", "text/plain", "notes.txt", TEXT),  # said to be text: read
    ],
)
def test_kind(head: bytes, ctype: str, name: str, expected: str | None) -> None:
    assert kind(head, ctype, name) == expected


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        ("text/plain; charset=euc-kr", "euc-kr"),
        ('text/plain; format=flowed; CHARSET="ISO-2022-JP"', "ISO-2022-JP"),
        ("text/plain", None),
        ("text/plain; charset=", None),
    ],
)
def test_charset(ctype: str, expected: str | None) -> None:
    assert charset(ctype) == expected
