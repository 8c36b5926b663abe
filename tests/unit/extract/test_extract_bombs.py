"""Zip bombs, XML bombs, deeply nested archives and attached messages: each stops at its
cap, in little time and memory, as FAILED or with what was read so far."""

from __future__ import annotations

import io
import time
import zipfile
from email.message import EmailMessage

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
