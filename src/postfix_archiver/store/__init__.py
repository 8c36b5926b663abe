"""Blob stores behind one interface, chosen by URL (``file:///path``; S3 is the next backend).

A store keeps opaque byte strings under keys such as ``m/3f2a...`` and makes each one durable
before ``put`` returns. It knows nothing of mail, hashing or compression: the archive hashes
and compresses, the store only keeps bytes. The filesystem store packs small blobs into one
SQLite file (see ``packed``). With a key file, ``encrypted.EncryptedStore`` seals every blob
over whichever store the URL names (see ``encrypted`` and ``keyring``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import StoreError


@runtime_checkable
class BlobStore(Protocol):
    """Durable key -> bytes storage.

    Contract (tested for every backend by ``tests/unit/store/test_store_contract.py``):

    - ``put(key, data)``: when it returns, the bytes survive a crash or power loss; a
      reader never sees a partial value (write to a temporary name, fsync, rename). Putting a
      key that exists replaces it with the same bytes (content addressing makes that safe).
    - ``put_many(items)``: ``put`` for each ``(key, data)``, durable when it returns; a
      backend may make them durable together (one fsync for a whole batch).
    - ``get(key)``: the bytes, or ``KeyError`` if there is no such key.
    - ``exists(key)``, ``delete(key)`` (no error if absent), ``keys(prefix)`` in any order,
      ``size(key)`` in bytes as stored (``KeyError`` if there is no such key).
    - Failures (disk full, permission, network) raise ``StoreError`` with a message naming
      what to fix.
    """

    url: str

    def put(self, key: str, data: bytes) -> None: ...

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def delete_many(self, keys: Sequence[str]) -> None: ...

    def truncate_logs(self) -> list[str]:
        """Cut the store's write-ahead logs, which may still hold deleted blobs' old pages,
        waiting a few seconds for readers to leave them; returns the files whose log a
        reader (another process) still keeps, to report: nothing when there is none."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]: ...

    def size(self, key: str) -> int: ...

    def close(self) -> None: ...


def open_store(url: str, *, readonly: bool = False, key_file: Path | None = None) -> BlobStore:
    """The store for ``url``: ``file:///abs/path``. ``readonly``: for commands that only read;
    creates nothing and works on a full disk. ``key_file``: encrypt at rest with its keys
    (the key file is read before anything is opened)."""
    if key_file is not None:
        from .encrypted import EncryptedStore
        from .keyring import load_key_file

        ring = load_key_file(key_file)
        return EncryptedStore(open_store(url, readonly=readonly), ring)
    if url.startswith("file://"):
        from .fs import FileStore

        return FileStore(url.removeprefix("file://"), readonly=readonly)
    raise StoreError(f"unsupported store URL {url!r}: use file:///path/to/blobs")


__all__ = ["BlobStore", "open_store"]
