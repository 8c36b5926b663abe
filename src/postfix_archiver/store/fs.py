"""The default blob store: small blobs packed in one SQLite file, large ones as files of their
own under a directory tree. See ``BlobStore`` and ``packed``."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from ..errors import StoreError
from . import check_key
from .packed import PackedBlobs

# blobs up to this size (as stored, compressed) go in the pack; most messages fit
PACK_LIMIT = 256 * 1024


class FileStore:
    """Blobs of up to ``pack_limit`` bytes in ``ROOT/packed.sqlite``; larger ones as files
    ``ROOT/<kind>/<ab>/<key>``, written atomically and fsync'd. Reads find either (and the
    files of archives written before the pack existed)."""

    def __init__(
        self, root: str | os.PathLike[str], pack_limit: int = PACK_LIMIT, *, readonly: bool = False
    ) -> None:
        self.root = Path(root)
        self.pack_limit = pack_limit
        self.url = f"file://{self.root}"
        try:
            if not readonly:  # a command that only reads creates nothing
                self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob directory {self.root}: {exc.strerror}") from exc
        # directories known to exist and to be durable in their parent
        self._dirs: set[Path] = set()
        self._lock = threading.Lock()
        self._packed = PackedBlobs(self.root / "packed.sqlite", readonly=readonly)

    def path(self, key: str) -> Path:
        """The file that holds ``key`` (one level of fan-out: 256 directories per kind)."""
        kind, _sep, name = check_key(key).partition("/")
        return self.root / kind / name[:2] / name

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._dirs:
            return
        missing = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            try:
                m.mkdir(exist_ok=True)
            except OSError as exc:
                raise _store_error("create directory", m, exc) from exc
            # the new directory entry must be durable too, or a crash can lose the blob
            _fsync_dir(m.parent)
        with self._lock:
            self._dirs.add(directory)

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(
        self,
        items: Sequence[tuple[str, bytes]],
        retain_until: Mapping[str, datetime] | None = None,
    ) -> None:
        """All of ``items`` durable on return: the small ones in one transaction. Files have
        no lock: ``retain_until`` is not needed here."""
        small: list[tuple[str, bytes]] = []
        for key, data in items:
            self.path(key)  # every key is checked before anything is written
            if len(data) <= self.pack_limit:
                small.append((key, data))
        for key, data in items:
            if len(data) > self.pack_limit:
                self._put_file(key, data)
        self._packed.put_many(small)

    def _put_file(self, key: str, data: bytes) -> None:
        path = self.path(key)
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _store_error("write", path, exc) from exc

    def get(self, key: str) -> bytes:
        packed = self._packed.get(check_key(key))
        if packed is not None:
            return packed  # most blobs: no path made (it cost a page's snippets some 5%)
        path = self.path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise _store_error("read", path, exc) from exc

    def exists(self, key: str) -> bool:
        path = self.path(key)
        return self._packed.size(key) is not None or path.exists()

    def size(self, key: str) -> int:
        path = self.path(key)
        packed = self._packed.size(key)
        if packed is not None:
            return packed
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise KeyError(key) from None

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Sequence[str]) -> None:
        """Out of the pack in one transaction (securely: see ``PackedBlobs.delete_many``),
        and files unlinked, their directories fsync'd so the deletions last."""
        paths = [self.path(key) for key in keys]  # every key checked first
        self._packed.delete_many(keys)
        directories: set[Path] = set()
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _store_error("delete", path, exc) from exc
            directories.add(path.parent)
        for directory in sorted(directories):
            _fsync_dir(directory)

    def truncate_logs(self) -> list[str]:
        return self._packed.truncate_logs()

    def keys(self, prefix: str = "") -> Iterator[str]:
        yield from self._packed.keys(prefix)
        kinds = sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []
        kind, slash, _rest = prefix.partition("/")
        if slash:  # one kind's tree only: listing the few ``d/`` blobs walks no message files
            kinds = [p for p in kinds if p.name == kind]
        for kind_dir in kinds:
            for _dirpath, _dirs, files in os.walk(kind_dir):
                for name in files:
                    if name.startswith("."):
                        continue  # temporary files of writes in flight
                    key = f"{kind_dir.name}/{name}"
                    # a file written before the pack existed may have been put again since
                    if key.startswith(prefix) and self._packed.size(key) is None:
                        yield key

    def close(self) -> None:
        self._packed.close()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _store_error("open directory", directory, exc) from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise _store_error("fsync directory", directory, exc) from exc
    finally:
        os.close(fd)


def _store_error(action: str, path: Path, exc: OSError) -> StoreError:
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = " (the disk is full: free space or move the store)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " (check the owner and permissions of the store directory)"
    return StoreError(f"cannot {action} {path}: {exc.strerror or exc}{hint}")
