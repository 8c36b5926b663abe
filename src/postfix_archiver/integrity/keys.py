"""The Ed25519 signing key of checkpoints: created once, kept outside the archive.

The private key is PKCS#8 PEM, mode 0600; its public key (SubjectPublicKeyInfo PEM, the form
``openssl pkey -pubout`` writes) sits beside it as ``<key>.pub`` and is what an auditor gets.
A key is named by its id: the SHA-256 of the public key's DER form, which anyone can compute
with ``openssl pkey -pubin -in KEY.pub -outform DER | sha256sum``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import CheckpointError

# a PEM key is a few hundred bytes: anything much larger is not one (and is not read whole)
MAX_KEY_FILE = 64 * 1024


def public_key_path(private_key: Path) -> Path:
    return private_key.with_name(private_key.name + ".pub")


def key_id(public_key: Ed25519PublicKey) -> str:
    """``sha256:`` and the hex SHA-256 of the public key's SubjectPublicKeyInfo DER."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True, slots=True)
class CreatedKey:
    private: Path
    public: Path
    id: str


def create_signing_key(path: Path) -> CreatedKey:
    """A new Ed25519 key at ``path`` (0600; its directory made 0700 if missing) and its
    public key beside it. Never overwrites: an existing key may have signed checkpoints."""
    public = public_key_path(path)
    for existing in (path, public):
        if existing.exists() or existing.is_symlink():
            raise CheckpointError(
                f"{existing} exists already: keys init never overwrites a key (checkpoints "
                "signed with it must stay verifiable); move it away first to make a new one"
            )
    directory = path.parent
    try:
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)  # mkdir's mode is reduced by the umask
    except OSError as exc:
        raise CheckpointError(f"cannot create {directory}: {exc.strerror}") from None
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(path, private_pem, 0o600)
    _write_new(public, public_pem, 0o644)
    _fsync_dir(directory)
    return CreatedKey(path, public, key_id(key.public_key()))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise CheckpointError(f"{path} exists already: keys init never overwrites a key") from None
    except OSError as exc:
        raise CheckpointError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)  # the umask must not loosen or tighten it
        os.write(fd, data)
        os.fsync(fd)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_limited(path: Path, what: str, limit: int, missing: str = "") -> bytes:
    """At most ``limit`` bytes of ``path``; ``CheckpointError`` if it is larger or unreadable
    (``missing``: how to make the file, said when there is none)."""
    try:
        if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block
            raise CheckpointError(f"{what} {path} is not a regular file")
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        hint = f" ({missing})" if missing else ""
        raise CheckpointError(f"{what} {path}: no such file{hint}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise CheckpointError(f"{what} {path} is larger than {limit >> 10} KiB: not one of ours")
    return data


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``; ``CheckpointError`` saying what is wrong with it."""
    data = read_limited(
        path, "signing key", MAX_KEY_FILE, "create it with `postfix-archiver keys init`"
    )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CheckpointError(
            f"signing key {path} is encrypted with a passphrase: the archiver needs it "
            "unencrypted (keep it readable by the archiver's user only)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CheckpointError(f"signing key {path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(
            f"signing key {path} is not an Ed25519 key: create one with "
            "`postfix-archiver keys init`"
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The public key at ``path`` (SubjectPublicKeyInfo PEM, as ``keys init`` writes it)."""
    data = read_limited(
        path, "public key", MAX_KEY_FILE, "give the .pub file written beside the signing key"
    )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = " (that is the private key: give its .pub file)" if b"PRIVATE KEY" in data else ""
        raise CheckpointError(f"public key {path} is not a PEM public key{hint}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"public key {path} is not an Ed25519 key")
    return key
