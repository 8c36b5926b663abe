"""Blob stores behind one interface, chosen by URL (``file:///path``, ``s3://BUCKET/PREFIX``).

A store keeps opaque byte strings under keys such as ``m/3f2a...`` and makes each one durable
before ``put`` returns. It knows nothing of mail, hashing or compression: the archive hashes
and compresses, the store only keeps bytes. The filesystem store packs small blobs into one
SQLite file (see ``packed``). With a key file, ``encrypted.EncryptedStore`` seals every blob
over whichever store the URL names (see ``encrypted`` and ``keyring``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
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
    - ``put_many(items, retain_until=None)``: ``put`` for each ``(key, data)``, durable when
      it returns; a backend may make them durable together (one fsync for a whole batch).
      ``retain_until`` maps keys to the date their message's retention ends: a backend that
      can lock objects (S3 Object Lock) keeps them undeletable until then; others ignore it.
    - ``get(key)``: the bytes, or ``KeyError`` if there is no such key.
    - ``exists(key)``, ``delete(key)`` (no error if absent), ``keys(prefix)`` in any order,
      ``size(key)`` in bytes as stored (``KeyError`` if there is no such key).
    - Failures (disk full, permission, network) raise ``StoreError`` with a message naming
      what to fix.
    """

    url: str

    def put(self, key: str, data: bytes) -> None: ...

    def put_many(
        self,
        items: Sequence[tuple[str, bytes]],
        retain_until: Mapping[str, datetime] | None = None,
    ) -> None: ...

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


def check_key(key: str) -> str:
    """``key`` if it is a blob key (``kind/name``, nothing that could climb out of a directory
    or a key prefix); ``StoreError`` if not. Every backend checks with this one function."""
    kind, _sep, name = key.partition("/")
    if (
        not kind
        or not name
        or "/" in name
        or name.startswith(".")
        or kind.startswith(".")
        or "\x00" in key
    ):
        raise StoreError(f"invalid blob key {key!r}")
    return key


def open_store(url: str, *, readonly: bool = False, key_file: Path | None = None) -> BlobStore:
    """The store for ``url``: ``file:///abs/path`` or ``s3://BUCKET/PREFIX?options`` (see
    ``s3_url``). ``readonly``: for commands that only read;
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
    if url.startswith("s3://"):
        from .s3 import S3Store
        from .s3_url import parse_s3_url

        return S3Store(parse_s3_url(url), readonly=readonly)
    raise StoreError(
        f"unsupported store URL {url!r}: use file:///path/to/blobs or s3://BUCKET/PREFIX"
    )


__all__ = ["BlobStore", "check_key", "open_store"]
