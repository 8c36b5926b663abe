"""Byte-exact splitting of a message into a skeleton and its large leaf parts.

Attachments are stored once across all messages: each MIME leaf part body above the
threshold is cut out of the message and stored under the SHA-256 of its content; what is left
(headers, boundaries, small parts) is the skeleton. ``rebuild`` puts the bytes back together
exactly. The MIME structure is found by scanning bytes, not by re-serializing a parsed
message, so nothing about the original (line endings, odd boundaries, malformed parts) is
changed: a region the scanner misreads is only stored less compactly, never altered.

A base64 body whose encoding is regular (fixed line width, one kind of line ending) is stored
decoded, with the width and line ending as its recipe; the same attachment sent with CRLF by
SMTP and LF by the pipe filter is then stored once, and the decoded bytes compress better.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_BLANK_LINE = re.compile(rb"\r?\n(\r?\n)")
_MAGIC_SPLIT = b"S"
_MAGIC_WHOLE = b"R"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_DEPTH = 20  # deeper nesting is stored as is: cheap insurance against hostile input


@dataclass(frozen=True, slots=True)
class PartRef:
    """A cut-out part body: stored content ``sha256`` and how to turn it back into bytes."""

    sha256: str
    encoding: str  # "raw": stored as is; "b64": stored decoded, re-encoded on rebuild
    width: int = 0
    eol: bytes = b""
    tail: bytes = b""

    def render(self, content: bytes) -> bytes:
        if self.encoding == "raw":
            return content
        encoded = base64.b64encode(content)
        w = self.width
        return self.eol.join(encoded[i : i + w] for i in range(0, len(encoded), w)) + self.tail


Segment = bytes | PartRef


@dataclass(frozen=True, slots=True)
class Split:
    segments: list[Segment]
    parts: dict[str, bytes]  # sha256 -> content to store

    @property
    def is_whole(self) -> bool:
        return not self.parts


def split_message(raw: bytes, threshold: int, digest: Callable[[bytes], str]) -> Split:
    """Cut leaf part bodies of at least ``threshold`` bytes out of ``raw``."""
    regions: list[tuple[int, int, str]] = []
    try:
        _scan(raw, 0, len(raw), threshold, regions, 0)
    except Exception:
        regions = []
    segments: list[Segment] = []
    parts: dict[str, bytes] = {}
    pos = 0
    for start, end, cte in regions:
        body = raw[start:end]
        ref, content = _encode_part(body, cte, digest)
        if start > pos:
            segments.append(raw[pos:start])
        segments.append(ref)
        parts[ref.sha256] = content
        pos = end
    if pos < len(raw):
        segments.append(raw[pos:])
    return Split(segments, parts)


def _encode_part(body: bytes, cte: str, digest: Callable[[bytes], str]) -> tuple[PartRef, bytes]:
    if cte == "base64":
        ref = _as_base64(body, digest)
        if ref is not None:
            return ref
    return PartRef(digest(body), "raw"), body


def _as_base64(body: bytes, digest: Callable[[bytes], str]) -> tuple[PartRef, bytes] | None:
    core = body.rstrip(b" \t\r\n")
    tail = body[len(core) :]
    first_nl = core.find(b"\n")
    if first_nl == -1:
        eol, width = b"\n", len(core)
    else:
        eol = b"\r\n" if first_nl > 0 and core[first_nl - 1] == 0x0D else b"\n"
        width = first_nl - (len(eol) - 1)
    if width <= 0 or width % 4:
        return None
    try:
        content = base64.b64decode(core, validate=False)
    except (binascii.Error, ValueError):
        return None
    ref = PartRef(digest(content), "b64", width, eol, tail)
    if ref.render(content) != body:
        return None  # irregular encoding: keep the bytes as they are
    return ref, content


def _scan(
    raw: bytes, start: int, end: int, threshold: int, out: list[tuple[int, int, str]], depth: int
) -> None:
    """Append (start, end, transfer-encoding) of large leaf bodies in raw[start:end]."""
    if depth > _MAX_DEPTH or end - start < threshold:
        return
    blank = _BLANK_LINE.search(raw, start, end)
    if raw.startswith((b"\n", b"\r\n"), start):
        header_end, body_start = start, start + (1 if raw[start] == 0x0A else 2)
    elif blank is None:
        return
    else:
        header_end, body_start = blank.start(1), blank.end(1)
    headers = _HEADER_PARSER.parsebytes(raw[start:header_end])
    ctype = headers.get_content_type()
    if ctype.startswith("multipart/"):
        boundary = headers.get_param("boundary")
        if isinstance(boundary, str) and boundary:
            _scan_multipart(raw, body_start, end, boundary, threshold, out, depth)
        return
    if ctype == "message/rfc822":
        _scan(raw, body_start, end, threshold, out, depth + 1)
        return
    if end - body_start >= threshold:
        cte = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
        out.append((body_start, end, cte))


def _scan_multipart(
    raw: bytes,
    start: int,
    end: int,
    boundary: str,
    threshold: int,
    out: list[tuple[int, int, str]],
    depth: int,
) -> None:
    try:
        b = boundary.encode("ascii")
    except UnicodeEncodeError:
        return
    delimiter = re.compile(rb"^--" + re.escape(b) + rb"(--)?[ \t]*(\r?\n|\Z)", re.M)
    content_start: int | None = None
    for m in delimiter.finditer(raw, start, end):
        if content_start is not None:
            # the line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1)
            content_end = m.start()
            if raw[content_end - 2 : content_end] == b"\r\n":
                content_end -= 2
            elif raw[content_end - 1 : content_end] == b"\n":
                content_end -= 1
            if content_end > content_start:
                _scan(raw, content_start, content_end, threshold, out, depth + 1)
        if m.group(1):  # close delimiter: the rest is epilogue
            return
        content_start = m.end()
    if content_start is not None and end > content_start:
        _scan(raw, content_start, end, threshold, out, depth + 1)


def encode_manifest(split: Split, raw: bytes) -> bytes:
    """The stored form of a message: the whole bytes, or skeleton + part references."""
    if split.is_whole:
        return _MAGIC_WHOLE + raw
    segs: list[int | list[object]] = []
    literals: list[bytes] = []
    for seg in split.segments:
        if isinstance(seg, bytes):
            segs.append(len(seg))
            literals.append(seg)
        else:
            segs.append(
                [
                    seg.sha256,
                    seg.encoding,
                    seg.width,
                    seg.eol.decode("latin-1"),
                    seg.tail.decode("latin-1"),
                ]
            )
    header = json.dumps({"v": 1, "segs": segs}, separators=(",", ":")).encode()
    return _MAGIC_SPLIT + header + b"\n" + b"".join(literals)


def decode_manifest(data: bytes) -> list[Segment]:
    """Segments of a stored message (see ``encode_manifest``)."""
    if data.startswith(_MAGIC_WHOLE):
        return [data[1:]]
    if not data.startswith(_MAGIC_SPLIT):
        raise ValueError("not a message manifest")
    nl = data.index(b"\n")
    header = json.loads(data[1:nl])
    pos = nl + 1
    segments: list[Segment] = []
    for seg in header["segs"]:
        if isinstance(seg, int):
            segments.append(data[pos : pos + seg])
            pos += seg
        else:
            sha, enc, width, eol, tail = seg
            # a damaged reference must fail here, not as a store key or in render()
            if not (
                isinstance(sha, str)
                and _SHA256.fullmatch(sha)
                and enc in ("raw", "b64")
                and isinstance(width, int)
                and (width > 0 or enc == "raw")
                and isinstance(eol, str)
                and isinstance(tail, str)
            ):
                raise ValueError(f"bad part reference {seg!r}")
            segments.append(PartRef(sha, enc, width, eol.encode("latin-1"), tail.encode("latin-1")))
    return segments


def part_refs(segments: list[Segment]) -> list[PartRef]:
    return [s for s in segments if isinstance(s, PartRef)]


def rebuild(segments: list[Segment], fetch: Callable[[str], bytes]) -> bytes:
    """The original bytes from segments; ``fetch(sha256)`` returns a part's stored content."""
    out: list[bytes] = []
    for seg in segments:
        out.append(seg if isinstance(seg, bytes) else seg.render(fetch(seg.sha256)))
    return b"".join(out)
