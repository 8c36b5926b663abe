"""Message blobs compressed with zstd dictionaries trained on the archive's own mail
(``archive.compression``): smaller, and every blob reads back whatever dictionary it was
written with, or none; a dictionary missing from the store is named by ``verify``."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
from pathlib import Path

import pytest
import zstandard
from tests.conftest import make_config

from postfix_archiver.archive import Archive, compression, service, verify
from postfix_archiver.archive.encryption import rewrap_archive, stored_names
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import IntegrityError
from postfix_archiver.store.encrypted import EncryptedStore, is_sealed
from postfix_archiver.store.keyring import create_key_file

WORDS = [
    *("alpha", "beta", "gamma", "delta", "report", "invoice", "meeting", "schedule"),
    *("quarterly", "numbers", "please", "review", "attached", "thanks", "regards"),
    *("budget", "forecast", "office", "travel", "approval"),
]


def message(n: int) -> bytes:
    rng = random.Random(n)
    body = " ".join(rng.choice(WORDS) for _ in range(300))
    return (
        f"Received: from mx{n % 7}.example.net (mx{n % 7}.example.net [192.0.2.{n % 250}])\r\n"
        f"\tby mail.example.com (Postfix) with ESMTP id Q{n:08X}\r\n"
        f"From: sender{n % 13}@example.com\r\nTo: rcpt{n % 11}@example.org\r\n"
        f"Subject: report {n}\r\nMessage-ID: <m{n}@example.com>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    ).encode()


def ingest(archive: Archive, n: int) -> int:
    envelope = Envelope(f"sender{n}@example.com", ("rcpt@example.org",), queue_id=f"Q{n}")
    return archive.ingest(message(n), envelope).id


def stored_frame(archive: Archive, ident: int) -> bytes:
    """The message blob of ``ident`` as compressed (opened, if the store seals)."""
    key = f"m/{archive.get(ident).sha256}"
    return archive.store.get(key)


def dict_id_of(archive: Archive, ident: int) -> int:
    return zstandard.get_frame_parameters(stored_frame(archive, ident)).dict_id


def train(archive: Archive, first: int = 1000, count: int = 300) -> int:
    return archive.codec.train([message(n) for n in range(first, first + count)])


def test_a_message_after_training_uses_the_dictionary_and_reads_back(archive: Archive) -> None:
    before = ingest(archive, 1)
    dict_id = train(archive)
    after = ingest(archive, 2)
    assert dict_id_of(archive, before) == 0
    assert dict_id_of(archive, after) == dict_id
    # the same kind of message (random words: the body compresses little), a third smaller
    assert len(stored_frame(archive, after)) < 0.7 * len(stored_frame(archive, before))
    assert archive.raw(before) == message(1)
    assert archive.raw(after) == message(2)
    assert verify(archive).ok


def test_blobs_of_every_dictionary_and_none_read_back_in_a_new_process(config: Config) -> None:
    with Archive(config) as archive:
        plain = ingest(archive, 1)
        first = train(archive, 1000)
        with_first = ingest(archive, 2)
        second = train(archive, 2000)
        with_second = ingest(archive, 3)
    assert first != second
    # a new process (the pipe filter) finds the newest dictionary in the store
    with Archive(config) as archive:
        newest = ingest(archive, 4)
        assert [dict_id_of(archive, i) for i in (plain, with_first, with_second, newest)] == [
            0,
            first,
            second,
            second,
        ]
    with Archive(config, readonly=True) as archive:
        assert [archive.raw(i) for i in (plain, with_first, with_second, newest)] == [
            message(n) for n in (1, 2, 3, 4)
        ]
        assert verify(archive).ok


def test_a_missing_dictionary_is_an_integrity_error_named_by_verify(config: Config) -> None:
    with Archive(config) as archive:
        plain = ingest(archive, 1)
        dict_id = train(archive)
        ident = ingest(archive, 2)
        [key] = archive.store.keys(compression.PREFIX)
        archive.store.delete(key)
    with Archive(config, readonly=True) as archive:
        assert archive.raw(plain) == message(1)  # a blob without a dictionary still reads
        with pytest.raises(IntegrityError, match=f"dictionary {dict_id}, which is missing"):
            archive.raw(ident)
        [problem] = verify(archive).problems
    assert f"zstd dictionary {dict_id}" in problem.detail
    assert "missing from the store" in problem.detail


def test_a_damaged_dictionary_is_an_integrity_error(config: Config) -> None:
    with Archive(config) as archive:
        dict_id = train(archive)
        ident = ingest(archive, 2)
        [key] = archive.store.keys(compression.PREFIX)
        # another dictionary's bytes under this one's name
        other = zstandard.train_dictionary(
            compression.DICT_BYTES, [message(n) for n in range(3000, 3300)]
        ).as_bytes()
        archive.store.put(key, archive.codec.compress(other))
    with (
        Archive(config, readonly=True) as archive,
        pytest.raises(IntegrityError, match=f"is damaged \\(not dictionary {dict_id}\\)"),
    ):
        archive.raw(ident)


def test_the_archive_trains_once_it_has_compressed_enough_messages(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compression, "FIRST_TRAINING", 200)
    with Archive(config) as archive:
        ids = [ingest(archive, n) for n in range(1, 201)]
    # the 200th message started the training (on a thread, finished by close)
    with Archive(config) as archive:
        [key] = archive.store.keys(compression.PREFIX)
        later = ingest(archive, 201)
        assert dict_id_of(archive, later) == int(key.rsplit("-", 1)[1])
        assert all(dict_id_of(archive, i) == 0 for i in ids)
        assert archive.raw(later) == message(201)
        assert archive.raw(ids[0]) == message(1)


def test_a_dictionary_id_comes_from_its_content() -> None:
    trained = zstandard.train_dictionary(
        compression.DICT_BYTES, [message(n) for n in range(300)]
    ).as_bytes()
    dict_id, raw = compression.with_content_id(trained)
    assert compression.with_content_id(raw) == (dict_id, raw)
    assert zstandard.ZstdCompressionDict(raw).dict_id() == dict_id
    assert 32768 <= dict_id < 2**31
    with pytest.raises(ValueError, match="not a zstd dictionary"):
        compression.with_content_id(b"\x28\xb5\x2f\xfd" + trained[4:])


def test_dictionaries_are_sealed_with_encryption_and_rewrapped(tmp_path: Path) -> None:
    keys = tmp_path / "etc" / "archive.keys"
    plain = make_config(tmp_path / "data")
    with Archive(plain) as archive:
        train(archive)  # a dictionary written before encryption was turned on
        before = ingest(archive, 1)
    create_key_file(keys)
    config = make_config(tmp_path / "data", f'encryption = "aes-256-gcm"\nkey_file = "{keys}"\n')
    with Archive(config) as archive:
        store = archive.store
        assert isinstance(store, EncryptedStore)
        rewrap_archive(archive, stored_names(archive))
        second = train(archive, 2000)
        after = ingest(archive, 2)
        assert dict_id_of(archive, after) == second
        names = list(store.inner.keys(compression.PREFIX))
        assert len(names) == 2
        assert all(is_sealed(store.inner.get(n)) for n in names)
    with Archive(config, readonly=True) as archive:
        assert [archive.raw(before), archive.raw(after)] == [message(1), message(2)]
        assert verify(archive).ok


def test_an_unreadable_dictionary_never_stops_archiving(tmp_path: Path) -> None:
    keys = tmp_path / "etc" / "archive.keys"
    create_key_file(keys)
    config = make_config(tmp_path / "data", f'encryption = "aes-256-gcm"\nkey_file = "{keys}"\n')
    with Archive(config) as archive:
        train(archive)
        store = archive.store
        assert isinstance(store, EncryptedStore)
        [name] = store.inner.keys(compression.PREFIX)
    # one changed byte in the sealed dictionary: listing the dictionaries (which opens them
    # under encryption) fails; the message is archived without one
    pack = tmp_path / "data" / "blobs" / "packed.sqlite"
    with sqlite3.connect(pack) as conn:
        [(blob,)] = conn.execute("SELECT data FROM blobs WHERE key = ?", (name,)).fetchall()
        conn.execute(
            "UPDATE blobs SET data = ? WHERE key = ?",
            (blob[:40] + bytes([blob[40] ^ 4]) + blob[41:], name),
        )
    conn.close()
    with Archive(config) as archive:
        ident = ingest(archive, 1)
        assert dict_id_of(archive, ident) == 0
        assert archive.raw(ident) == message(1)


def test_an_imports_worker_processes_train_one_dictionary_and_share_it(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker process trained its own dictionary (about 1.3 s of CPU each); one trains
    now, and the others compress with its dictionary once they look again."""
    monkeypatch.setattr(compression, "FIRST_TRAINING", 200)
    monkeypatch.setattr(service, "FOLLOWER_REFRESH_SECONDS", 0.0)
    trainer = multiprocessing.get_context("spawn").Value("b", 0)
    workers: list[Archive] = []
    try:
        for _ in range(2):  # as the process pool's initializer opens them
            service._worker_open(config, trainer)
            assert service._worker_archive is not None
            workers.append(service._worker_archive)
        for w in workers:
            for n in range(1, 201):
                w.codec.compress_message([message(n)])
        for w in workers:
            w.codec.close()  # waits for a training in flight
        [key] = workers[0].store.keys(compression.PREFIX)
        frame = workers[1].codec.compress_message([message(500)])
        assert zstandard.get_frame_parameters(frame).dict_id == int(key.rsplit("-", 1)[1])
    finally:
        for w in workers:
            w.close()
        service._worker_archive = None
