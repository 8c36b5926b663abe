"""PDF attachments through the real ``pdftotext`` (Debian's poppler-utils), with PDFs
written by fpdf2: Korean text, many pages, damaged files and a PDF bomb."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import pytest
from fpdf import FPDF
from requirements import require_binary, unavailable

from postfix_archiver.extract import FAILED, OK, TIMEOUT, Extraction, Limits, extract_many
from postfix_archiver.extract.process import Worker

pytestmark = [pytest.mark.integration]

# a font with Hangul (Debian's fonts-nanum), for fpdf2 to embed
NANUM = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")


@pytest.fixture(autouse=True)
def pdftotext() -> None:
    require_binary("pdftotext", "poppler-utils (pdftotext)")


def one(data: bytes, limits: Limits | None = None) -> Extraction:
    return extract_many([(data, "application/pdf", "a.pdf")], limits or Limits())[0]


def korean_pdf() -> bytes:
    if not NANUM.exists():
        unavailable(f"a Korean font is not installed ({NANUM}; apt-get install fonts-nanum)")
    pdf = FPDF()
    pdf.add_page()
    pdf.add_font("nanum", fname=str(NANUM))
    pdf.set_font("nanum", size=14)
    pdf.cell(text="Minutes of the meeting about pangolins")
    pdf.ln()
    pdf.cell(text="회의록: 보고서를 금요일까지 제출")
    return bytes(pdf.output())


def long_pdf(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for page in range(pages):
        pdf.add_page()
        for line in range(40):
            pdf.cell(text=f"page {page} line {line} lorem ipsum dolor sit amet")
            pdf.ln()
    return bytes(pdf.output())


def test_text_of_a_pdf_with_korean() -> None:
    result = one(korean_pdf())
    assert result.status == OK, result
    assert "pangolins" in result.text
    assert "회의록" in result.text
    assert "보고서를" in result.text


def test_pdf_declared_as_octet_stream_is_found_by_its_bytes() -> None:
    result = extract_many([(korean_pdf(), "application/octet-stream", "scan")], Limits())[0]
    assert result.status == OK
    assert "pangolins" in result.text


@pytest.mark.parametrize("damage", ["truncated", "garbage", "header only"])
def test_damaged_pdf_is_failed(damage: str) -> None:
    good = long_pdf(3)
    data = {
        "truncated": good[: len(good) // 3],
        "garbage": b"%PDF-1.7\n" + bytes(range(256)) * 40,
        "header only": b"%PDF-1.4\n",
    }[damage]
    result = one(data)
    assert result.status == FAILED, result
    assert "pdftotext" in result.detail


def test_long_pdf_is_cut_at_max_output_and_pdftotext_stopped() -> None:
    result = one(long_pdf(200), Limits(max_output=20_000))
    assert result.status == OK
    assert len(result.text) == 20_000
    assert result.text.startswith("page 0 line 0")
    assert "cut" in result.detail


def flate_bomb(inflated: int) -> bytes:
    """A one-page PDF whose content stream inflates to ``inflated`` bytes of a text
    operator repeated: small on disk, endless work for a reader."""
    content = zlib.compress(b"BT /F1 12 Tf 10 10 Td (bomb) Tj ET\n" * (inflated // 36), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def group_members(pgid: int) -> list[int]:
    """Processes still alive (not zombies) in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def test_pdf_bomb_stops_at_a_limit_and_pdftotext_with_it() -> None:
    data = flate_bomb(400 << 20)  # pdftotext alone works on it for minutes
    assert len(data) < 2 << 20
    with Worker(Limits(timeout=3)) as worker:
        worker.extract(b"warm up", "text/plain", "")
        group = worker.pid
        assert group is not None
        started = time.monotonic()
        result = worker.extract(data, "application/pdf", "bomb.pdf")
        assert time.monotonic() - started < 6
        # pdftotext hits the worker's memory limit (RLIMIT_AS, inherited) or the timeout
        assert result.status == TIMEOUT or (
            result.status == FAILED and "out of memory" in result.detail
        ), result
        time.sleep(0.2)
        assert group_members(group) == []
