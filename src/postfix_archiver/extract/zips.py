"""Reading zip files without trusting them: sizes are counted as bytes are inflated.

A zip file declares each member's size, and a zip bomb lies about it; ``zipfile`` also lets a
member be read to any size. Here every byte read is counted against the job's cap
(``Job.inflate``), reads are in chunks, and the deadline is checked between them.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Iterator

from .job import Failed, Job

CHUNK = 64 << 10


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
        with zf.open(info) as member:
            while True:
                job.check_time()
                chunk = member.read(CHUNK)
                if not chunk:
                    return
                job.inflate(len(chunk))
                yield chunk
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zipfile.LargeZipFile) as exc:
        raise Failed(f"{member_name(info)!r} in the zip file cannot be read: {exc}") from None
    except RuntimeError as exc:  # encrypted member
        raise Failed(f"{member_name(info)!r} in the zip file is encrypted: {exc}") from None
    except NotImplementedError as exc:  # a compression method zipfile lacks
        raise Failed(f"{member_name(info)!r}: {exc}") from None


def read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, job: Job, limit: int) -> bytes:
    """The whole member, refused when it inflates past ``limit`` bytes."""
    out = bytearray()
    for chunk in chunks(zf, info, job):
        out += chunk
        if len(out) > limit:
            raise Failed(f"{member_name(info)!r} in the zip file is larger than {limit} bytes")
    return bytes(out)
