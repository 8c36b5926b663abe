"""Export archived messages as mbox (mboxrd), a Maildir or a zip of .eml files.

Messages are written byte for byte (mbox adds only the From_ line, the ``>From`` quoting,
which the importer undoes, and a final newline where a message lacks one). Every export is
written under a temporary name next to the target and renamed into place at the end, so an
interrupted export leaves nothing half-written. ``stream`` yields the same mbox entries and
zip members as chunks, for a download that never holds the whole export in memory.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .archive import Archive
from .catalog import MessageRow
from .errors import SourceError

FORMATS = ("mbox", "maildir", "eml-zip")
STREAM_FORMATS = ("mbox", "eml-zip")  # the formats that are one file
_FROM_QUOTE = re.compile(rb"^(>*From )", re.M)


def mbox_from_line(sender: str, when: datetime) -> bytes:
    who = sender if sender and not any(c.isspace() for c in sender) else "MAILER-DAEMON"
    t = when.astimezone(UTC)
    # the year by hand: glibc's %Y writes year 102 as "102", which mbox readers refuse
    stamp = f"{t:%a %b %d %H:%M:%S} {t.year:04d}"
    return f"From {who} {stamp}\n".encode("utf-8", "replace")


def mbox_entry(raw: bytes, sender: str, when: datetime) -> bytes:
    """One mboxrd entry: From_ line, quoted message, newline-terminated, blank line."""
    body = _FROM_QUOTE.sub(rb">\1", raw)
    if not body.endswith(b"\n"):
        body += b"\n"
    return mbox_from_line(sender, when) + body + b"\n"


@contextmanager
def _staged(target: Path, force: bool, is_dir: bool) -> Iterator[Path]:
    """A temporary path next to ``target``, renamed onto it only if the body succeeds."""
    if target.exists() and not force:
        raise SourceError(f"{target} already exists: choose another path, or --force to replace it")
    parent = target.absolute().parent
    if not parent.is_dir():
        raise SourceError(f"{parent}: no such directory")
    if not os.access(parent, os.W_OK):
        raise SourceError(f"{parent}: not writable (check permissions)")
    if is_dir:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=parent)
        os.close(fd)
        staging = Path(name)
    try:
        yield staging
        if target.exists():
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        os.replace(staging, target)
    except BaseException:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
        raise


def _sender(archive: Archive, row: MessageRow) -> str:
    envelopes = archive.catalog.envelopes(row.id)
    if envelopes and envelopes[0].envelope.sender:
        return envelopes[0].envelope.sender
    match = re.search(r"<([^>]+)>|(\S+@\S+)", row.from_)
    return (match.group(1) or match.group(2)) if match else ""


def export(
    archive: Archive,
    rows: Iterable[MessageRow],
    fmt: str,
    target: Path,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``rows`` to ``target`` in ``fmt``; returns the number of messages written."""
    if fmt not in FORMATS:
        raise SourceError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    count = 0
    rows_list = list(rows)
    raws = archive.map_parallel(lambda r: archive.raw(r.id), rows_list)

    def messages() -> Iterator[tuple[MessageRow, bytes]]:
        nonlocal count
        for row, raw in zip(rows_list, raws, strict=True):
            count += 1
            yield row, raw
            if progress:
                progress(1)

    if fmt == "mbox":
        with _staged(target, force, is_dir=False) as staging, staging.open("wb") as out:
            for row, raw in messages():
                out.write(mbox_entry(raw, _sender(archive, row), row.date))
            out.flush()
            os.fsync(out.fileno())
    elif fmt == "eml-zip":
        with _staged(target, force, is_dir=False) as staging:
            with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for row, raw in messages():
                    zf.writestr(_zip_info(row), raw)
            _fsync_path(staging)
    else:
        with _staged(target, force, is_dir=True) as staging:
            for sub in ("cur", "new", "tmp"):
                (staging / sub).mkdir()
            host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
            for row, raw in messages():
                name = f"{int(row.date.timestamp())}.P{os.getpid()}Q{row.id}.{host}"
                path = staging / "new" / name
                path.write_bytes(raw)
                mtime = row.date.timestamp()
                os.utime(path, (time.time(), mtime))
    return count


def stream(archive: Archive, rows: Iterable[MessageRow], fmt: str) -> Iterator[bytes]:
    """``rows`` as an mbox or a zip of .eml files, yielded in chunks (about one per message).

    The zip is written without seeking (sizes in data descriptors), so it can go straight to
    a socket; its members are named and dated as ``export`` names them.
    """
    if fmt not in STREAM_FORMATS:
        raise SourceError(
            f"format {fmt!r} cannot be streamed: use one of {', '.join(STREAM_FORMATS)}"
        )
    rows_iter = iter(rows)
    pending: deque[MessageRow] = deque()

    def remembered() -> Iterator[MessageRow]:
        for row in rows_iter:
            pending.append(row)
            yield row

    raws = archive.map_parallel(lambda r: archive.raw(r.id), remembered())

    def messages() -> Iterator[tuple[MessageRow, bytes]]:
        for raw in raws:
            yield pending.popleft(), raw

    if fmt == "mbox":
        for row, raw in messages():
            yield mbox_entry(raw, _sender(archive, row), row.date)
        return
    sink = _ChunkSink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for row, raw in messages():
            zf.writestr(_zip_info(row), raw)
            yield sink.take()
    yield sink.take()


class _ChunkSink(io.RawIOBase):
    """A write-only, unseekable file collecting what zipfile writes until ``take``."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _zip_info(row: MessageRow) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(f"{row.id:08d}.eml", date_time=_zip_time(row.date))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _zip_time(when: datetime) -> tuple[int, int, int, int, int, int]:
    t = when.astimezone(UTC)
    if t.year < 1980:  # the zip format starts in 1980
        return (1980, 1, 1, 0, 0, 0)
    return (min(t.year, 2107), t.month, t.day, t.hour, t.minute, t.second)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
