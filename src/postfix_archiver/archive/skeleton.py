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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message

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
    # each part renders back to its exact bytes (``_encode_part`` checks that), so the
    # message rebuilds exactly as long as the regions are in order and do not overlap
    if not _in_order(regions):
        regions = []  # a scanner surprise costs compactness, never bytes
    segments: list[Segment] = []
    parts: dict[str, bytes] = {}
    pos = 0
    for start, end, cte in regions:
        ref, content = _encode_part(raw, start, end, cte, digest)
        if start > pos:
            segments.append(raw[pos:start])
        segments.append(ref)
        parts[ref.sha256] = content
        pos = end
    if pos < len(raw):
        segments.append(raw[pos:])
    return Split(segments, parts)


def _in_order(regions: list[tuple[int, int, str]]) -> bool:
    prev = 0
    for start, end, _ in regions:
        if start < prev or end < start:
            return False
        prev = end
    return True


def _encode_part(
    raw: bytes, start: int, end: int, cte: str, digest: Callable[[bytes], str]
) -> tuple[PartRef, bytes]:
    if cte == "base64":
        found = _as_base64(raw, start, end, digest)
        if found is not None:
            return found
    body = raw[start:end]
    return PartRef(digest(body), "raw"), body


def _as_base64(
    raw: bytes, start: int, end: int, digest: Callable[[bytes], str]
) -> tuple[PartRef, bytes] | None:
    """The part ``raw[start:end]`` decoded, if re-encoding gives its bytes back exactly.

    Read in place: a copy of the body (or of its re-encoding) would be one more message's
    worth of memory for a big attachment."""
    core_end = _rstrip(raw, start, end)
    tail = raw[core_end:end]
    first_nl = raw.find(b"\n", start, core_end)
    if first_nl == -1:
        eol, width = b"\n", core_end - start
    else:
        eol = b"\r\n" if first_nl > start and raw[first_nl - 1] == 0x0D else b"\n"
        width = first_nl - start - (len(eol) - 1)
    if width <= 0 or width % 4:
        return None
    try:
        # what base64.b64decode(core) does, without its copy of a memoryview
        content = binascii.a2b_base64(memoryview(raw)[start:core_end], strict_mode=False)
    except (binascii.Error, ValueError):
        return None
    ref = PartRef(digest(content), "b64", width, eol, tail)
    if not renders_as(ref, content, raw, start, end):
        return None  # irregular encoding: keep the bytes as they are
    return ref, content


def _rstrip(raw: bytes, start: int, end: int) -> int:
    """Where ``raw[start:end].rstrip(b" \\t\\r\\n")`` would end, mostly without copying."""
    window = raw[max(start, end - 256) : end]
    kept = len(window.rstrip(b" \t\r\n"))
    if kept or end - start <= len(window):
        return end - len(window) + kept
    return start + len(raw[start:end].rstrip(b" \t\r\n"))  # a body of blanks


def renders_as(
    ref: PartRef, content: bytes, raw: bytes, start: int, end: int, lines: int = 1024
) -> bool:
    """``ref.render(content) == raw[start:end]``, compared ``lines`` lines at a time instead
    of building the whole re-encoding (and a list of all its lines) beside the message."""
    w = ref.width
    step = w // 4 * 3 * lines  # whole lines of whole base64 groups: chunks encode alone
    view = memoryview(content)
    pos = start
    for i in range(0, len(content), step):
        encoded = base64.b64encode(view[i : i + step])
        piece = ref.eol.join(encoded[j : j + w] for j in range(0, len(encoded), w))
        if i + step < len(content):
            piece += ref.eol
        if raw[pos : pos + len(piece)] != piece:
            return False
        pos += len(piece)
    return raw[pos:end] == ref.tail


_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_TRANSFER_ENCODING = re.compile(rb"^content-transfer-encoding[ \t]*:[ \t]*([^\s;]*)", re.I | re.M)
_ATTACHMENT = re.compile(
    rb"^content-disposition[ \t]*:[ \t]*attachment|filename\*?[ \t]*=", re.I | re.M
)
_FOLD = re.compile(rb"\r?\n[ \t]")


def _content_type(block: bytes) -> tuple[str, str | None]:
    """Media type and boundary from a header block, without a full header parse."""
    m = _CONTENT_TYPE.search(block)
    if m is None:
        return "text/plain", None
    value = _FOLD.sub(b" ", m.group(1)).decode("latin-1").strip()
    media = value.split(";", 1)[0].strip().lower()
    if not media.startswith("multipart/"):
        return media, None
    holder = Message()  # the stdlib's parameter parsing: quoting, RFC 2231, comments
    holder["Content-Type"] = value
    boundary = holder.get_param("boundary")
    return media, boundary if isinstance(boundary, str) and boundary else None


def _scan(
    raw: bytes, start: int, end: int, threshold: int, out: list[tuple[int, int, str]], depth: int
) -> None:
    """Append (start, end, transfer-encoding) of large attachment bodies in raw[start:end].

    Inline text (a text part without a file name) is not cut: those are the message's own
    words, not files shared between messages, and cutting them costs a blob write each.
    """
    if depth > _MAX_DEPTH or end - start < threshold:
        return
    if raw.startswith((b"\n", b"\r\n"), start):
        header_end, body_start = start, start + (1 if raw[start] == 0x0A else 2)
    else:
        blank = _BLANK_LINE.search(raw, start, end)
        if blank is None:
            return
        header_end, body_start = blank.start(1), blank.end(1)
    block = raw[start:header_end]
    media, boundary = _content_type(block)
    if media.startswith("multipart/"):
        if boundary:
            _scan_multipart(raw, body_start, end, boundary, threshold, out, depth)
        return
    if media == "message/rfc822":
        _scan(raw, body_start, end, threshold, out, depth + 1)
        return
    if end - body_start < threshold:
        return
    if media.startswith("text/") and not _ATTACHMENT.search(block):
        return
    cte = _TRANSFER_ENCODING.search(block)
    out.append((body_start, end, cte.group(1).decode("latin-1").lower() if cte else ""))


def transfer_encoding_before(literal: bytes) -> str:
    """The Content-Transfer-Encoding (lower case; "" if none) of the part whose body a
    skeleton cut out right after ``literal``: ``literal`` ends with that part's header block
    and the empty line after it, as ``_scan`` cut it. The block starts after the delimiter
    line or the empty line before it. A misreading costs only the fast path: whoever decodes
    with it checks the result's SHA-256."""
    text = literal.rstrip(b"\r\n")  # the empty line and the block's last line end
    cut = max(text.rfind(b"\n\n"), text.rfind(b"\n\r\n"), text.rfind(b"\n--"))
    block = text[cut + 1 :] if cut >= 0 else text
    cte = _TRANSFER_ENCODING.search(block)
    return cte.group(1).decode("latin-1").lower() if cte else ""


def _delimiters(raw: bytes, start: int, end: int, marker: bytes) -> Iterator[tuple[int, int, bool]]:
    """(line start, end of line, is close delimiter) of each ``--boundary`` line."""
    pos = start
    n = len(marker)
    while True:
        i = raw.find(marker, pos, end)
        if i == -1:
            return
        pos = i + 1
        if i != start and raw[i - 1] != 0x0A:
            continue  # not at the start of a line
        k = i + n
        close = k + 2 <= end and raw[k : k + 2] == b"--"
        if close:
            k += 2
        while k < end and raw[k] in (0x20, 0x09):
            k += 1
        if k == end:
            yield i, end, close
        elif raw[k] == 0x0A:
            yield i, k + 1, close
        elif raw[k] == 0x0D and k + 1 < end and raw[k + 1] == 0x0A:
            yield i, k + 2, close
        # else: a longer boundary that starts with ours; not a delimiter


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
        marker = b"--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        return
    content_start: int | None = None
    for line_start, line_end, close in _delimiters(raw, start, end, marker):
        if content_start is not None:
            # the line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1)
            content_end = line_start
            if raw[content_end - 2 : content_end] == b"\r\n":
                content_end -= 2
            elif raw[content_end - 1 : content_end] == b"\n":
                content_end -= 1
            if content_end > content_start:
                _scan(raw, content_start, content_end, threshold, out, depth + 1)
        if close:  # the rest is epilogue
            return
        content_start = line_end
    if content_start is not None and end > content_start:
        _scan(raw, content_start, end, threshold, out, depth + 1)


def encode_manifest(split: Split, raw: bytes) -> bytes:
    """The stored form of a message: the whole bytes, or skeleton + part references."""
    return b"".join(manifest_pieces(split, raw))


def manifest_pieces(split: Split, raw: bytes) -> list[bytes]:
    """``encode_manifest`` in pieces, to be compressed without joining them (a whole message
    would be copied once more only to be compressed)."""
    if split.is_whole:
        return [_MAGIC_WHOLE, raw]
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
    return [_MAGIC_SPLIT + header + b"\n", *literals]


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


def rebuild(segments: list[Segment], fetch: Callable[[str], bytes]) -> bytes:
    """The original bytes from segments; ``fetch(sha256)`` returns a part's stored content."""
    out: list[bytes] = []
    for seg in segments:
        out.append(seg if isinstance(seg, bytes) else seg.render(fetch(seg.sha256)))
    return b"".join(out)
