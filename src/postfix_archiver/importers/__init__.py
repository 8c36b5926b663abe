"""Importers: existing mail into the archive through the one ingest path.

``open_source(spec)`` looks at what it is given and picks the importer: an mbox file, a
Maildir (with Maildir++ sub-folders), a single ``.eml`` file, or a folder of ``.eml`` files.
Every importer yields ``ImportItem``s; the envelope it builds is deterministic, so importing
the same mailbox twice adds nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SourceError
from .base import ImportItem, ImportSource
from .eml import EmlSource, looks_like_message
from .maildir import MaildirSource, is_maildir
from .mbox import MboxSource


def open_source(spec: str) -> ImportSource:
    """The importer for ``spec``; raises ``SourceError`` naming what is wrong."""
    path = Path(spec)
    if not path.exists():
        raise SourceError(f"{spec}: no such file or directory")
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise SourceError(f"{spec}: directory is not readable (check permissions)")
        if is_maildir(path):
            return MaildirSource(path)
        eml = EmlSource.from_folder(path)
        if eml.total:
            return eml
        raise SourceError(
            f"{spec}: no messages found (expected a Maildir with cur/ and new/, "
            "or a folder of .eml files)"
        )
    if not path.is_file():  # opening a FIFO would wait for a writer forever
        raise SourceError(f"{spec}: not a regular file or a directory (a device, FIFO or socket)")
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise SourceError(f"{spec}: cannot read: {exc.strerror}") from exc
    if head.startswith(b"From "):
        return MboxSource(path)
    if looks_like_message(head):
        return EmlSource([path])
    raise SourceError(f"{spec}: not an mbox file or a message (.eml): it starts with {head[:20]!r}")


def worker_processes(source: ImportSource) -> int:
    """How many processes to parse with: two per CPU for a large import (each also waits
    on its blob fsyncs), where that pays for their start-up; none (threads only) for a
    small one."""
    large = source.total >= (32 << 20) if source.unit == "bytes" else source.total >= 2000
    return 2 * max(1, os.cpu_count() or 1) if large else 1


__all__ = ["ImportItem", "ImportSource", "open_source", "worker_processes"]
