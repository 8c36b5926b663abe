"""Benchmark: attachment text extraction, through the worker processes the indexer uses.

Run: ``.venv/bin/python bench/extract.py [--copies N] [--small N]``

Writes attachments with the libraries people's tools use (fpdf2, python-docx, openpyxl,
python-pptx, odfpy) plus RTF, HTML, CSV, an attached message and a zip file, then prints
- per format and mixed: MB/s of attachment bytes through ``extract_many`` (one worker reused,
  as the indexer calls it), and the same read in-process (``run.extract_here``, no isolation);
- per attachment: the overhead of isolation on a small one: in-process, a reused worker
  (``extract_many``), and a process per attachment (``extract``).
PDFs need pdftotext (apt-get install poppler-utils).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import docx
import openpyxl
import pptx
from fpdf import FPDF
from odf import opendocument, text

from postfix_archiver.extract import OK, Extraction, Limits, extract, extract_many
from postfix_archiver.extract.process import Worker
from postfix_archiver.extract.run import extract_here

Item = tuple[bytes, str, str]
WORDS = [
    *("invoice", "meeting", "quarterly", "report", "budget", "shipment", "contract"),
    *("renewal", "회의록", "보고서", "会議", "東京", "北京会议", "schedule", "approval"),
    *("deadline", "customer", "supplier"),
]


def sentence(i: int, n: int = 12) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


def saved(document: object) -> bytes:
    out = io.BytesIO()
    document.save(out)  # type: ignore[attr-defined]
    return out.getvalue()


def make_pdf(pages: int) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for page in range(pages):
        pdf.add_page()
        for line in range(45):
            pdf.cell(text=f"{page}.{line} lorem ipsum dolor sit amet invoice report budget")
            pdf.ln()
    return bytes(pdf.output())


def make_docx(paragraphs: int) -> bytes:
    d = docx.Document()
    for i in range(paragraphs):
        d.add_paragraph(sentence(i))
    return saved(d)


def make_xlsx(rows: int) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for i in range(rows):
        ws.append([WORDS[i % len(WORDS)], sentence(i, 4), i, i * 1.5])
    return saved(wb)


def make_pptx(slides: int) -> bytes:
    p = pptx.Presentation()
    for i in range(slides):
        s = p.slides.add_slide(p.slide_layouts[1])
        s.shapes.title.text = sentence(i, 4)
        s.placeholders[1].text = "\n".join(sentence(i + k) for k in range(6))
    return saved(p)


def make_odt(paragraphs: int) -> bytes:
    doc = opendocument.OpenDocumentText()
    for i in range(paragraphs):
        doc.text.addElement(text.P(text=sentence(i)))
    return saved(doc)


def make_rtf(paragraphs: int) -> bytes:
    body = "".join(
        "\\pard " + "".join(c if ord(c) < 128 else f"\\u{ord(c)}?" for c in sentence(i)) + "\\par\n"
        for i in range(paragraphs)
    )
    return ("{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\f0\\fs20\n" + body + "}").encode()


def make_html(paragraphs: int) -> bytes:
    body = "".join(f"<p class='x'><b>{i}</b> {sentence(i)}</p>\n" for i in range(paragraphs))
    return f"<html><head><style>p{{}}</style></head><body>{body}</body></html>".encode()


def make_csv(rows: int) -> bytes:
    return "".join(f"{i},{sentence(i, 5)},{i * 3}\n" for i in range(rows)).encode()


def make_eml(paragraphs: int) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "Fwd: " + sentence(1, 5)
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "bob@example.com"
    msg.set_content("\n".join(sentence(i) for i in range(paragraphs)))
    msg.add_attachment(
        make_docx(paragraphs // 2),
        maintype="application",
        subtype="msword",
        filename="attached.docx",
    )
    return msg.as_bytes()


def make_zip(members: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(members):
            zf.writestr(f"folder{i % 10}/file-{i}-{WORDS[i % len(WORDS)]}.txt", sentence(i) * 20)
    return out.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
FORMATS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "pdf": (lambda: make_pdf(30), "application/pdf", "a.pdf"),
    "docx": (lambda: make_docx(2000), DOCX, "a.docx"),
    "xlsx": (lambda: make_xlsx(5000), XLSX, "a.xlsx"),
    "pptx": (lambda: make_pptx(40), PPTX, "a.pptx"),
    "odt": (lambda: make_odt(2000), "application/vnd.oasis.opendocument.text", "a.odt"),
    "rtf": (lambda: make_rtf(2000), "application/rtf", "a.rtf"),
    "html": (lambda: make_html(3000), "text/html; charset=utf-8", "a.html"),
    "csv": (lambda: make_csv(10000), "text/csv; charset=utf-8", "a.csv"),
    "eml": (lambda: make_eml(1000), "message/rfc822", "a.eml"),
    "zip": (lambda: make_zip(2000), "application/zip", "a.zip"),
}


def timed(items: list[Item], read: Callable[[list[Item]], list[Extraction]]) -> float:
    """Seconds to read ``items``; every one must come out OK."""
    started = time.perf_counter()
    results = read(items)
    took = time.perf_counter() - started
    bad = [r for r in results if r.status != OK]
    if bad:
        raise SystemExit(f"extraction failed: {bad[0]}")
    return took


def in_process(items: list[Item]) -> list[Extraction]:
    limits = Limits()
    return [extract_here(d, c, n, limits) for d, c, n in items]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10, help="attachments per format")
    parser.add_argument("--small", type=int, default=200, help="small attachments timed")
    args = parser.parse_args()
    limits = Limits()

    print("per format, a warm worker (the same worker reads them all, as the indexer's would):")
    print(f"{'format':<7} {'size':>7} {'isolated':>20} {'in-process':>20}")
    mixed: list[Item] = []
    with Worker(limits) as worker:

        def isolated(items: list[Item]) -> list[Extraction]:
            return [worker.extract(d, c, n) for d, c, n in items]

        for name, (make, ctype, filename) in FORMATS.items():
            data = make()
            items = [(data, ctype, filename)] * args.copies
            mixed += items
            isolated(items[:1])  # the reader's imports, once per worker
            size = len(data) * len(items)
            cells = []
            for read in (isolated, in_process):
                took = timed(items, read)
                cells.append(f"{size / took / 1e6:6.2f} MB/s {took / len(items) * 1e3:6.1f} ms")
            print(f"{name:<7} {len(data) / 1024:5.0f}KB {cells[0]:>20} {cells[1]:>20}")
    total = sum(len(d) for d, _, _ in mixed)
    took = timed(mixed, lambda items: extract_many(items, limits))
    here = timed(mixed, in_process)
    print(
        f"mixed, {len(mixed)} attachments, {total / 1e6:.1f} MB: extract_many (a new worker) "
        f"{total / took / 1e6:.2f} MB/s, in-process {total / here / 1e6:.2f} MB/s"
    )

    small = [
        (f"small attachment {i} {sentence(i)}".encode(), "text/plain", "s.txt")
        for i in range(args.small)
    ]
    print(f"\nper small attachment ({args.small} of {len(small[0][0])} bytes of text):")
    took = timed(small, in_process)
    print(f"  in-process                  {took / len(small) * 1e3:8.3f} ms")
    took = timed(small, lambda items: extract_many(items, limits))
    print(f"  extract_many (one worker)   {took / len(small) * 1e3:8.3f} ms")
    few = small[: max(1, args.small // 10)]
    took = timed(few, lambda items: [extract(d, c, n, limits) for d, c, n in items])
    print(f"  extract (a process each)    {took / len(few) * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
