"""``postfix-archiver backup DEST``: a consistent copy of a running archive.

The SQLite files (the catalog, the web accounts, the blob pack) are copied with SQLite's
online backup API: one read transaction each, which in WAL mode never blocks the writer, so
``serve`` keeps answering Postfix meanwhile. The order makes the copy consistent without
stopping anything: the catalog first, then the pack and the blob files. A blob is durable
before the catalog row that names it is committed, so every blob the copied catalog names is
already there when the blobs are copied after it (mail archived meanwhile only adds blobs
nobody in the copy names). A purge or erase during the backup could delete a blob the copy
still names: ``verify`` on the copy says so; run the backup outside the purge timer.

DEST becomes an archive home of its own (``catalog.sqlite``, ``web.sqlite``, ``blobs/``,
``checkpoints/``): ``POSTFIX_ARCHIVER_HOME=DEST postfix-archiver verify`` checks it. The
encryption and signing keys are not copied: they live in /etc/postfix-archiver, to be
backed up apart from the data they protect.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .errors import ArchiverError
from .sqlite_db import connect_readonly

CHECKPOINTS = "checkpoints"
PACK = "packed.sqlite"


@dataclass
class Copied:
    """What a backup copied."""

    databases: list[str] = field(default_factory=list)
    blob_files: int = 0
    bytes: int = 0


def backup(config: Config, dest: Path) -> Copied:
    """Copy the archive of ``config`` into the new directory ``dest``."""
    try:
        return _backup(config, dest)
    except OSError as exc:
        where = _shown(Path(exc.filename)) if exc.filename else _shown(dest)
        raise ArchiverError(
            f"cannot back up to {_shown(dest)}: {exc.strerror or exc} ({where}); "
            "remove what was copied and give a writable directory with room"
        ) from None


def _shown(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else text[:117] + "..."


def _backup(config: Config, dest: Path) -> Copied:
    catalog = _local(config.archive.catalog_url, "sqlite://", "catalog", "pg_dump")
    store = _local(config.archive.store_url, "file://", "store", "the bucket's versioning")
    if not catalog.exists():
        raise ArchiverError(f"no archive at {catalog}: nothing to back up (give --config)")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiverError(f"{_shown(dest)} exists and is not an empty directory: give a new one")
    if dest.resolve().is_relative_to(config.archive.home.resolve()):
        raise ArchiverError(
            f"{_shown(dest)} is inside the archive home: give a directory outside it"
        )
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    done = Copied()
    # the order is the consistency: see the module's docstring
    _copy_db(catalog, dest / "catalog.sqlite", done)
    accounts = config.archive.home / "web.sqlite"
    if accounts.exists():
        _copy_db(accounts, dest / "web.sqlite", done)
    (dest / "blobs").mkdir(mode=0o700)
    if (store / PACK).exists():
        _copy_db(store / PACK, dest / "blobs" / PACK, done)
    for path in _blob_files(store):
        target = dest / "blobs" / path.relative_to(store)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        done.blob_files += 1
        done.bytes += target.stat().st_size
    checkpoints = config.archive.home / CHECKPOINTS
    if checkpoints.is_dir():
        shutil.copytree(checkpoints, dest / CHECKPOINTS)
    os.sync()  # the copy is durable when the command says it is done
    return done


def _local(url: str, scheme: str, what: str, instead: str) -> Path:
    if not url.startswith(scheme):
        raise ArchiverError(
            f"the {what} is not a local file ({url.split('://')[0]}://): back it up with "
            f"{instead} instead"
        )
    return Path(url.removeprefix(scheme))


def _copy_db(source: Path, target: Path, done: Copied) -> None:
    """One SQLite file through the online backup API, in one step (one read transaction:
    a snapshot as of its start, taken while the writer goes on)."""
    try:
        src = connect_readonly(source)
    except (OSError, sqlite3.Error) as exc:
        raise ArchiverError(f"cannot read {source}: {exc}") from exc
    try:
        with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        raise ArchiverError(f"cannot back up {source} to {target}: {exc}") from exc
    finally:
        src.close()
    done.databases.append(source.name)
    done.bytes += target.stat().st_size


def _blob_files(store: Path) -> Iterator[Path]:
    """The blobs stored as files (written whole and renamed into place, so a file seen is
    complete); not the pack, its log or temporary files."""
    for directory, _dirs, files in os.walk(store):
        for name in files:
            if name.startswith(PACK) or name.startswith("."):
                continue
            yield Path(directory) / name
