"""Single ``.eml`` files and folders of them: each file is one message, byte for byte."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from .base import ImportItem, import_envelope

# a header line: a field name of printable ASCII without ':' then ':' (RFC 5322 2.2)
_HEADER_LINE = re.compile(rb"^(From |[!-9;-~]+:)")


def looks_like_message(head: bytes) -> bool:
    return bool(_HEADER_LINE.match(head))


class EmlSource:
    unit = "messages"

    def __init__(self, files: list[Path], description: str | None = None) -> None:
        self.files = files
        self.total = len(files)
        self.description = description or (str(files[0]) if len(files) == 1 else "messages")

    @classmethod
    def from_folder(cls, folder: Path) -> EmlSource:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".eml")
        return cls(files, f"{folder} ({len(files)} .eml files)")

    def __iter__(self) -> Iterator[ImportItem]:
        for path in self.files:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise SourceError(f"{path}: cannot read: {exc.strerror}") from exc
            yield ImportItem(raw, import_envelope(raw), 1, str(path))
