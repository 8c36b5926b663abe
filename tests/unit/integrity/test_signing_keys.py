"""The signing key: made once with safe modes, never overwritten, and every wrong file
refused with a sentence rather than a traceback."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from postfix_archiver.errors import CheckpointError
from postfix_archiver.integrity.keys import (
    create_signing_key,
    key_id,
    load_private_key,
    load_public_key,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o077, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_a_new_key_pair_has_safe_modes_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    made = create_signing_key(tmp_path / "etc" / "pa" / "signing.key")
    assert made.public == tmp_path / "etc" / "pa" / "signing.key.pub"
    assert (mode(made.private), mode(made.public), mode(made.private.parent)) == (
        0o600,
        0o644,
        0o700,
    )
    assert made.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert made.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    private, public = load_private_key(made.private), load_public_key(made.public)
    assert key_id(private.public_key()) == key_id(public) == made.id
    assert made.id.startswith("sha256:")
    assert len(made.id) == 7 + 64


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o755)
    (tmp_path / "keys").chmod(0o755)
    create_signing_key(tmp_path / "keys" / "signing.key")
    assert mode(tmp_path / "keys") == 0o755


@pytest.mark.parametrize("existing", ["signing.key", "signing.key.pub"])
def test_an_existing_key_is_never_overwritten(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="exists already: keys init never overwrites"):
        create_signing_key(tmp_path / "signing.key")
    assert (tmp_path / existing).read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == [existing]


def test_a_dangling_link_in_its_place_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "signing.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CheckpointError, match="exists already"):
        create_signing_key(tmp_path / "signing.key")
    assert not (tmp_path / "elsewhere").exists()


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "file.pem"
    path.write_bytes(data)
    return path


def test_wrong_private_key_files_are_refused_clearly(tmp_path: Path) -> None:
    made = create_signing_key(tmp_path / "k" / "signing.key")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cases = {
        b"": "is not a PEM private key",
        b"\xff\x00" * 100: "is not a PEM private key",
        made.public.read_bytes(): "is not a PEM private key",
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ): "is not an Ed25519 key",
        load_private_key(made.private).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ): "is encrypted with a passphrase",
        b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 70_000: "larger than 64 KiB",
    }
    for data, reason in cases.items():
        with pytest.raises(CheckpointError, match=reason):
            load_private_key(write(tmp_path, data))
    with pytest.raises(CheckpointError, match=r"no such file .*keys init"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_private_key(tmp_path)


def test_wrong_public_key_files_are_refused_clearly(tmp_path: Path) -> None:
    made = create_signing_key(tmp_path / "k" / "signing.key")
    with pytest.raises(CheckpointError, match=r"that is the private key: give its \.pub file"):
        load_public_key(made.private)
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = ec_public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(CheckpointError, match="is not an Ed25519 key"):
        load_public_key(write(tmp_path, pem))
    with pytest.raises(CheckpointError, match="is not a PEM public key"):
        load_public_key(write(tmp_path, "ключ".encode()))
    with pytest.raises(CheckpointError, match="no such file"):
        load_public_key(tmp_path / "missing.pub")
