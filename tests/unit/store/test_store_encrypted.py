"""Encryption at rest, at the store: sealed blobs, keyed names, tampering, keys and rewrap.

The contract (``test_store_contract.py``) runs over the encrypted store too; these are the
things only encryption promises. Tampering is done on the real files (the pack row, the blob
file) behind the store's back, as someone with the disk would.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from postfix_archiver.errors import EncryptionKeyError, IntegrityError, StoreError
from postfix_archiver.store.encrypted import MAGIC, EncryptedStore, rewrap, sealed_key_id
from postfix_archiver.store.fs import FileStore
from postfix_archiver.store.keyring import (
    create_key_file,
    load_key_file,
    rotate_key_file,
    write_key_file,
)

SHA_A = "a1" * 32
SHA_B = "b2" * 32
SECRET = b"the unique content of this test, 7f3c"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "archive.keys"
    create_key_file(path)
    return path


def open_encrypted(tmp_path: Path, keys: Path, pack_limit: int = 256 * 1024) -> EncryptedStore:
    return EncryptedStore(FileStore(tmp_path / "blobs", pack_limit), load_key_file(keys))


@pytest.fixture(params=["pack", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path, keys: Path) -> Iterator[EncryptedStore]:
    s = open_encrypted(tmp_path, keys, 256 * 1024 if request.param == "pack" else -1)
    try:
        yield s
    finally:
        s.close()


def every_file_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def flip_stored_byte(store: EncryptedStore, stored: str, offset: int) -> None:
    """Change one byte of the sealed blob where it lies: the pack row or the blob file."""
    inner = store.inner
    assert isinstance(inner, FileStore)
    path = inner.path(stored)
    if path.exists():
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
        return
    with sqlite3.connect(inner.root / "packed.sqlite") as conn:
        [(blob,)] = conn.execute("SELECT data FROM blobs WHERE key = ?", (stored,)).fetchall()
        data = bytearray(blob)
        data[offset] ^= 0x01
        conn.execute("UPDATE blobs SET data = ? WHERE key = ?", (bytes(data), stored))
    conn.close()


class TestSealed:
    def test_round_trip_and_nothing_in_clear(self, store: EncryptedStore, tmp_path: Path) -> None:
        store.put(f"m/{SHA_A}", SECRET)
        assert store.get(f"m/{SHA_A}") == SECRET
        assert store.size(f"m/{SHA_A}") == len(SECRET)
        assert store.exists(f"m/{SHA_A}")
        on_disk = every_file_bytes(tmp_path / "blobs")
        assert SECRET not in on_disk
        assert SHA_A.encode() not in on_disk  # nor the plain name
        names = [p.name for p in (tmp_path / "blobs").rglob("*")]
        assert not any(SHA_A in n for n in names)

    def test_names_are_keyed_and_stable(self, store: EncryptedStore, keys: Path) -> None:
        name = store.stored_name(f"m/{SHA_A}")
        assert name.startswith("m/")
        assert SHA_A not in name
        assert name != store.stored_name(f"p/{SHA_A}")
        # the same content gets the same name (dedup), but only under this name secret
        assert open_encrypted(keys.parent, keys).stored_name(f"m/{SHA_A}") == name
        other = keys.parent / "other.keys"
        create_key_file(other)
        assert open_encrypted(keys.parent, other).stored_name(f"m/{SHA_A}") != name
        assert name != f"m/{hashlib.sha256(f'm/{SHA_A}'.encode()).hexdigest()}"

    def test_same_bytes_seal_differently(self, store: EncryptedStore) -> None:
        store.put(f"m/{SHA_A}", SECRET)
        first = store.inner.get(store.stored_name(f"m/{SHA_A}"))
        store.put(f"m/{SHA_A}", SECRET)
        second = store.inner.get(store.stored_name(f"m/{SHA_A}"))
        assert first[:4] == MAGIC
        assert first != second  # a fresh nonce every time

    @pytest.mark.parametrize(
        "offset", [4, 5, 12, 30, -1], ids=["version", "key id", "nonce", "ciphertext", "tag"]
    )
    def test_a_changed_byte_is_named_on_read(self, store: EncryptedStore, offset: int) -> None:
        store.put(f"m/{SHA_A}", SECRET)
        stored = store.stored_name(f"m/{SHA_A}")
        flip_stored_byte(store, stored, offset)
        with pytest.raises((IntegrityError, EncryptionKeyError)) as info:
            store.get(f"m/{SHA_A}")
        assert stored in str(info.value)
        assert SHA_A in str(info.value)

    def test_a_blob_moved_to_another_name_fails(self, store: EncryptedStore) -> None:
        store.put(f"m/{SHA_A}", b"message A")
        store.put(f"m/{SHA_B}", b"message B")
        a, b = store.stored_name(f"m/{SHA_A}"), store.stored_name(f"m/{SHA_B}")
        store.inner.put(a, store.inner.get(b))  # swap B's sealed bytes in for A's
        with pytest.raises(IntegrityError, match="fails authentication"):
            store.get(f"m/{SHA_A}")
        assert store.get(f"m/{SHA_B}") == b"message B"

    def test_a_plain_blob_under_the_keyed_name_is_refused(self, store: EncryptedStore) -> None:
        store.put(f"m/{SHA_A}", b"sealed")
        store.inner.put(store.stored_name(f"m/{SHA_A}"), b"plain replacement")
        with pytest.raises(IntegrityError, match="not sealed"):
            store.get(f"m/{SHA_A}")


class TestKeys:
    def test_missing_key_id_is_named(self, tmp_path: Path, keys: Path) -> None:
        store = open_encrypted(tmp_path, keys)
        store.put(f"m/{SHA_A}", SECRET)
        old = load_key_file(keys).current
        store.close()
        # a key file with the same name secret but not the key the blob was sealed with
        ring, _ = rotate_key_file(keys)
        write_key_file(type(ring)(ring.path, ring.current, ring.name_secret, ring.keys[1:]))
        store = open_encrypted(tmp_path, keys)
        with pytest.raises(EncryptionKeyError) as info:
            store.get(f"m/{SHA_A}")
        assert f"key {old}" in str(info.value)
        assert str(keys) in str(info.value)
        store.close()

    def test_a_wrong_key_under_the_right_id_cannot_load(self, keys: Path) -> None:
        doc = json.loads(keys.read_text())
        doc["keys"][0]["key"] = "A" * 43 + "="  # another 32-byte key under the old id
        keys.write_text(json.dumps(doc))
        with pytest.raises(EncryptionKeyError, match="does not match its id"):
            load_key_file(keys)

    def test_rotate_then_read_old_and_new(self, tmp_path: Path, keys: Path) -> None:
        store = open_encrypted(tmp_path, keys)
        store.put(f"m/{SHA_A}", b"old")
        store.close()
        ring, previous = rotate_key_file(keys)
        assert ring.current != previous
        assert len(ring.keys) == 2
        store = open_encrypted(tmp_path, keys)
        store.put(f"m/{SHA_B}", b"new")
        assert store.get(f"m/{SHA_A}") == b"old"
        assert store.get(f"m/{SHA_B}") == b"new"
        assert sealed_key_id(store.inner.get(store.stored_name(f"m/{SHA_A}"))) == previous
        assert sealed_key_id(store.inner.get(store.stored_name(f"m/{SHA_B}"))) == ring.current
        store.close()

    def test_a_running_store_follows_a_rotation(
        self, tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("postfix_archiver.store.encrypted.RELOAD_SECONDS", 0.0)
        store = open_encrypted(tmp_path, keys)  # a `serve` started before the rotation
        ring, _ = rotate_key_file(keys)
        store.put(f"m/{SHA_A}", b"after rotation")
        assert sealed_key_id(store.inner.get(store.stored_name(f"m/{SHA_A}"))) == ring.current
        other = open_encrypted(tmp_path, keys)  # e.g. the web, reading it
        assert other.get(f"m/{SHA_A}") == b"after rotation"
        store.close()

    def test_a_running_store_ignores_a_key_file_with_another_name_secret(
        self, tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("postfix_archiver.store.encrypted.RELOAD_SECONDS", 0.0)
        store = open_encrypted(tmp_path, keys)
        name = store.stored_name(f"m/{SHA_A}")
        keys.unlink()
        create_key_file(keys)  # replaced under the running process, not rotated
        store.put(f"m/{SHA_A}", b"x")
        assert store.stored_name(f"m/{SHA_A}") == name
        assert store.get(f"m/{SHA_A}") == b"x"
        store.close()

    def test_unencodable_names_are_refused(self, store: EncryptedStore) -> None:
        with pytest.raises(StoreError, match="invalid blob key"):
            store.put("m/\udcff" + SHA_A, b"x")
        with pytest.raises(StoreError, match="invalid blob key"):
            store.get("m/\u2028" + SHA_A)

    def test_key_file_is_0600_and_not_overwritten(self, keys: Path) -> None:
        assert keys.stat().st_mode & 0o777 == 0o600
        before = keys.read_bytes()
        with pytest.raises(EncryptionKeyError, match="exists already"):
            create_key_file(keys)
        assert keys.read_bytes() == before
        rotate_key_file(keys)
        assert keys.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in keys.parent.iterdir()] == ["archive.keys"]  # no temporaries

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda d: d.update(version=2), "version 2 is not supported"),
            (lambda d: d.update(current="00000000"), "current key '00000000'"),
            (lambda d: d.update(name_secret="not base64!"), "name_secret is not valid base64"),
            (lambda d: d.update(name_secret="AAAA"), "name_secret must be 32 bytes, not 3"),
            (lambda d: d.update(keys=[]), "non-empty list"),
            (lambda d: d.update(extra=1), "unknown field 'extra'"),
            (lambda d: d["keys"].append(d["keys"][0]), "listed twice"),
            (lambda d: d["keys"][0].pop("created"), 'exactly "id", "created" and "key"'),
            (lambda d: d["keys"][0].update(key=12), "must be a base64 string"),
            (lambda d: d.update(name_secret="é" * 44), "not valid base64"),
        ],
    )
    def test_a_damaged_key_file_is_named(self, keys: Path, mutate: object, message: str) -> None:
        doc = json.loads(keys.read_text())
        mutate(doc)  # type: ignore[operator]
        keys.write_text(json.dumps(doc))
        with pytest.raises(EncryptionKeyError, match="key file") as info:
            load_key_file(keys)
        assert message in str(info.value)
        assert str(keys) in str(info.value)

    @pytest.mark.parametrize(
        "content", [b"", b"{", b"\xff\xfe", b"[]", b'"x"', b"1e999999", b"[" * 100_000]
    )
    def test_garbage_key_file(self, keys: Path, content: bytes) -> None:
        keys.write_bytes(content)
        with pytest.raises(EncryptionKeyError, match=str(keys)):
            load_key_file(keys)

    def test_missing_and_open_key_files(self, tmp_path: Path, keys: Path) -> None:
        with pytest.raises(EncryptionKeyError, match="keys init"):
            load_key_file(tmp_path / "nope.keys")
        keys.chmod(0o644)
        with pytest.raises(EncryptionKeyError, match=f"chmod 600 {keys}"):
            load_key_file(keys)
        with pytest.raises(EncryptionKeyError, match="cannot read key file"):
            load_key_file(tmp_path)  # a directory


class TestRewrap:
    def test_plain_blobs_stay_readable_until_rewrapped(self, tmp_path: Path, keys: Path) -> None:
        plain = FileStore(tmp_path / "blobs")
        plain.put(f"m/{SHA_A}", SECRET)  # an archive from before encryption
        plain.close()
        store = open_encrypted(tmp_path, keys)
        assert store.get(f"m/{SHA_A}") == SECRET
        assert store.exists(f"m/{SHA_A}")
        assert store.size(f"m/{SHA_A}") == len(SECRET)
        assert list(store.keys()) == [f"m/{SHA_A}"]
        report = rewrap(store)
        assert (report.encrypted, report.resealed, report.current) == (1, 0, 0)
        assert store.get(f"m/{SHA_A}") == SECRET
        assert list(store.inner.keys()) == [store.stored_name(f"m/{SHA_A}")]
        store.delete(f"m/{SHA_A}")
        assert not store.exists(f"m/{SHA_A}")
        assert list(store.inner.keys()) == []

    def test_rewrap_reseals_old_keys_and_skips_current(self, tmp_path: Path, keys: Path) -> None:
        store = open_encrypted(tmp_path, keys)
        store.put_many([(f"m/{SHA_A}", b"a"), (f"p/{SHA_A}", b"b" * 300_000)])  # pack + file
        store.close()
        ring, _ = rotate_key_file(keys)
        store = open_encrypted(tmp_path, keys)
        store.put(f"m/{SHA_B}", b"c")
        report = rewrap(store)
        assert (report.resealed, report.current, report.encrypted) == (2, 1, 0)
        for key, data in ((f"m/{SHA_A}", b"a"), (f"p/{SHA_A}", b"b" * 300_000)):
            assert sealed_key_id(store.inner.get(store.stored_name(key))) == ring.current
            assert store.get(key) == data
        again = rewrap(store)
        assert (again.resealed, again.current) == (0, 3)
        store.close()

    def test_rewrap_leaves_damaged_blobs_alone(self, tmp_path: Path, keys: Path) -> None:
        store = open_encrypted(tmp_path, keys)
        store.put(f"m/{SHA_A}", b"a")
        rotate_key_file(keys)
        store = open_encrypted(tmp_path, keys)
        stored = store.stored_name(f"m/{SHA_A}")
        flip_stored_byte(store, stored, 30)
        report = rewrap(store, is_plain=lambda blob: blob.startswith(b"\x28\xb5\x2f\xfd"))
        assert report.damaged == [stored]
        store.inner.put(f"m/{SHA_B}", b"neither sealed nor zstd")
        report = rewrap(store, is_plain=lambda blob: blob.startswith(b"\x28\xb5\x2f\xfd"))
        assert sorted(report.damaged) == sorted([stored, f"m/{SHA_B}"])
        assert store.inner.get(f"m/{SHA_B}") == b"neither sealed nor zstd"
        store.close()
