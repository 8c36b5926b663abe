"""Reading zip files without trusting them: sizes are counted as bytes are inflated.

A zip file declares each member's size, and a zip bomb lies about it; ``zipfile`` also lets a
member be read to any size. Here every byte read is counted against the job's cap
(``Job.inflate``), reads are in chunks, and the deadline is checked between them.

``zipfile`` bounds what one read inflates only for deflate: a bzip2 or LZMA member is
decompressed 4 KB (or more) of input at a time with no limit on the output, and 673 bytes of
bzip2 make 600 MB. Those two methods are therefore decompressed here, from the member's
stored bytes, at most ``CHUNK`` bytes of output per step.
"""

from __future__ import annotations

import bz2
import contextlib
import copy
import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from typing import Protocol

from .job import Failed, Job

CHUNK = 64 << 10

# compression methods found in the wild that zipfile cannot read, named for the failure's detail
_UNSUPPORTED = {6: "implode", 9: "deflate64", 93: "Zstandard", 95: "xz", 98: "PPMd"}


def open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise Failed(f"not a readable zip file: {exc}") from None


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name; without the UTF-8 flag, UTF-8 if it reads as such (what most
    tools write today without saying so), else the code page 437 the format defines."""
    name = info.filename
    if not info.flag_bits & 0x800 and not name.isascii():
        with contextlib.suppress(UnicodeError):
            name = name.encode("cp437").decode("utf-8")
    return name


def chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, job: Job) -> Iterator[bytes]:
    """The member's bytes as inflated, each chunk counted against the job's caps."""
    try:
        if info.compress_type in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            yield from _decompressed(zf, info, job)
            return
        with zf.open(info) as member:
            while True:
                job.check_time()
                chunk = member.read(CHUNK)
                if not chunk:
                    return
                job.inflate(len(chunk))
                yield chunk
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        zipfile.LargeZipFile,
        lzma.LZMAError,
    ) as exc:
        raise Failed(f"{member_name(info)!r} in the zip file cannot be read: {exc}") from None
    except NotImplementedError as exc:  # a compression method zipfile lacks (before its
        # base class RuntimeError, or deflate64 would be called encrypted)
        method = _UNSUPPORTED.get(info.compress_type, "an unknown method")
        raise Failed(
            f"{member_name(info)!r} in the zip file is compressed with {method} "
            f"(method {info.compress_type}), which is not supported: {exc}"
        ) from None
    except RuntimeError as exc:  # encrypted member
        raise Failed(f"{member_name(info)!r} in the zip file is encrypted: {exc}") from None


def read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, job: Job, limit: int) -> bytes:
    """The whole member, refused when it inflates past ``limit`` bytes."""
    out = bytearray()
    for chunk in chunks(zf, info, job):
        out += chunk
        if len(out) > limit:
            raise Failed(f"{member_name(info)!r} in the zip file is larger than {limit} bytes")
    return bytes(out)


class _Decompressor(Protocol):
    """What ``bz2.BZ2Decompressor`` and ``lzma.LZMADecompressor`` share."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def _stored(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member's bytes as they are in the zip file, still compressed: ``zipfile`` reads
    them as if the member were stored (it still checks the local header and encryption),
    with no CRC to check, since the CRC is of the decompressed bytes (``_decompressed``
    checks that)."""
    raw = copy.copy(info)
    raw.compress_type = zipfile.ZIP_STORED
    raw.file_size = info.compress_size
    raw.CRC = None  # type: ignore[assignment]  # zipfile checks no CRC when it has none
    with zf.open(raw) as member:
        while chunk := member.read(CHUNK):
            yield chunk


def _lzma(head: bytes, most: int) -> tuple[_Decompressor, int]:
    """An LZMA member's decompressor and the length of its header: version (2 bytes), size
    of the properties (2 bytes, little-endian), then LZMA1's properties (APPNOTE 5.8.8):
    one byte for lc, lp and pb, four for the dictionary size. The dictionary need not be
    larger than the member (no reference reaches further back than its start) or than
    the job may inflate (``most``): a 4 GB dictionary declared for a small member is not
    allocated."""
    size = int.from_bytes(head[2:4], "little")
    props = head[4 : 4 + size]
    if size != 5 or len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise zipfile.BadZipFile("the LZMA properties are damaged")
    lc, rest = props[0] % 9, props[0] // 9
    lzma1 = {
        "id": lzma.FILTER_LZMA1,
        "lc": lc,
        "lp": rest % 5,
        "pb": rest // 5,
        "dict_size": max(4096, min(int.from_bytes(props[1:5], "little"), most)),
    }
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1]), 4 + size


def _decompressed(zf: zipfile.ZipFile, info: zipfile.ZipInfo, job: Job) -> Iterator[bytes]:
    """A bzip2 or LZMA member inflated at most ``CHUNK`` bytes per step, each step counted
    and the deadline checked before the next, up to the size the member declares (as
    ``zipfile`` does), its CRC checked at the end."""
    stored = _stored(zf, info)
    pending = b""
    decompressor: _Decompressor
    if info.compress_type == zipfile.ZIP_BZIP2:
        decompressor = bz2.BZ2Decompressor()
    else:
        for block in stored:  # the header is 9 bytes; a damaged file may cut it anywhere
            pending += block
            if len(pending) >= 9:
                break
        decompressor, start = _lzma(pending, min(info.file_size, job.max_inflate))
        pending = pending[start:]
    left = info.file_size
    crc = 0
    while left > 0 and not decompressor.eof:
        job.check_time()
        if decompressor.needs_input and not pending:
            pending = next(stored, b"")
            if not pending:
                break  # the compressed bytes end early: the CRC below tells
        out = decompressor.decompress(pending, CHUNK)[:left]
        pending = b""
        if out:
            left -= len(out)
            crc = zlib.crc32(out, crc)
            job.inflate(len(out))
            yield out
    if left > 0 or crc != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 or size for {member_name(info)!r}")
