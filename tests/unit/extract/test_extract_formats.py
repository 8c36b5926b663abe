"""Each format with files written by the tools people use (python-docx, openpyxl,
python-pptx, odfpy), including Korean and Japanese words, and each format damaged."""

from __future__ import annotations

import io
import struct
import zipfile
from email.message import EmailMessage
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
from odf import opendocument, table, text

from postfix_archiver.extract import FAILED, OK, UNSUPPORTED, Extraction, Limits, extract_many

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"


def saved(document: object) -> bytes:
    out = io.BytesIO()
    document.save(out)  # type: ignore[attr-defined]
    return out.getvalue()


def make_docx() -> bytes:
    d = docx.Document()
    d.add_heading("Quarterly aardvark report", 1)
    d.add_paragraph("회의는 내일 열립니다")  # Korean: the meeting is tomorrow
    d.add_paragraph("東京での会議は延期")  # Japanese
    cell = d.add_table(rows=1, cols=1).cell(0, 0)
    cell.text = "tablecellword"
    d.sections[0].header.paragraphs[0].text = "headerword"
    return saved(d)


def make_xlsx() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["platypus", "보고서를", 12345])
    ws.append(["platypus", "second row"])
    return saved(wb)


def make_pptx() -> bytes:
    p = pptx.Presentation()
    slide = p.slides.add_slide(p.slide_layouts[1])
    slide.shapes.title.text = "Slide about narwhals"
    slide.placeholders[1].text = "会議 agenda"
    return saved(p)


def make_odt() -> bytes:
    doc = opendocument.OpenDocumentText()
    doc.text.addElement(text.H(outlinelevel=1, text="Heading wombat"))
    doc.text.addElement(text.P(text="본문 단락 kinkajou"))
    return saved(doc)


def make_ods() -> bytes:
    doc = opendocument.OpenDocumentSpreadsheet()
    sheet = table.Table(name="Sheet1")
    row = table.TableRow()
    for value in ("capybara", "東京"):
        cell = table.TableCell()
        cell.addElement(text.P(text=value))
        row.addElement(cell)
    sheet.addElement(row)
    doc.spreadsheet.addElement(sheet)
    return saved(doc)


def make_odp() -> bytes:
    from odf import draw, style

    doc = opendocument.OpenDocumentPresentation()
    layout = style.PageLayout(name="L")
    doc.automaticstyles.addElement(layout)
    master = style.MasterPage(name="M", pagelayoutname=layout)
    doc.masterstyles.addElement(master)
    page = draw.Page(masterpagename=master)
    frame = draw.Frame(width="10cm", height="2cm", x="1cm", y="1cm")
    box = draw.TextBox()
    box.addElement(text.P(text="presentation axolotl"))
    frame.addElement(box)
    page.addElement(frame)
    doc.presentation.addElement(page)
    return saved(doc)


# as WordPad writes it: a font table with a Korean charset, \'hh bytes in code page 949 and
# \u escapes for the rest
RTF = (
    rb"{\rtf1\ansi\ansicpg949\deff0{\fonttbl{\f0\fnil\fcharset129 Gulim;}}"
    rb"{\*\generator Riched20 10.0.19041}\viewkind4\uc1 "
    rb"\pard\f0\fs22 ocelot \'c8\'b8\'c0\'c7 \u20250?\u35696?\par"
    rb"}"
)


def one(data: bytes, content_type: str, filename: str = "") -> Extraction:
    return extract_many([(data, content_type, filename)], Limits())[0]


@pytest.mark.parametrize(
    ("maker", "ctype", "name", "words"),
    [
        (
            make_docx,
            DOCX,
            "r.docx",
            ["aardvark", "회의는", "東京での会議は", "tablecellword", "headerword"],
        ),
        (make_xlsx, XLSX, "r.xlsx", ["platypus", "보고서를", "12345", "second row"]),
        (make_pptx, PPTX, "r.pptx", ["narwhals", "会議"]),
        (make_odt, ODT, "r.odt", ["wombat", "kinkajou", "본문"]),
        (make_ods, ODS, "r.ods", ["capybara", "東京"]),
        (make_odp, ODP, "r.odp", ["axolotl"]),
    ],
)
def test_office_documents(maker, ctype: str, name: str, words: list[str]) -> None:
    data = maker()
    # as declared, and as mail often declares it
    for declared, filename in ((ctype, name), ("application/octet-stream", name), ("", "")):
        result = one(data, declared, filename)
        assert result.status == OK, result
        for word in words:
            assert word in result.text, (word, declared, result.text)


def test_xlsx_shared_strings_are_looked_up_per_cell() -> None:
    result = one(make_xlsx(), XLSX)
    # "platypus" is one shared string used twice: each cell gives it
    assert result.text.count("platypus") == 2
    assert "platypus\t보고서를\t12345" in result.text


def test_rtf_with_code_page_and_unicode_escapes() -> None:
    result = one(RTF, "application/rtf", "a.rtf")
    assert result.status == OK
    assert "ocelot" in result.text
    assert "회의" in result.text  # \'c8\'b8\'c0\'c7 in code page 949
    assert "会議" in result.text  # \u20250 \u35696
    assert "Riched20" not in result.text


def test_html_text_without_tags_scripts_or_styles() -> None:
    page = (
        b"<html><head><meta charset='euc-kr'><style>p{color:red}</style>"
        b"<script>var secretscript = 1</script></head><body><p>"
        + "보고서 &amp; tapir".encode("euc-kr")
        + b"</p></body></html>"
    )
    result = one(page, "text/html", "page.html")
    assert result.status == OK
    assert "보고서 & tapir" in result.text
    assert "secretscript" not in result.text
    assert "color" not in result.text


@pytest.mark.parametrize(
    ("data", "ctype", "expected"),
    [
        ("회의록 euckr".encode("euc-kr"), "text/plain; charset=euc-kr", "회의록 euckr"),
        ("会議 sjis".encode("shift_jis"), 'text/plain; charset="Shift_JIS"', "会議 sjis"),
        ("name,city\nZoë,東京\n".encode(), "text/csv", "Zoë,東京"),
        ("utf16 bom 会议".encode("utf-16"), "text/plain", "utf16 bom 会议"),
        (b"caf\xe9 latin", "text/plain", "café latin"),  # not UTF-8: Latin-1
        (b"caf\xe9", "text/plain; charset=x-no-such-charset", "café"),
        (b"col1;col2\nquetzal;1", "application/octet-stream", None),  # unknown: unsupported
    ],
)
def test_text_in_its_charset(data: bytes, ctype: str, expected: str | None) -> None:
    result = one(data, ctype, "")
    if expected is None:
        assert result.status == UNSUPPORTED
    else:
        assert result.status == OK
        assert expected in result.text


def test_text_by_file_name_when_declared_octet_stream() -> None:
    result = one(b"id,animal\n1,quetzal\n", "application/octet-stream", "animals.csv")
    assert result.status == OK
    assert "quetzal" in result.text


def attached_message(subject: str, body: str, attachments: list[tuple[bytes, str, str]]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "Alice Example <alice@example.com>"
    msg["To"] = "김철수 <chulsoo@example.kr>"
    msg["Cc"] = "carol@example.org"
    msg.set_content(body)
    for data, ctype, name in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def test_attached_message_headers_body_and_its_attachments() -> None:
    raw = attached_message(
        "Minutes of the 회의",
        "body mentions dugong",
        [(make_docx(), DOCX, "inner.docx")],
    )
    result = one(raw, "message/rfc822", "fwd.eml")
    assert result.status == OK, result
    for word in ("회의", "alice@example.com", "김철수", "carol@example.org", "dugong", "aardvark"):
        assert word in result.text, word
    assert result.names == ("inner.docx",)


def test_attached_message_with_a_damaged_attachment_keeps_the_rest() -> None:
    raw = attached_message("subject gharial", "body", [(b"PK\x03\x04broken", DOCX, "bad.docx")])
    result = one(raw, "message/rfc822", "")
    assert result.status == OK
    assert "gharial" in result.text
    assert "bad.docx" in result.detail


def make_zip(members: dict[str, bytes], *, utf8_flag: bool = True) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = out.getvalue()
    if not utf8_flag:  # as old Windows tools write it: UTF-8 bytes, no flag
        raw = raw.replace(b"\x00\x08", b"\x00\x00")
    return raw


def test_zip_member_names_and_nested_archives() -> None:
    inner = make_zip({"deep/секрет.txt": b"x"})
    outer = make_zip({"readme.txt": b"hi", "보고서/회의록.pdf": b"%PDF", "inner.zip": inner})
    result = one(outer, "application/zip", "bundle.zip")
    assert result.status == OK
    assert result.names == ("readme.txt", "보고서/회의록.pdf", "inner.zip", "deep/секрет.txt")
    assert result.text == ""


def test_zip_names_without_the_utf8_flag() -> None:
    raw = make_zip({"회의록.txt": b"x"}, utf8_flag=False)
    result = one(raw, "application/octet-stream", "a.zip")
    assert result.status == OK
    assert "회의록.txt" in result.names


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("maker", "ctype"),
    [(make_docx, DOCX), (make_xlsx, XLSX), (make_pptx, PPTX), (make_odt, ODT), (make_ods, ODS)],
)
def test_damaged_office_documents_fail_cleanly(maker, ctype: str) -> None:
    good = maker()
    for bad in (truncated(good), b"\x00garbage" * 100, good[:10]):
        result = one(bad, ctype, "")
        assert result.status == FAILED, (ctype, result)
        assert result.detail


def test_garbage_in_the_xml_of_a_docx_fails_cleanly() -> None:
    good = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in good.infolist():
            data = good.read(info)
            if info.filename == "word/document.xml":
                data = data[: len(data) // 2] + b"\xff\xfe<<<"
            zf.writestr(info, data)
    result = one(out.getvalue(), DOCX, "")
    assert result.status == FAILED
    assert "word/document.xml" in result.detail


def recompressed(data: bytes, method: int) -> bytes:
    """The same zip file, every member compressed with ``method``, as zipfile writes it."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for info in source.infolist():
            zf.writestr(info.filename, source.read(info))
    return out.getvalue()


def long_docx() -> bytes:
    """A docx whose document.xml inflates to a few hundred KB: several steps of reading."""
    d = docx.Document()
    for i in range(3000):
        d.add_paragraph(f"paragraph {i} of the quokka report")
    return saved(d)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_office_documents_compressed_with_bzip2_or_lzma(method: int) -> None:
    result = one(recompressed(make_docx(), method), DOCX, "r.docx")
    assert result.status == OK, result
    for word in ("aardvark", "회의는", "東京での会議は", "tablecellword", "headerword"):
        assert word in result.text
    assert one(recompressed(make_xlsx(), method), XLSX, "r.xlsx").text.count("platypus") == 2
    long = one(recompressed(long_docx(), method), DOCX, "long.docx")
    assert long.status == OK, long
    assert long.text == one(long_docx(), DOCX, "long.docx").text
    assert "paragraph 2999 of the quokka report" in long.text


def member_span(data: bytes, name: str) -> tuple[int, int]:
    """Where the compressed bytes of member ``name`` lie in the zip file ``data``."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.compress_size


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_damaged_bzip2_or_lzma_members_fail_cleanly(method: int) -> None:
    good = recompressed(long_docx(), method)
    start, end = member_span(good, "word/document.xml")
    crc = zipfile.ZipFile(io.BytesIO(good)).getinfo("word/document.xml").CRC
    middle = (start + end) // 2
    damaged = [
        good[:middle] + bytes(200) + good[middle + 200 :],  # garbage in the stream
        good[: start + 20] + b"\xff" * 20 + good[start + 40 :],  # near its start
        good[:start] + b"\x09\x04\x05\x00\xff" + good[start + 5 :],  # bad LZMA properties
        good.replace(struct.pack("<I", crc), struct.pack("<I", crc ^ 1)),  # CRC not matching
    ]
    for bad in damaged:
        result = one(bad, DOCX, "bad.docx")
        assert result.status == FAILED, result
        assert "word/document.xml" in result.detail
        assert "\n" not in result.detail


def test_lzma_member_declaring_a_4_gb_dictionary_is_read_with_what_it_needs() -> None:
    data = recompressed(make_docx(), zipfile.ZIP_LZMA)
    start, _ = member_span(data, "word/document.xml")
    # the properties' last four bytes: the dictionary's size
    data = data[: start + 5] + b"\xff\xff\xff\xff" + data[start + 9 :]
    result = one(data, DOCX, "big-dictionary.docx")
    assert result.status == OK, result
    assert "aardvark" in result.text


def test_a_compression_method_zipfile_lacks_is_named_not_called_encrypted() -> None:
    raw = bytearray(make_zip({"word/document.xml": b"<w:document/>"}))
    # deflate64 (method 9), which Windows Explorer writes for large files
    struct.pack_into("<H", raw, 8, 9)
    struct.pack_into("<H", raw, raw.index(b"PK\x01\x02") + 10, 9)
    result = one(bytes(raw), DOCX, "big.docx")
    assert result.status == FAILED
    assert "deflate64" in result.detail
    assert "encrypted" not in result.detail


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (b"not rtf at all \x00\xff", "application/rtf"),
        (truncated(make_zip({"a.txt": b"x" * 1000})), "application/zip"),
        (b"PK\x03\x04" + bytes(50), "application/zip"),
    ],
)
def test_damaged_rtf_and_zip_fail_cleanly(data: bytes, ctype: str) -> None:
    result = one(data, ctype, "")
    assert result.status == FAILED
    assert result.detail


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (b"\xff\xfe\x00garbage\x80" * 50, "message/rfc822"),
        (b"<html><body><p>unclosed \xff\xfe <b><i>", "text/html"),
        (b"{\\rtf1 {{{{{{ \\'zz \\u99999999999? \\bin5 ", "application/rtf"),
    ],
)
def test_hostile_input_to_lenient_formats_never_raises(data: bytes, ctype: str) -> None:
    result = one(data, ctype, "")
    assert result.status in (OK, FAILED)
    assert "\x00" not in result.text


def test_pdf_without_pdftotext_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # the worker inherits it
    result = one(b"%PDF-1.4\n%%EOF\n", "application/pdf", "a.pdf")
    assert result.status == FAILED
    assert result.detail == "pdftotext is not installed: apt-get install poppler-utils"


@pytest.mark.parametrize(("number", "name"), [(11, "SIGSEGV"), (40, "signal 40")])
def test_pdftotext_killed_by_a_signal_is_failed_naming_it(
    number: int, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stand-in for pdftotext that dies of the signal; 40 is a real-time one, which
    # signal.Signals has no member for
    stand_in = tmp_path / "pdftotext"
    stand_in.write_text(f"#!/bin/sh\nkill -{number} $$\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))  # the worker inherits it
    result = one(b"%PDF-1.4\n%%EOF\n", "application/pdf", "a.pdf")
    assert result.status == FAILED
    assert result.detail == f"pdftotext crashed ({name}; out of memory?)"


def test_eight_bit_and_encoded_names_inside_an_attached_message() -> None:
    raw = (
        b"Subject: names\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="\xed\x9a\x8c\xec\x9d\x98.bin"\r\n\r\n'
        b"xx\r\n"
        b"--b\r\nContent-Type: text/plain\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''%E4%BC%9A%E8%AD%B0.txt\r\n\r\n"
        b"meeting notes tamarin\r\n"
        b"--b--\r\n"
    )
    result = one(raw, "message/rfc822", "")
    assert result.status == OK, result
    assert result.names == ("회의.bin", "会議.txt")
    assert "tamarin" in result.text


def test_a_huge_file_name_is_cut_not_sent_whole() -> None:
    result = one(b"text", "text/plain", "x" * (10 << 20))
    assert result.status == OK
    assert result.text == "text"
