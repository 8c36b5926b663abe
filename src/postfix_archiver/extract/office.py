"""Office Open XML (Word, Excel, PowerPoint, their macro and template variants) and
OpenDocument (text, spreadsheet, presentation): text of the XML members inside the zip."""

from __future__ import annotations

import re
import zipfile

from . import zips
from .job import Failed, Job
from .xml_stream import local, parse


class Paragraphs:
    """Character data inside ``text`` elements; a line end after each paragraph, a tab for
    a tab, a line end for a line break. Fits Word (w:t), PowerPoint and drawings (a:t)."""

    def __init__(self, job: Job, text: frozenset[str], newline: frozenset[str]) -> None:
        self.job = job
        self.text = text
        self.newline = newline
        self.inside = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag in self.text:
            self.inside += 1
        elif tag == "tab":
            self.job.add_text("\t")
        elif tag in ("br", "cr"):
            self.job.add_text("\n")

    def end(self, name: str) -> None:
        tag = local(name)
        if tag in self.text:
            self.inside -= 1
        elif tag in self.newline:
            self.job.add_text("\n")

    def chars(self, data: str) -> None:
        if self.inside > 0:
            self.job.add_text(data)


class OpenDocumentBody:
    """All character data in an OpenDocument content.xml (its text is element content, in
    spans, links and table cells alike); a line end after each paragraph and heading."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "s":
            self.job.add_text(" ")
        elif tag == "tab":
            self.job.add_text("\t")
        elif tag == "line-break":
            self.job.add_text("\n")

    def end(self, name: str) -> None:
        if local(name) in ("p", "h"):
            self.job.add_text("\n")

    def chars(self, data: str) -> None:
        self.job.add_text(data)


class SharedStrings:
    """Excel's shared strings table: one string per ``si``, without phonetic runs (rPh)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.strings: list[str] = []
        self.parts: list[str] = []
        self.in_t = 0
        self.in_phonetic = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "t":
            self.in_t += 1
        elif tag == "rPh":
            self.in_phonetic += 1

    def end(self, name: str) -> None:
        tag = local(name)
        if tag == "t":
            self.in_t -= 1
        elif tag == "rPh":
            self.in_phonetic -= 1
        elif tag == "si":
            self.strings.append("".join(self.parts))
            self.parts.clear()

    def chars(self, data: str) -> None:
        if self.in_t > 0 and self.in_phonetic == 0:
            self.parts.append(data)


class Sheet:
    """An Excel worksheet: each cell's value (shared strings looked up), tab-separated, a
    line per row."""

    def __init__(self, job: Job, strings: list[str]) -> None:
        self.job = job
        self.strings = strings
        self.kind = ""
        self.value: list[str] = []
        self.collect = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        tag = local(name)
        if tag == "c":
            self.kind = attrs.get("t", "")
            self.value.clear()
        elif tag in ("v", "t"):
            self.collect += 1

    def end(self, name: str) -> None:
        tag = local(name)
        if tag in ("v", "t"):
            self.collect -= 1
        elif tag == "c":
            value = "".join(self.value).strip()
            if self.kind == "s":
                index = int(value) if value.isascii() and value.isdigit() else -1
                value = self.strings[index] if 0 <= index < len(self.strings) else ""
            elif self.kind == "b":
                value = ""  # TRUE/FALSE as 1/0: nothing anyone searches for
            if value:
                self.job.add_text(value + "\t")
        elif tag == "row":
            self.job.add_text("\n")

    def chars(self, data: str) -> None:
        if self.collect > 0:
            self.value.append(data)


_NUMBER = re.compile(r"(\d+)\.xml$")


def _numbered(zf: zipfile.ZipFile, folder: str, stem: str) -> list[zipfile.ZipInfo]:
    """Members ``folder/stemN.xml`` in the order of N (slide 10 after slide 9)."""
    found = []
    for info in zf.infolist():
        name = info.filename
        if name.startswith(folder) and name[len(folder) :].startswith(stem):
            m = _NUMBER.search(name)
            if m and "/" not in name[len(folder) :]:
                found.append((int(m.group(1)), info))
    return [info for _, info in sorted(found, key=lambda pair: pair[0])]


def _member(zf: zipfile.ZipFile, name: str) -> zipfile.ZipInfo | None:
    try:
        return zf.getinfo(name)
    except KeyError:
        return None


_WORD_EXTRA = re.compile(r"word/(header|footer)\d*\.xml$|word/(footnotes|endnotes|comments)\.xml$")
_WORD_TAGS = (frozenset({"t"}), frozenset({"p"}))


def word(zf: zipfile.ZipFile, job: Job) -> None:
    main = zf.getinfo("word/document.xml")
    extra = [i for i in zf.infolist() if _WORD_EXTRA.match(i.filename)]
    for info in (main, *extra):
        parse(zips.chunks(zf, info, job), Paragraphs(job, *_WORD_TAGS), job, info.filename)


def powerpoint(zf: zipfile.ZipFile, job: Job) -> None:
    slides = _numbered(zf, "ppt/slides/", "slide")
    notes = _numbered(zf, "ppt/notesSlides/", "notesSlide")
    for info in (*slides, *notes):
        parse(zips.chunks(zf, info, job), Paragraphs(job, *_WORD_TAGS), job, info.filename)


def excel(zf: zipfile.ZipFile, job: Job) -> None:
    strings = SharedStrings(job)
    table = _member(zf, "xl/sharedStrings.xml")
    if table is not None:
        parse(zips.chunks(zf, table, job), strings, job, table.filename)
    for info in _numbered(zf, "xl/worksheets/", "sheet"):
        parse(zips.chunks(zf, info, job), Sheet(job, strings.strings), job, info.filename)


def opendocument(zf: zipfile.ZipFile, job: Job) -> None:
    info = zf.getinfo("content.xml")
    parse(zips.chunks(zf, info, job), OpenDocumentBody(job), job, "content.xml")


def _is_opendocument(zf: zipfile.ZipFile) -> bool:
    info = _member(zf, "mimetype")
    if info is None or _member(zf, "content.xml") is None or info.file_size > 200:
        return False
    try:
        with zf.open(info) as f:
            return f.read(200).startswith(b"application/vnd.oasis.opendocument.")
    except Exception:
        return False


def document_kind(zf: zipfile.ZipFile) -> str | None:
    """Which office format a zip file is, by the members every producer writes."""
    if _member(zf, "word/document.xml"):
        return "word"
    if _member(zf, "xl/workbook.xml"):
        return "excel"
    if _member(zf, "ppt/presentation.xml"):
        return "powerpoint"
    if _is_opendocument(zf):
        return "opendocument"
    return None


READERS = {"word": word, "excel": excel, "powerpoint": powerpoint, "opendocument": opendocument}


def read_document(zf: zipfile.ZipFile, kind: str, job: Job) -> None:
    try:
        READERS[kind](zf, job)
    except KeyError as exc:  # a member the format needs is missing
        raise Failed(f"not a complete {kind} document: {exc}") from None
