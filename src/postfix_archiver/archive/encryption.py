"""Encryption keys of an archive, from its config: create the key file, rotate, rewrap.

The commands (``keys init|rotate|rewrap``) are thin over these; the sealing itself is
``store.encrypted``, the key file ``store.keyring``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import Config
from ..errors import EncryptionKeyError
from ..store.encrypted import EncryptedStore, RewrapReport, rewrap
from ..store.keyring import Keyring, create_key_file, rotate_key_file
from .service import Archive

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # every blob the archive writes is a zstd frame

NOT_CONFIGURED = (
    'encryption is off: set [archive] encryption = "aes-256-gcm" (and key_file) in the config'
)


def init_keys(config: Config) -> Keyring | None:
    """The new key file of ``config``, or None when encryption is not configured."""
    if not config.archive.encrypted:
        return None
    return create_key_file(config.archive.key_file)


def rotate_keys(config: Config) -> tuple[Keyring, str]:
    """A new current key; returns the key file and the id of the key that was current."""
    return rotate_key_file(_key_file(config))


def stored_names(archive: Archive) -> list[str]:
    """The names of every blob of ``archive`` as stored (what ``rewrap_archive`` goes through)."""
    return list(_encrypted(archive).inner.keys())


def rewrap_archive(
    archive: Archive,
    names: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RewrapReport:
    """Seal every blob of ``archive`` (or the ``names`` listed by ``stored_names``) with the
    current key; see ``store.encrypted.rewrap``."""
    store = _encrypted(archive)
    return rewrap(
        store,
        progress,
        is_plain=lambda blob: blob[:4] == ZSTD_MAGIC,
        names=names,
        # removals delete blobs under the catalog's write lock: none can slip in between
        # a batch's check that its blobs are still there and its writes
        guard=archive.catalog.writing,
    )


def _encrypted(archive: Archive) -> EncryptedStore:
    if not isinstance(archive.store, EncryptedStore):
        raise EncryptionKeyError(NOT_CONFIGURED)
    return archive.store


def _key_file(config: Config) -> Path:
    if not config.archive.encrypted:
        raise EncryptionKeyError(NOT_CONFIGURED)
    return config.archive.key_file
