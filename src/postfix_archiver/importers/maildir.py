"""Maildir (and Maildir++ sub-folders such as ``.Sent``): one file per message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import SourceError
from .base import ImportItem, import_envelope


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def maildir_files(root: Path) -> list[Path]:
    folders = [
        root,
        *sorted(
            p for p in root.iterdir() if p.is_dir() and p.name.startswith(".") and is_maildir(p)
        ),
    ]
    files: list[Path] = []
    for folder in folders:
        for sub in ("cur", "new"):
            d = folder / sub
            if d.is_dir():
                files.extend(
                    sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
                )
    return files


class MaildirSource:
    unit = "messages"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = maildir_files(root)
        self.total = len(self.files)
        self.description = f"Maildir {root} ({self.total} messages)"

    def __iter__(self) -> Iterator[ImportItem]:
        for path in self.files:
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                continue  # moved by the mail client (new/ -> cur/) while we read: seen there
            except OSError as exc:
                raise SourceError(f"{path}: cannot read: {exc.strerror}") from exc
            yield ImportItem(raw, import_envelope(raw), 1, str(path))
