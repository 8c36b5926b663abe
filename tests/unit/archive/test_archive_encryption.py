"""Encryption at rest through the archive: the one ingest path, reads, ``verify``, rewrap of an
archive from before encryption, and the config that turns it on."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive, verify
from postfix_archiver.archive.encryption import rewrap_archive, stored_names
from postfix_archiver.config import Config, parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import ConfigError, EncryptionKeyError, IntegrityError
from postfix_archiver.store.encrypted import EncryptedStore, is_sealed
from postfix_archiver.store.fs import FileStore
from postfix_archiver.store.keyring import create_key_file, rotate_key_file

UNIQUE = "zqxjv-encryption-canary-4411"
# ~400 KB of random bytes: its blob is too big for the pack, so it is a file of its own
BIG = random.Random(7).randbytes(400_000)
SMALL_PART = random.Random(8).randbytes(6_000)


def message(n: int, attachment: bytes = b"") -> bytes:
    head = (
        f"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: report {n}\r\n"
        f"Message-ID: <enc{n}@example.com>\r\n"
    ).encode()
    text = f"The secret word is {UNIQUE} number {n}.\r\n".encode()
    if not attachment:
        return head + b"\r\n" + text
    encoded = base64.b64encode(attachment)
    body = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        head + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/plain\r\n\r\n" + text + b"--B\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + body
        + b"\r\n--B--\r\n"
    )


def encrypted_config(tmp_path: Path) -> Config:
    keys = tmp_path / "etc" / "archive.keys"
    if not keys.exists():
        create_key_file(keys)
    return make_config(tmp_path / "data", f'encryption = "aes-256-gcm"\nkey_file = "{keys}"\n')


def ingest(archive: Archive, raw: bytes, n: int) -> int:
    return archive.ingest(
        raw, Envelope("alice@example.com", ("bob@example.org",), queue_id=f"Q{n}")
    ).id


def blob_files(config: Config) -> list[Path]:
    root = Path(config.archive.store_url.removeprefix("file://"))
    return sorted(p for p in root.rglob("*") if p.is_file())


def sealed_of(archive: Archive, key: str) -> str:
    store = archive.store
    assert isinstance(store, EncryptedStore)
    return store.stored_name(key)


def flip(config: Config, stored: str, offset: int = 40) -> None:
    """One changed byte in the sealed blob, in the pack row or the blob file."""
    root = Path(config.archive.store_url.removeprefix("file://"))
    path = FileStore(root, readonly=True).path(stored)
    if path.exists():
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x04
        path.write_bytes(bytes(data))
        return
    with sqlite3.connect(root / "packed.sqlite") as conn:
        [(blob,)] = conn.execute("SELECT data FROM blobs WHERE key = ?", (stored,)).fetchall()
        data = bytearray(blob)
        data[offset] ^= 0x04
        assert conn.execute("UPDATE blobs SET data = ? WHERE key = ?", (bytes(data), stored))
    conn.close()


def test_ingest_and_read_back_with_nothing_in_clear_in_the_store(tmp_path: Path) -> None:
    config = encrypted_config(tmp_path)
    raws = [message(1), message(2, SMALL_PART), message(3, BIG), message(4, SMALL_PART)]
    with Archive(config) as archive:
        ids = [ingest(archive, raw, n) for n, raw in enumerate(raws, start=1)]
        assert [archive.raw(i) for i in ids] == raws
        assert isinstance(archive.store, EncryptedStore)
        # dedup still works: the part shared by messages 2 and 4 is stored once
        assert len(list(archive.store.keys("p/"))) == 2
        assert verify(archive).ok
    files = blob_files(config)
    assert any(p.name == "packed.sqlite" for p in files)
    assert any(p.parent.parent.name == "p" for p in files)  # the big part has its own file
    everything = b"".join(p.read_bytes() for p in files)
    names = " ".join(str(p) for p in files)
    for raw in raws:
        sha = hashlib.sha256(raw).hexdigest()
        assert sha.encode() not in everything
        assert sha not in names
    for part in (SMALL_PART, BIG):
        assert hashlib.sha256(part).hexdigest() not in names
        assert base64.b64encode(part)[:60] not in everything
    assert UNIQUE.encode() not in everything


@pytest.mark.parametrize("where", ["pack", "file"])
def test_a_changed_byte_is_reported_by_read_and_verify(tmp_path: Path, where: str) -> None:
    config = encrypted_config(tmp_path)
    with Archive(config) as archive:
        ident = ingest(archive, message(1, BIG), 1)
        ingest(archive, message(2), 2)
        key = f"m/{archive.get(ident).sha256}" if where == "pack" else None
        if key is None:
            [part] = archive.store.keys("p/")
            key = part
        stored = sealed_of(archive, key)
    flip(config, stored)
    with Archive(config, readonly=True) as archive:
        with pytest.raises(IntegrityError, match="fails authentication") as info:
            archive.raw(ident)
        assert stored in str(info.value)
        report = verify(archive)
    [problem] = report.problems
    assert problem.where == f"message {ident}"
    assert stored in problem.detail
    assert "altered or damaged" in problem.detail


def test_a_key_missing_from_the_key_file_is_named_not_garbage(tmp_path: Path) -> None:
    config = encrypted_config(tmp_path)
    with Archive(config) as archive:
        ident = ingest(archive, message(1), 1)
        old = archive.store.keyring.current  # type: ignore[attr-defined]
    # the key file is replaced by a new one (lost, restored from the wrong backup)
    config.archive.key_file.unlink()
    create_key_file(config.archive.key_file)
    # the name secret differs too: the blob cannot even be found under its name
    with (
        Archive(config, readonly=True) as archive,
        pytest.raises(IntegrityError, match="missing from the store") as info,
    ):
        archive.raw(ident)
    assert f"or the key file {config.archive.key_file} is not the one" in str(info.value)
    config.archive.key_file.unlink()
    with pytest.raises(EncryptionKeyError, match=f"key file {config.archive.key_file}"):
        Archive(config, readonly=True)
    assert old


def test_verify_names_a_key_that_was_dropped_from_the_key_file(tmp_path: Path) -> None:
    config = encrypted_config(tmp_path)
    with Archive(config) as archive:
        ident = ingest(archive, message(1), 1)
    ring, old = rotate_key_file(config.archive.key_file)
    text = config.archive.key_file.read_text()
    # drop the old key, keep the new one and the name secret
    doc = json.loads(text)
    doc["keys"] = [k for k in doc["keys"] if k["id"] != old]
    config.archive.key_file.write_text(json.dumps(doc))
    with Archive(config, readonly=True) as archive:
        with pytest.raises(EncryptionKeyError, match=f"sealed with key {old}"):
            archive.raw(ident)
        [problem] = verify(archive).problems
    assert f"key {old}" in problem.detail
    assert ring.current != old


def test_a_plain_archive_stays_readable_then_rewrap_seals_it(tmp_path: Path) -> None:
    plain = make_config(tmp_path / "data")
    with Archive(plain) as archive:
        old = [ingest(archive, message(n, BIG if n == 2 else b""), n) for n in (1, 2)]
    config = encrypted_config(tmp_path)
    with Archive(config) as archive:
        new = ingest(archive, message(3), 3)
        assert [archive.raw(i) for i in (*old, new)] == [
            message(1),
            message(2, BIG),
            message(3),
        ]
        store = archive.store
        assert isinstance(store, EncryptedStore)
        assert sum(not is_sealed(store.inner.get(n)) for n in store.inner.keys("")) == 3
        report = rewrap_archive(archive, stored_names(archive))
        assert (report.encrypted, report.current, report.damaged) == (3, 1, [])
        assert all(is_sealed(store.inner.get(n)) for n in store.inner.keys(""))
        assert [archive.raw(i) for i in (*old, new)][1] == message(2, BIG)
        assert verify(archive).ok
    # the plain message file is gone from the tree (the pack's rows are replaced)
    assert UNIQUE.encode() not in b"".join(
        p.read_bytes() for p in blob_files(config) if p.name != "packed.sqlite"
    )


def test_rewrap_without_encryption_names_the_setting(archive: Archive) -> None:
    with pytest.raises(EncryptionKeyError, match='encryption = "aes-256-gcm"'):
        stored_names(archive)


# -- config -------------------------------------------------------------------------------


def test_config_defaults_to_no_encryption(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data")
    assert config.archive.encryption == "none"
    assert not config.archive.encrypted
    assert str(config.archive.key_file) == "/etc/postfix-archiver/archive.keys"


def test_config_key_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    text = '[archive]\nhome = "data"\nencryption = "aes-256-gcm"\nkey_file = "keys/a.keys"\n'
    config = parse_config(text, str(tmp_path / "conf" / "archiver.toml"))
    assert config.archive.key_file == tmp_path / "conf" / "keys" / "a.keys"
    assert config.archive.encrypted


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ('encryption = "aes"', 3, "must be one of 'none', 'aes-256-gcm'"),
        ("encryption = true", 3, "must be a str"),
        ('encryption = "aes-256-gcm"\nkey_file = "{home}/archive.keys"', 4, "inside the archive"),
        ('encryption = "aes-256-gcm"\nkey_file = "{home}/blobs/k"', 4, "inside the archive"),
        ('store = "file://{tmp}/s"\nkey_file = "{tmp}/s/x/k"', 4, "inside the archive directory"),
        ('key_file = ""', 3, "must be the path of a file"),
        ('key_file = "a\\u0000b"', 3, "must be the path of a file"),
        ("key_file = 5", 3, "must be a str"),
    ],
)
def test_config_errors(tmp_path: Path, extra: str, line: int, message: str) -> None:
    home = tmp_path / "data"
    text = f'[archive]\nhome = "{home}"\n' + extra.format(home=home, tmp=tmp_path)
    with pytest.raises(ConfigError) as info:
        parse_config(text, str(tmp_path / "c.toml"))
    assert message in str(info.value)
    assert info.value.line == line
    assert info.value.key is not None
    assert info.value.key.startswith("archive.")
