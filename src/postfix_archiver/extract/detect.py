"""Which extractor an attachment goes to: by its bytes, its declared type and its name.

Mail often declares ``application/octet-stream`` or a wrong type, so the first bytes decide
where they are unambiguous (a PDF, a zip file, RTF); otherwise the declared content type, then
the file name's extension. Runs in the calling process on the first bytes only, so images and
other binaries are answered UNSUPPORTED without starting an extraction process.
"""

from __future__ import annotations

PDF = "pdf"
ZIP = "zip"  # a zip file: Office Open XML, OpenDocument, or an archive (member names)
RTF = "rtf"
HTML = "html"
TEXT = "text"
MESSAGE = "message"

# the bytes looked at
HEAD = 1024

_TYPES = {
    "application/pdf": PDF,
    "application/x-pdf": PDF,
    "application/acrobat": PDF,
    "application/zip": ZIP,
    "application/x-zip": ZIP,
    "application/x-zip-compressed": ZIP,
    "application/rtf": RTF,
    "application/x-rtf": RTF,
    "text/rtf": RTF,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "message/rfc822": MESSAGE,
    "message/global": MESSAGE,
    "application/csv": TEXT,
    "application/x-csv": TEXT,
    "application/json": TEXT,
    "application/xml": TEXT,
}
_TYPE_PREFIXES = (
    ("application/vnd.openxmlformats-officedocument.", ZIP),
    ("application/vnd.ms-word.", ZIP),  # macro-enabled .docm and friends (zip inside)
    ("application/vnd.ms-excel.sheet.", ZIP),
    ("application/vnd.ms-powerpoint.presentation.", ZIP),
    ("application/vnd.oasis.opendocument.", ZIP),
)
_EXTENSIONS = {
    "pdf": PDF,
    "rtf": RTF,
    "htm": HTML,
    "html": HTML,
    "xhtml": HTML,
    "eml": MESSAGE,
    **dict.fromkeys(("zip", "docx", "docm", "dotx", "dotm", "xlsx", "xlsm", "xltx"), ZIP),
    **dict.fromkeys(("xltm", "pptx", "pptm", "potx", "ppsx", "ppsm", "odt", "ott"), ZIP),
    **dict.fromkeys(("ods", "ots", "odp", "otp", "odg"), ZIP),
    **dict.fromkeys(("txt", "text", "csv", "tsv", "md", "log", "ics", "vcf", "xml"), TEXT),
    **dict.fromkeys(("json", "ini", "yaml", "yml"), TEXT),
}
# types that are never text, whatever the name says
_BINARY_MAJOR = ("image/", "audio/", "video/", "font/", "model/")


def media_type(content_type: str) -> str:
    """``type/subtype`` of a Content-Type value, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def charset(content_type: str) -> str | None:
    """The charset parameter of a Content-Type value, if any."""
    for param in content_type.split(";")[1:]:
        key, sep, value = param.partition("=")
        if sep and key.strip().lower() == "charset":
            return value.strip().strip("\"'").strip() or None
    return None


def extension(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rpartition(".")[2].lower() if "." in base else ""


# signatures of files that hold no text (images, compressed streams, media, executables):
# whatever the name or the declared type says, reading them as text would index garbage
_BINARY_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"\x1f\x8b",  # gzip
    b"BZh",
    b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"\x7fELF",
    b"OggS",
    b"fLaC",
)


def by_magic(head: bytes) -> str | None:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if head.startswith(b"%PDF-"):
        return PDF
    if head.lstrip()[:5] == b"{\\rtf":
        return RTF
    return None


def kind(head: bytes, content_type: str, filename: str) -> str | None:
    """The extractor for an attachment starting with ``head``, or None when it has no text."""
    found = by_magic(head[:HEAD])
    if found:
        return found
    if head.startswith(_BINARY_MAGIC):
        return None
    mtype = media_type(content_type)
    if mtype in _TYPES:
        return _TYPES[mtype]
    for prefix, value in _TYPE_PREFIXES:
        if mtype.startswith(prefix):
            return value
    if mtype.startswith("text/"):
        return TEXT
    if mtype.startswith(_BINARY_MAJOR):
        return None
    by_name = _EXTENSIONS.get(extension(filename))
    if by_name in (TEXT, HTML) and b"\x00" in head[:HEAD]:
        return None  # named .txt but binary (text has no NUL bytes; UTF-16 says so in its type)
    if by_name is None and b"%PDF-" in head[:HEAD]:
        # PDF readers accept the header anywhere in the first KB (after a MacBinary or mail
        # client's prefix); only for an undeclared type, so text quoting "%PDF-" stays text
        return PDF
    return by_name
