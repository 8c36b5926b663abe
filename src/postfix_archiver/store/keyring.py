"""The encryption key file: the AES-256 keys blobs are sealed with, and the secret of their names.

The file is JSON, kept outside the archive directory (a copy of the archive without it is
ciphertext), mode 0600, always written whole to a temporary name and renamed::

    {
      "format": "postfix-archiver-keys",
      "version": 1,
      "current": "3f2a9c1b",
      "name_secret": "<base64 of 32 random bytes>",
      "keys": [
        {"id": "1c0be4d2", "created": "2026-01-05T09:00:00Z", "key": "<base64 of 32 bytes>"},
        {"id": "3f2a9c1b", "created": "2026-11-30T13:00:00Z", "key": "<base64 of 32 bytes>"}
      ]
    }

- A key's id is derived from the key itself (the first 4 bytes of HMAC-SHA256(key, "key id"),
  in hex): a blob's header names it, so a key file holding another key under the same id
  cannot exist, and a blob sealed with a key the file lacks is reported by that id.
- ``current`` seals new blobs; the others only open old ones (``keys rotate`` adds one and
  makes it current; ``keys rewrap`` re-seals old blobs under it).
- ``name_secret`` keys the blob names (HMAC-SHA256 of the plain name). It never changes:
  every blob's name depends on it.

Losing this file loses the archive: back it up apart from the archive.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import EncryptionKeyError

FORMAT = "postfix-archiver-keys"
VERSION = 1
KEY_BYTES = 32  # AES-256
ID_BYTES = 4


def key_id(key: bytes) -> str:
    """The id of ``key``: a fingerprint, so an id always names the one key it came from."""
    return hmac.new(key, b"postfix-archiver key id", hashlib.sha256).digest()[:ID_BYTES].hex()


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    key: bytes
    created: str


@dataclass(frozen=True, slots=True)
class Keyring:
    """The keys of one key file; ``path`` to name it in errors."""

    path: Path
    current: str
    name_secret: bytes
    keys: tuple[Key, ...]

    def get(self, ident: str) -> bytes | None:
        for k in self.keys:
            if k.id == ident:
                return k.key
        return None

    @property
    def current_key(self) -> bytes:
        key = self.get(self.current)
        assert key is not None  # load and rotate check it
        return key


def new_keyring(path: Path) -> Keyring:
    key = secrets.token_bytes(KEY_BYTES)
    return Keyring(
        path=path,
        current=key_id(key),
        name_secret=secrets.token_bytes(KEY_BYTES),
        keys=(Key(key_id(key), key, _now()),),
    )


def create_key_file(path: Path) -> Keyring:
    """A new key file at ``path`` (refused if one is there: it may hold the only copy of the
    keys an archive needs)."""
    if path.exists():
        raise EncryptionKeyError(
            f"key file {path} exists already: it may hold the keys of an archive; "
            "`postfix-archiver keys rotate` adds a new key to it"
        )
    ring = new_keyring(path)
    write_key_file(ring)
    return ring


def rotate_key_file(path: Path) -> tuple[Keyring, str]:
    """Add a new key to the key file at ``path`` and make it current; returns the ring and the
    id of the key that was current before."""
    ring = load_key_file(path)
    key = secrets.token_bytes(KEY_BYTES)
    while ring.get(key_id(key)) is not None:  # a 32-bit id: a clash is possible, if unlikely
        key = secrets.token_bytes(KEY_BYTES)
    rotated = Keyring(
        path=path,
        current=key_id(key),
        name_secret=ring.name_secret,
        keys=(*ring.keys, Key(key_id(key), key, _now())),
    )
    write_key_file(rotated)
    return rotated, ring.current


def write_key_file(ring: Keyring) -> None:
    """Write ``ring`` atomically, mode 0600: a crash leaves the old file or the new one."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "current": ring.current,
        "name_secret": _b64(ring.name_secret),
        "keys": [{"id": k.id, "created": k.created, "key": _b64(k.key)} for k in ring.keys],
    }
    path = ring.path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (json.dumps(doc, indent=2) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise EncryptionKeyError(f"cannot write key file {path}: {exc.strerror or exc}") from exc


def load_key_file(path: Path) -> Keyring:
    """The keys in ``path``, every field checked; ``EncryptionKeyError`` naming what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise EncryptionKeyError(
            f"key file {path} does not exist: create it with `postfix-archiver keys init`, "
            "or restore it from its backup ([archive] key_file names it)"
        ) from None
    except OSError as exc:
        raise EncryptionKeyError(
            f"cannot read key file {path}: {exc.strerror or exc} "
            "(the archiver's user must be able to read it)"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if mode & 0o007:
            raise EncryptionKeyError(
                f"key file {path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
                f"chmod 600 {path}"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(1 << 20)
    except OSError as exc:
        raise EncryptionKeyError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested too deep
        raise EncryptionKeyError(f"key file {path} is not valid JSON ({exc})") from None
    return _parse(path, doc)


def _parse(path: Path, doc: Any) -> Keyring:
    def bad(reason: str) -> EncryptionKeyError:
        return EncryptionKeyError(f"key file {path}: {reason}")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f'not a key file (no "format": "{FORMAT}")')
    if doc.get("version") != VERSION:
        raise bad(
            f"version {doc.get('version')!r} is not supported (this archiver reads {VERSION})"
        )
    unknown = set(doc) - {"format", "version", "current", "name_secret", "keys"}
    if unknown:
        raise bad(f"unknown field {sorted(unknown)[0]!r}")
    name_secret = _secret(doc.get("name_secret"), "name_secret", bad)
    entries = doc.get("keys")
    if not isinstance(entries, list) or not entries:
        raise bad('"keys" must be a non-empty list')
    keys: list[Key] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"id", "created", "key"}:
            raise bad(f'keys[{i}] must have exactly "id", "created" and "key"')
        key = _secret(entry["key"], f"keys[{i}].key", bad)
        ident, created = entry["id"], entry["created"]
        if not isinstance(created, str):
            raise bad(f"keys[{i}].created must be a string")
        if ident != key_id(key):
            raise bad(
                f"key {str(ident)[:20]!r} does not match its id (it is {key_id(key)}): "
                "the file was edited or damaged; restore it from its backup"
            )
        if any(k.id == ident for k in keys):
            raise bad(f"key {ident} is listed twice")
        keys.append(Key(ident, key, created))
    current = doc.get("current")
    if not isinstance(current, str) or not any(k.id == current for k in keys):
        raise bad(f"current key {str(current)[:20]!r} is not one of its keys")
    return Keyring(path=path, current=current, name_secret=name_secret, keys=tuple(keys))


def _secret(value: object, field: str, bad: Any) -> bytes:
    if not isinstance(value, str):
        raise bad(f"{field} must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise bad(f"{field} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise bad(f"{field} must be {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
