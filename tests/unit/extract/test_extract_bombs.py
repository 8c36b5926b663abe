"""Zip bombs, XML bombs, deeply nested archives and attached messages: each stops at its
cap, in little time and memory, as FAILED or with what was read so far."""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import time
import zipfile
import zlib
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from postfix_archiver.extract import FAILED, OK, Extraction, Limits, extract_many

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def one(
    data: bytes, content_type: str, filename: str = "", limits: Limits | None = None
) -> Extraction:
    return extract_many([(data, content_type, filename)], limits or Limits())[0]


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def bomb_docx(inflated: int) -> bytes:
    """A docx whose document.xml is ``inflated`` bytes of blanks: a few hundred KB zipped."""
    body = b'<?xml version="1.0"?><w:document xmlns:w="urn:w"><w:body>'
    body += b" " * inflated + b"</w:body></w:document>"
    return zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": body})


def test_zip_bomb_stops_at_the_inflate_cap() -> None:
    limits = Limits(max_input=1 << 20)  # cap: 16 MB inflated
    data = bomb_docx(200 << 20)
    assert len(data) < 1 << 20
    started = time.monotonic()
    result = one(data, DOCX, "bomb.docx", limits)
    assert result.status == FAILED
    assert "zip bomb" in result.detail
    assert time.monotonic() - started < 10


def _bzip2(chunks: Iterator[bytes]) -> bytes:
    compressor = bz2.BZ2Compressor(9)
    return b"".join(compressor.compress(c) for c in chunks) + compressor.flush()


def _lzma(chunks: Iterator[bytes]) -> bytes:
    # LZMA1 as zip files hold it (APPNOTE 5.8.8): version, properties' size, properties
    # (lc=3, lp=0, pb=2 in one byte, then the dictionary size), then the raw stream
    lzma1 = {"id": lzma.FILTER_LZMA1, "preset": 0, "lc": 3, "lp": 0, "pb": 2, "dict_size": 1 << 20}
    compressor = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[lzma1])
    body = b"".join(compressor.compress(c) for c in chunks) + compressor.flush()
    return (
        b"\x09\x04\x05\x00" + bytes([(2 * 5 + 0) * 9 + 3]) + (1 << 20).to_bytes(4, "little") + body
    )


def compressed_bomb_docx(method: int, filler: bytes, megabytes: int) -> bytes:
    """A docx whose document.xml is ``megabytes`` MB of ``filler`` (text inside one w:t,
    or blanks between elements, which are not text),
    compressed with bzip2 or LZMA as a stream (zipfile's own LZMA writer takes ten times
    as long): a few hundred bytes (bzip2) or KB (LZMA)."""
    head = b'<w:document xmlns:w="urn:w"><w:body><w:p><w:t>'
    tail = b"</w:t></w:p></w:body></w:document>"
    if filler.isspace():
        head, tail = b'<w:document xmlns:w="urn:w"><w:body>', b"</w:body></w:document>"
    block = filler * (1 << 20)
    crc, size = zlib.crc32(head), len(head) + len(tail) + megabytes * len(block)
    for _ in range(megabytes):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    parts = [head, *(block for _ in range(megabytes)), tail]
    payload = (_bzip2 if method == zipfile.ZIP_BZIP2 else _lzma)(iter(parts))
    # zipfile writes compressed bytes only by compressing them itself: store them, then set
    # the method, CRC and size in the local header and the central directory
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("word/document.xml", payload)
    raw = bytearray(out.getvalue())
    for offset in (0, raw.index(b"PK\x01\x02") + 2):  # the central entry has one more field
        struct.pack_into("<H", raw, offset + 8, method)
        struct.pack_into("<I", raw, offset + 14, crc)
        struct.pack_into("<I", raw, offset + 22, size)
    return bytes(raw)


# a worker of 128 MB: before bzip2 and LZMA were read in steps, one read of a member
# inflated it whole, and 150 MB ran the worker out of memory instead of meeting a cap
BOMB_LIMITS = Limits(max_input=1 << 20, max_output=1000, max_memory=128 << 20)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_or_lzma_bomb_of_text_keeps_the_text_up_to_max_output(method: int) -> None:
    data = compressed_bomb_docx(method, b"A", 150)
    assert len(data) < 40_000
    started = time.monotonic()
    result = one(data, DOCX, "bomb.docx", BOMB_LIMITS)
    assert result.status == OK, result
    assert result.text == "A" * 1000
    assert "cut at max_output" in result.detail
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_or_lzma_bomb_of_blanks_stops_at_the_inflate_cap(method: int) -> None:
    data = compressed_bomb_docx(method, b" ", 150)
    started = time.monotonic()
    result = one(data, DOCX, "bomb.docx", BOMB_LIMITS)
    assert result.status == FAILED
    assert "zip bomb" in result.detail  # the 16 MB cap, not the worker's memory
    assert time.monotonic() - started < 10


def test_nested_zip_that_inflates_past_max_input_is_not_opened() -> None:
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("zeros.bin", bytes(30 << 20))
    outer = zip_of({"inner.zip": big.getvalue(), "readme.txt": b"x"})
    assert len(outer) < 1 << 20
    result = one(outer, "application/zip", "a.zip", Limits(max_input=1 << 20))
    assert result.status == OK
    assert result.names == ("inner.zip", "readme.txt")
    assert "inner.zip" in result.detail
    assert "larger than" in result.detail


LOL = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
    + b"".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">'.encode() for i in range(1, 10))
    + b']><w:document xmlns:w="urn:w"><w:body><w:p><w:t>&lol9;</w:t></w:p></w:body></w:document>'
)


def test_billion_laughs_is_refused() -> None:
    data = zip_of({"word/document.xml": LOL})
    started = time.monotonic()
    result = one(data, DOCX, "lol.docx")
    assert result.status == FAILED
    assert "document type declaration" in result.detail
    assert "lol" not in result.text
    assert time.monotonic() - started < 10


def test_external_entities_are_refused() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<office:document-content xmlns:office="urn:o"><office:body>&x;</office:body>'
        b"</office:document-content>"
    )
    data = zip_of({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": xxe})
    result = one(data, "application/vnd.oasis.opendocument.text", "x.odt")
    assert result.status == FAILED
    assert "root:" not in result.text


def nested_message(depth: int) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = f"level {depth} subject"
    msg.set_content(f"body at level {depth}")
    for level in range(depth - 1, -1, -1):
        outer = EmailMessage()
        outer["Subject"] = f"level {level} subject"
        outer.set_content(f"body at level {level}")
        outer.add_attachment(msg)
        msg = outer
    return msg.as_bytes()


def test_attached_messages_fifty_deep() -> None:
    raw = nested_message(50)
    started = time.monotonic()
    result = one(raw, "message/rfc822", "deep.eml", Limits(max_depth=3))
    assert result.status == OK, result
    for level in range(4):
        assert f"level {level} subject" in result.text
        assert f"body at level {level}" in result.text
    assert "level 4 subject" not in result.text
    assert "nested deeper than 3" in result.detail
    assert time.monotonic() - started < 10


def nested_message_bytes(depth: int) -> bytes:
    """``nested_message`` written out directly: the email package's own writer recurses
    once a level and cannot write thousands of levels."""
    heads, tails = [], []
    for level in range(depth):
        heads.append(
            b"Subject: level %d subject\nContent-Type: multipart/mixed; boundary=b%d\n\n"
            b"--b%d\nContent-Type: text/plain\n\nbody at level %d\n"
            b"--b%d\nContent-Type: message/rfc822\n\n" % (level, level, level, level, level)
        )
        tails.append(b"\n--b%d--\n" % level)
    leaf = b"Subject: level %d subject\n\nbody at level %d\n" % (depth, depth)
    return b"".join(heads) + leaf + b"".join(reversed(tails))


def test_attached_messages_two_thousand_deep_keep_the_outer_levels() -> None:
    # the email parser recurses once a level: past about 1,000 it cannot parse the whole
    raw = nested_message_bytes(2000)
    started = time.monotonic()
    result = one(raw, "message/rfc822", "deep.eml", Limits(max_depth=3))
    assert result.status == OK, result
    for level in range(4):
        assert f"level {level} subject" in result.text
        assert f"body at level {level}" in result.text
    assert "level 4 subject" not in result.text
    assert "body at level 2000" not in result.text
    assert "nested deeper than 3" in result.detail
    assert time.monotonic() - started < 10


def test_a_message_wrapped_in_message_rfc822_two_thousand_times() -> None:
    raw = b"Subject: core\n\ncore text\n"
    for level in range(2000):
        raw = b"Subject: wrapper %d\nContent-Type: message/rfc822\n\n" % level + raw
    result = one(raw, "message/rfc822", "wrapped.eml", Limits(max_depth=2))
    assert result.status == OK, result
    assert result.text.split() == ["wrapper", "1999", "wrapper", "1998", "wrapper", "1997"]
    assert "nested deeper than 2" in result.detail
    # a few levels: the email parser parses them whole, and each is read the same way
    result = one(raw[raw.index(b"Subject: wrapper 1\n") :], "message/rfc822", "", Limits())
    assert result.text.split() == ["wrapper", "1", "wrapper", "0", "core", "core", "text"]
    assert result.detail == ""


def test_parts_three_thousand_deep_keep_the_text_before_them() -> None:
    raw = b"Subject: outer words\nContent-Type: multipart/mixed; boundary=b0\n\n"
    raw += b"--b0\nContent-Type: text/plain\n\nfirst body words\n"
    raw += b"".join(
        b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i)
        for i in range(1, 3000)
    )
    raw += b"--b2999\nContent-Type: text/plain\n\nleaf words\n"
    result = one(raw, "message/rfc822", "parts.eml")
    assert result.status == OK, result
    assert "outer words" in result.text
    assert "first body words" in result.text
    assert "leaf words" not in result.text
    assert "parts nested deeper than 100" in result.detail


def test_zips_fifty_deep_list_names_within_depth() -> None:
    data = zip_of({"level50.txt": b"x"})
    for level in range(49, -1, -1):
        data = zip_of({f"level{level}.zip": data})
    result = one(data, "application/zip", "deep.zip", Limits(max_depth=3))
    assert result.status == OK
    assert result.names == ("level0.zip", "level1.zip", "level2.zip", "level3.zip")
    assert "nested deeper than 3" in result.detail


def test_an_archive_of_many_members_lists_the_first_ten_thousand() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for i in range(12_000):
            zf.writestr(f"f{i}.txt", b"")
    result = one(out.getvalue(), "application/zip", "many.zip")
    assert result.status == OK
    assert len(result.names) == 10_000
    assert "first 10000" in result.detail


def test_huge_spreadsheet_text_is_cut_at_max_output() -> None:
    rows = b"".join(
        b'<row><c t="inlineStr"><is><t>cell number %d</t></is></c></row>' % i
        for i in range(200_000)
    )
    sheet = b'<worksheet xmlns="urn:x"><sheetData>' + rows + b"</sheetData></worksheet>"
    data = zip_of({"xl/workbook.xml": b"<workbook/>", "xl/worksheets/sheet1.xml": sheet})
    result = one(data, "application/octet-stream", "big.xlsx", Limits(max_output=5000))
    assert result.status == OK
    assert len(result.text) <= 5000
    assert result.text.startswith("cell number 0")
    assert "cut" in result.detail
