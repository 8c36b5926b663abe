"""Encryption at rest: a ``BlobStore`` that seals every blob with AES-256-GCM over any other.

The archive compresses first (zstd; ciphertext does not compress), then this layer seals. A
sealed blob is::

    magic (4) | version (1) | key id (4) | nonce (12) | AES-256-GCM(payload) with its tag (16)
    payload = length of the plain name (2, big-endian) | plain name | the blob's bytes

- The associated data is the header and the name the blob is stored under: a blob moved to
  another name, or a header edited to name another key, fails to open. The plain name inside
  the payload is checked too, and lets ``keys`` list plain names.
- Names are keyed: ``m/<sha256>`` is stored as ``m/<HMAC-SHA256(name_secret, "m/<sha256>")>``,
  so whoever holds a copy of a message cannot tell whether the archive has it, yet the same
  content still gets the same name (deduplication works).
- A random 96-bit nonce per blob: the archive writes far fewer than the 2**32 blobs per key
  that random nonces allow.
- Blobs written before encryption was turned on stay readable under their plain names (the
  archive checks their SHA-256 on every read as always) until ``rewrap`` seals them.

Which blobs are sealed with which key is only known by reading them, so ``keys()`` and
``rewrap`` read every blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import EncryptionKeyError, IntegrityError, StoreError
from . import BlobStore
from .keyring import ID_BYTES, Keyring, load_key_file

MAGIC = b"\x8fPAE"  # not a zstd frame (28 b5 2f fd), not text: plain and sealed never mix up
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + 1 + ID_BYTES + NONCE_BYTES
_NAME_LEN = struct.Struct(">H")
# how often a long-running process looks whether the key file changed (a rotation)
RELOAD_SECONDS = 10.0
# blobs (or bytes) a rewrap makes durable together
REWRAP_BATCH = 64
REWRAP_BATCH_BYTES = 16 << 20


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def is_sealed(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def sealed_key_id(blob: bytes) -> str | None:
    """The id of the key ``blob`` is sealed with, or None for a plain blob."""
    if not is_sealed(blob) or len(blob) < HEADER_BYTES:
        return None
    return blob[len(MAGIC) + 1 : len(MAGIC) + 1 + ID_BYTES].hex()


def _check_key(key: str) -> None:
    """The rules of ``FileStore.path``, applied to the plain name before it is hidden: a name
    that no store would accept is refused here too."""
    kind, _sep, name = key.partition("/")
    if (
        not kind
        or not name
        or "/" in name
        or name.startswith(".")
        or kind.startswith(".")
        or "\x00" in key
        or not key.isprintable()
    ):
        raise StoreError(f"invalid blob key {key!r}")


class EncryptedStore:
    """Seals what it puts in ``inner`` with the current key of ``ring``; opens what it gets
    with whichever key the blob names. See ``BlobStore`` for the contract."""

    def __init__(self, inner: BlobStore, ring: Keyring) -> None:
        self.inner = inner
        self.url = inner.url
        self._ring = ring
        self._ring_lock = threading.Lock()
        self._aead: dict[str, AESGCM] = {}
        self._checked = time.monotonic()
        self._stamp = _stamp(ring.path)

    @property
    def keyring(self) -> Keyring:
        return self._ring

    # -- names and seals ---------------------------------------------------------------------

    def stored_name(self, key: str) -> str:
        """The name ``key`` is stored under: its kind, then the keyed hash of the whole name."""
        _check_key(key)
        kind = key.partition("/")[0]
        digest = hmac.new(self._ring.name_secret, key.encode("utf-8"), hashlib.sha256)
        return f"{kind}/{digest.hexdigest()}"

    def _cipher(self, ident: str, stored: str) -> AESGCM:
        cipher = self._aead.get(ident)
        if cipher is not None:
            return cipher
        key = self._ring.get(ident)
        if key is None:
            # a long-running process may predate `keys rotate`: read the file again once
            self._reload()
            key = self._ring.get(ident)
        if key is None:
            raise EncryptionKeyError(
                f"blob {stored} is sealed with key {ident}, which is not in the key file "
                f"{self._ring.path}: restore the key file that holds key {ident} "
                "(the archive cannot be read without it), unless the blob's header was damaged"
            )
        cipher = self._aead[ident] = AESGCM(key)
        return cipher

    def _reload(self) -> None:
        # if the file cannot be read, the keys in memory stay; the caller names the key
        with self._ring_lock, contextlib.suppress(EncryptionKeyError):
            ring = load_key_file(self._ring.path)
            # another name secret (a key file replaced under a running process) would move
            # every name: only a rotation of the same file is taken up
            if hmac.compare_digest(ring.name_secret, self._ring.name_secret):
                self._ring = ring

    def _follow_rotation(self) -> None:
        """After `keys rotate`, a running `serve` seals with the new key within seconds."""
        now = time.monotonic()
        if now - self._checked < RELOAD_SECONDS:
            return
        self._checked = now
        stamp = _stamp(self._ring.path)
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            self._reload()

    def seal(self, stored: str, key: str, data: bytes) -> bytes:
        ring = self._ring
        header = MAGIC + bytes([VERSION]) + bytes.fromhex(ring.current) + os.urandom(NONCE_BYTES)
        name = key.encode("utf-8")
        payload = b"".join((_NAME_LEN.pack(len(name)), name, data))
        sealed = self._cipher(ring.current, stored).encrypt(
            header[-NONCE_BYTES:], payload, header + stored.encode("utf-8")
        )
        return header + sealed

    def open(self, stored: str, blob: bytes, key: str | None = None) -> tuple[str, bytes]:
        """The plain name and the bytes of the sealed ``blob`` stored under ``stored``
        (``key``: its plain name, if known, to name it in errors)."""
        shown = stored if key is None else f"{stored} ({key})"
        if len(blob) < HEADER_BYTES + TAG_BYTES + _NAME_LEN.size or blob[4] != VERSION:
            raise IntegrityError(
                f"encrypted blob {shown}: its header is damaged or of an unknown version"
            )
        ident = blob[len(MAGIC) + 1 : len(MAGIC) + 1 + ID_BYTES].hex()
        header = blob[:HEADER_BYTES]
        try:
            payload = self._cipher(ident, shown).decrypt(
                header[-NONCE_BYTES:], blob[HEADER_BYTES:], header + stored.encode("utf-8")
            )
        except InvalidTag:
            raise IntegrityError(
                f"encrypted blob {shown} (key {ident}) fails authentication: its bytes were "
                "altered or damaged, or it was moved from another name"
            ) from None
        (length,) = _NAME_LEN.unpack_from(payload)
        name = payload[_NAME_LEN.size : _NAME_LEN.size + length].decode("utf-8", "replace")
        return name, payload[_NAME_LEN.size + length :]

    def _overhead(self, key: str) -> int:
        return HEADER_BYTES + TAG_BYTES + _NAME_LEN.size + len(key.encode("utf-8"))

    # -- BlobStore ---------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self.put_many([(key, data)])

    def put_many(
        self,
        items: Sequence[tuple[str, bytes]],
        retain_until: Mapping[str, datetime] | None = None,
    ) -> None:
        self._follow_rotation()
        sealed = []
        locks: dict[str, datetime] = {}
        for key, data in items:
            stored = self.stored_name(key)
            sealed.append((stored, self.seal(stored, key, data)))
            if retain_until and key in retain_until:
                locks[stored] = retain_until[key]  # the lock follows the blob's stored name
        self.inner.put_many(sealed, locks or None)

    def get(self, key: str) -> bytes:
        stored = self.stored_name(key)
        try:
            blob = self.inner.get(stored)
        except KeyError:
            return self._get_plain(key)
        if not is_sealed(blob):
            raise IntegrityError(f"encrypted blob {stored} ({key}) is not sealed: it was replaced")
        name, data = self.open(stored, blob, key)
        if name != key:
            raise IntegrityError(f"encrypted blob {stored} holds {name!r}, not {key!r}")
        return data

    def _get_plain(self, key: str) -> bytes:
        """A blob from before encryption was turned on (``KeyError`` if there is none)."""
        blob = self.inner.get(key)
        if is_sealed(blob):  # a sealed blob never has a plain name
            raise IntegrityError(f"blob {key} is encrypted under its plain name: it was moved")
        return blob

    def exists(self, key: str) -> bool:
        return self.inner.exists(self.stored_name(key)) or self.inner.exists(key)

    def size(self, key: str) -> int:
        """The size of what was put (as the plain stores report it), not of the sealed blob."""
        try:
            return self.inner.size(self.stored_name(key)) - self._overhead(key)
        except KeyError:
            return self.inner.size(key)

    def delete(self, key: str) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Sequence[str]) -> None:
        """The sealed blobs and any plain copy from before encryption (not yet rewrapped)."""
        self.inner.delete_many([name for key in keys for name in (self.stored_name(key), key)])

    def truncate_logs(self) -> list[str]:
        return self.inner.truncate_logs()

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Plain names, found by opening every blob of the kinds ``prefix`` covers."""
        kind, slash, _rest = prefix.partition("/")
        for stored in self.inner.keys(kind + slash):
            try:
                blob = self.inner.get(stored)
            except KeyError:
                continue  # deleted since it was listed
            name = self.open(stored, blob)[0] if is_sealed(blob) else stored
            if name.startswith(prefix):
                yield name

    def close(self) -> None:
        self.inner.close()


@dataclass
class RewrapReport:
    resealed: int = 0  # sealed with an older key, now with the current one
    encrypted: int = 0  # plain (from before encryption), now sealed
    current: int = 0  # already under the current key: left alone
    damaged: list[str] = field(default_factory=list)  # left alone; `verify` tells more


def rewrap(
    store: EncryptedStore,
    progress: Callable[[int], None] | None = None,
    *,
    is_plain: Callable[[bytes], bool] = lambda blob: True,
    names: Sequence[str] | None = None,
    guard: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> RewrapReport:
    """Seal every blob of ``store`` with its current key.

    Resumable and safe to kill: a blob already under the current key is skipped, and each
    blob is replaced atomically (a sealed one in place; a plain one is sealed under its keyed
    name first, and its plain copy deleted only after that is durable). Blobs go in batches
    (one ``put_many``: one transaction of the pack for the lot). ``is_plain`` tells a blob
    from before encryption (the archive's are zstd frames) from a sealed one whose header was
    damaged, which is left alone. ``names``: the stored names to go through (default: all,
    listed first so a progress bar knows the total). ``guard``: held around each batch's
    writes, to keep removals out (the archive's catalog write lock): a blob deleted since it
    was read is not written back, so rewrap never brings back purged or erased mail.
    """
    report = RewrapReport()
    batch = _Batch(store, progress, guard)
    current = store.keyring.current
    for stored in names if names is not None else list(store.inner.keys()):
        try:
            _rewrap_one(store, stored, current, is_plain, report, batch)
        except KeyError:
            batch.skip()  # deleted since it was listed
        except IntegrityError:
            report.damaged.append(stored)
            batch.skip()
    batch.flush()
    return report


class _Batch:
    """Writes of a rewrap made durable together, then the plain copies they replace deleted."""

    def __init__(
        self,
        store: EncryptedStore,
        progress: Callable[[int], None] | None,
        guard: Callable[[], contextlib.AbstractContextManager[object]],
    ) -> None:
        self.store = store
        self.progress = progress
        self.guard = guard
        self.writes: list[tuple[str, bytes]] = []
        self.sources: list[str] = []  # the name each write was read from, in order
        self.plain: list[str] = []
        self.size = 0
        self.done = 0

    def add(self, stored: str, sealed: bytes, plain: str | None = None) -> None:
        self.writes.append((stored, sealed))
        self.sources.append(plain if plain is not None else stored)
        if plain is not None:
            self.plain.append(plain)
        self.size += len(sealed)
        self.done += 1
        if len(self.writes) >= REWRAP_BATCH or self.size >= REWRAP_BATCH_BYTES:
            self.flush()

    def skip(self) -> None:
        self.done += 1
        if not self.writes:
            self.flush()

    def flush(self) -> None:
        inner = self.store.inner
        with self.guard():
            # a purge or an erasure may have deleted a blob since it was read: writing it
            # back would bring removed mail back, so only what is still there is replaced
            writes = [
                w for w, src in zip(self.writes, self.sources, strict=True) if inner.exists(src)
            ]
            inner.put_many(writes)
        for name in self.plain:
            inner.delete(name)
        if self.progress and self.done:
            self.progress(self.done)
        self.writes, self.sources, self.plain, self.size, self.done = [], [], [], 0, 0


def _rewrap_one(
    store: EncryptedStore,
    stored: str,
    current: str,
    is_plain: Callable[[bytes], bool],
    report: RewrapReport,
    batch: _Batch,
) -> None:
    blob = store.inner.get(stored)
    ident = sealed_key_id(blob)
    if ident == current:
        report.current += 1
        batch.skip()
    elif ident is not None:
        key, data = store.open(stored, blob)
        batch.add(stored, store.seal(stored, key, data))
        report.resealed += 1
    elif is_plain(blob):
        key = stored  # a plain blob's stored name is its key
        sealed_name = store.stored_name(key)
        batch.add(sealed_name, store.seal(sealed_name, key, blob), plain=stored)
        report.encrypted += 1
    else:
        raise IntegrityError(f"blob {stored} is neither sealed nor plain")
