"""Purge and erasure: what goes is gone from every file of the archive, what is kept still
reads, the chain says what was removed, and a crash halfway leaves nothing a rerun cannot
finish.

The archive under test: an erased message whose body and attachment hold strings found
nowhere else (the attachment large enough for a blob file of its own), and two messages that
share another attachment, one of which goes while the other stays.
"""

from __future__ import annotations

import base64
import hashlib
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive, verify
from postfix_archiver.archive.encryption import init_keys
from postfix_archiver.archive.removal import (
    ERASE,
    PURGE,
    finish_pending,
    plan_erase,
    plan_purge,
    remove,
)
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import CatalogError
from postfix_archiver.store.encrypted import EncryptedStore, rewrap

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
BODY_MARK = b"qqzxbodymarker4417"
PART_MARK = b"qqzxattachmarker8823"
# incompressible, so the compressed blob keeps the marker as it is (a stronger test: it is
# really there before the erasure), and over the pack limit, so it is a blob file
SECRET_PART = random.Random(1).randbytes(300_000) + b" " + PART_MARK + b" "
SHARED_PART = random.Random(2).randbytes(20_000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mime(subject: str, body: bytes, *attachments: tuple[str, bytes]) -> bytes:
    out = [
        b"From: alice@example.com\r\nTo: bob@example.com\r\n",
        f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@example.com>\r\n".encode(),
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n",
        b"--B\r\nContent-Type: text/plain\r\n\r\n" + body + b"\r\n",
    ]
    for name, data in attachments:
        encoded = base64.b64encode(data)
        lines = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
        out.append(
            b"--B\r\nContent-Type: application/octet-stream\r\n"
            + f'Content-Disposition: attachment; filename="{name}"\r\n'.encode()
            + b"Content-Transfer-Encoding: base64\r\n\r\n"
            + lines
            + b"\r\n"
        )
    out.append(b"--B--\r\n")
    return b"".join(out)


SECRET = mime("private matter", b"the body says " + BODY_MARK, ("secret.bin", SECRET_PART))
GOING = mime("old report", b"shared attachment, going", ("shared.bin", SHARED_PART))
KEPT = mime("new report", b"shared attachment, kept", ("shared.bin", SHARED_PART))


def envelope(n: int, received: datetime = T0) -> Envelope:
    return Envelope("alice@example.com", ("bob@example.com",), queue_id=f"Q{n}", received=received)


def every_file(home: Path) -> Iterator[tuple[Path, bytes]]:
    for path in sorted(home.rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def files_holding(home: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(home)) for p, data in every_file(home) if needle in data]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "home")


def populate(config: Config) -> dict[str, int]:
    with Archive(config) as archive:
        ids = {
            "secret": archive.ingest(SECRET, envelope(1)).id,
            "going": archive.ingest(GOING, envelope(2)).id,
            "kept": archive.ingest(KEPT, envelope(3)).id,
        }
        assert archive.index_pending() == 3
        return ids


def test_an_erased_message_can_be_read_from_no_file_of_the_archive(config: Config) -> None:
    home = config.archive.home
    ids = populate(config)
    # the markers are really there to find: in the pack, a blob file, the index
    assert files_holding(home, BODY_MARK)
    assert files_holding(home, PART_MARK)

    with Archive(config) as archive:
        outcome = remove(
            archive,
            [archive.get(ids["secret"]), archive.get(ids["going"])],
            why=ERASE,
            reason="data-subject request 17",
            who="cli:dpo",
        )
        assert [row.id for row, _seq in outcome.removed] == [ids["secret"], ids["going"]]
        assert outcome.blobs_deleted == 3  # two message blobs, the secret part
        keys = set(archive.store.keys())
        assert f"m/{sha(SECRET)}" not in keys
        assert f"p/{sha(SECRET_PART)}" not in keys
        assert f"m/{sha(GOING)}" not in keys
        # the attachment shared with kept mail stays, and the kept message reads whole
        assert f"p/{sha(SHARED_PART)}" in keys
        assert archive.raw(ids["kept"]) == KEPT
        assert archive.search("report").total == 1
        assert archive.search("qqzxbodymarker4417").total == 0
        # at once, while the archive is still open (as under `serve`): no WAL holds it
        for needle in (BODY_MARK, PART_MARK, b"private matter", SECRET_PART[:64]):
            assert files_holding(home, needle) == [], needle

    for needle in (BODY_MARK, PART_MARK, b"private matter", SECRET_PART[:64]):
        assert files_holding(home, needle) == [], needle

    with Archive(config, readonly=True) as archive:
        report = verify(archive)
    assert report.ok, report.problems
    assert [str(r) for r in report.removed] == [
        f"event 1: arrival of a message removed by tombstone 4 (erase, data-subject request 17,"
        f" cli:dpo, {report.removed[0].when})",
        f"event 2: arrival of a message removed by tombstone 5 (erase, data-subject request 17,"
        f" cli:dpo, {report.removed[0].when})",
    ]


def test_the_same_bytes_archived_again_get_a_new_id_and_verify_clean(config: Config) -> None:
    ids = populate(config)
    with Archive(config) as archive:
        remove(archive, [archive.get(ids["kept"])], why=ERASE, reason="r", who="w")
        again = archive.ingest(KEPT, envelope(9)).id
        # the removed id stays the removed message's: its events and tombstone still name it
        assert again > ids["kept"]
        assert archive.raw(again) == KEPT
        report = verify(archive)
    assert report.ok, report.problems


def tamper(config: Config, sql: str) -> list[str]:
    db = sqlite3.connect(config.archive.home / "catalog.sqlite")
    with db:
        db.execute(sql)
    db.close()
    with Archive(config, readonly=True) as archive:
        return [str(p) for p in verify(archive).problems]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # the tombstone is gone: the arrival's missing row is unexplained again
        ("DELETE FROM events WHERE seq = 4", "event 1: its message row 1 is missing"),
        (
            "UPDATE events SET tombstone = replace(tombstone, 'request 17', 'request 18') "
            "WHERE seq = 4",
            "event 4: tombstone does not match its hash",
        ),
        ("UPDATE events SET tombstone = 'not json' WHERE seq = 4", "event 4: is not a well-formed"),
        ("DELETE FROM messages WHERE id = 3", "event 3: its message row 3 is missing"),
    ],
)
def test_verify_still_fails_on_any_other_tampering(config: Config, sql: str, expected: str) -> None:
    ids = populate(config)
    with Archive(config) as archive:
        remove(archive, [archive.get(ids["secret"])], why=ERASE, reason="request 17", who="w")
    problems = tamper(config, sql)
    assert any(p.startswith(expected) for p in problems), problems


def hold(config: Config, message: int) -> None:
    db = sqlite3.connect(config.archive.home / "catalog.sqlite")
    with db:
        db.execute(
            "INSERT INTO holds (id, name, query, reason, created_by, created_at) "
            "VALUES (1, 'case-7', 'x', 'litigation', 'root', 0)"
        )
        db.execute("INSERT INTO message_holds (hold, message) VALUES (1, ?)", (message,))
    db.close()


def test_purge_removes_expired_mail_but_never_held_mail(tmp_path: Path) -> None:
    config = make_config(tmp_path / "home", 'retention = "30d"\n')
    old = T0 - timedelta(days=400)
    with Archive(config) as archive:
        expired = archive.ingest(GOING, envelope(1, old)).id
        held = archive.ingest(SECRET, envelope(2, old)).id
        fresh = archive.ingest(KEPT, envelope(3, datetime.now(UTC))).id
        archive.index_pending()
    hold(config, held)
    with Archive(config) as archive:
        plan = plan_purge(archive)
        assert [r.id for r in plan.remove] == [expired]
        assert [(r.id, names) for r, names in plan.held] == [(held, ["case-7"])]
        # even when asked to, a held message is not removed (checked in the transaction)
        outcome = remove(
            archive, [archive.get(expired), archive.get(held)], why=PURGE, reason="r", who="w"
        )
        assert [r.id for r, _ in outcome.removed] == [expired]
        assert [r.id for r in outcome.held] == [held]
        assert archive.raw(held) == SECRET
        assert archive.raw(fresh) == KEPT
        assert plan_erase(archive, "report").remove == [archive.get(fresh)]


def test_a_purge_keeps_mail_whose_retention_changed_after_the_plan(tmp_path: Path) -> None:
    """A long purge works from a list made at its start: a message whose retention is
    extended meanwhile, or whose bytes arrive again (Postfix was told 250), must stay."""
    config = make_config(tmp_path / "home", 'retention = "30d"\n')
    old = T0 - timedelta(days=400)
    with Archive(config) as archive:
        again = archive.ingest(GOING, envelope(1, old)).id
        extended = archive.ingest(SECRET, envelope(2, old)).id
        expired = archive.ingest(KEPT, envelope(3, old)).id
        plan = plan_purge(archive)
        assert [r.id for r in plan.remove] == [again, extended, expired]
        # after the plan: the same bytes are accepted again, and an admin extends one
        assert archive.ingest(GOING, envelope(4, datetime.now(UTC))).id == again
        archive.catalog.set_retain_until([(extended, datetime.now(UTC) + timedelta(days=3650))])
        outcome = remove(
            archive,
            plan.remove,
            why=PURGE,
            reason="retention expired",
            who="w",
            expired_before=plan.expired_before,
        )
        assert [r.id for r, _ in outcome.removed] == [expired]
        assert [r.id for r in outcome.retained] == [again, extended]
        changed = outcome.to_json()["retention_changed"]
        assert [r["id"] for r in changed] == [again, extended]  # type: ignore[attr-defined]
        assert archive.raw(again) == GOING
        assert len(archive.catalog.envelopes(again)) == 2  # the new arrival's envelope too
        assert archive.raw(extended) == SECRET
        assert archive.catalog.get(expired) is None
        assert verify(archive).ok


def test_an_index_made_before_signatures_is_rebuilt_not_corrupted(config: Config) -> None:
    ids = populate(config)
    db = sqlite3.connect(config.archive.home / "catalog.sqlite")
    with db:
        db.execute("UPDATE messages SET indexed_with = NULL")
    db.close()
    with Archive(config) as archive:
        outcome = remove(archive, [archive.get(ids["secret"])], why=ERASE, reason="r", who="w")
        assert outcome.reindexed
        # emptied and queued: the indexer makes the kept messages' entries again
        assert archive.search("report").total == 0
        assert archive.index_pending() == 2
        assert archive.search("qqzxbodymarker4417").total == 0
        assert [r.id for r in archive.search("report").results] == [ids["kept"], ids["going"]]
        assert archive.search("shared.bin").total == 2
    assert files_holding(config.archive.home, BODY_MARK) == []


CRASH = """
import os, signal, sys
from postfix_archiver.archive import Archive
from postfix_archiver.archive.removal import ERASE, remove
from postfix_archiver.config import load_config
from postfix_archiver.store.fs import FileStore

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

FileStore.delete_many = die  # the catalog has committed; the blobs are not deleted yet
with Archive(load_config(sys.argv[1])) as archive:
    remove(archive, [archive.get(int(sys.argv[2]))], why=ERASE, reason="r", who="w")
print("survived")
"""


def test_a_crash_before_the_blobs_go_leaves_only_unreferenced_blobs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[archive]\nhome = "{home}"\n')
    config = make_config(home)
    ids = populate(config)
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(config_path), str(ids["secret"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Archive(config) as archive:
        # the message is gone from the catalog, and the archive verifies ...
        assert archive.catalog.get(ids["secret"]) is None
        assert verify(archive).ok
        # ... only its blobs are left, known as pending, and the next run deletes them
        assert archive.store.exists(f"p/{sha(SECRET_PART)}")
        assert finish_pending(archive) == 2
        assert not archive.store.exists(f"m/{sha(SECRET)}")
        assert not archive.store.exists(f"p/{sha(SECRET_PART)}")
        assert archive.raw(ids["kept"]) == KEPT
    assert files_holding(home, PART_MARK) == []


REUSER = mime("reuses the secret part", b"staged before the erasure", ("copy.bin", SECRET_PART))


@pytest.mark.parametrize("raw", [REUSER, SECRET], ids=["reused-part", "known-bytes"])
def test_an_arrival_staged_before_a_removal_never_commits_without_its_blobs(
    config: Config, raw: bytes
) -> None:
    ids = populate(config)
    with Archive(config) as archive:
        # staged while the secret's part (and message) still exist: nothing new to store
        staged = archive.stage(raw, envelope(7))
        assert f"p/{sha(SECRET_PART)}" not in dict(staged.blobs)
        archive.store_staged([staged])
        remove(archive, [archive.get(ids["secret"])], why=ERASE, reason="r", who="w")
        # the commit comes after the blobs went: refused (a temporary failure), not recorded
        with pytest.raises(CatalogError, match="removed while it arrived"):
            archive.ingester.submit_staged(staged).result(timeout=30)
        assert archive.catalog.find_sha(sha(raw)) is None
        # the retry stages again, stores what is missing, and reads back whole
        again = archive.ingest(raw, envelope(7)).id
        assert archive.raw(again) == raw
        assert verify(archive).ok


CRASH_MIDWAY = """
import os, signal, sys
from postfix_archiver.archive import Archive
from postfix_archiver.archive.removal import ERASE, remove
from postfix_archiver.config import load_config
from postfix_archiver.store.fs import FileStore

delete_many = FileStore.delete_many

def delete_then_die(self, keys):
    delete_many(self, keys)  # the blobs are gone ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before its commit

FileStore.delete_many = delete_then_die
with Archive(load_config(sys.argv[1])) as archive:
    remove(archive, [archive.get(int(sys.argv[2]))], why=ERASE, reason="r", who="w")
print("survived")
"""


def test_an_arrival_staged_before_a_blob_deletion_killed_midway_is_refused(
    tmp_path: Path,
) -> None:
    """The deletion's record must be durable before the first blob goes: a process killed
    after deleting must not leave an arrival staged earlier free to commit without them."""
    home = tmp_path / "home"
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[archive]\nhome = "{home}"\n')
    config = make_config(home)
    ids = populate(config)
    with Archive(config) as archive:
        staged = archive.stage(REUSER, envelope(7))  # reuses the secret's part, still there
        assert f"p/{sha(SECRET_PART)}" not in dict(staged.blobs)
        archive.store_staged([staged])
        proc = subprocess.run(
            [sys.executable, "-c", CRASH_MIDWAY, str(config_path), str(ids["secret"])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert not archive.store.exists(f"p/{sha(SECRET_PART)}")
        with pytest.raises(CatalogError, match="removed while it arrived"):
            archive.ingester.submit_staged(staged).result(timeout=30)
        assert archive.catalog.find_sha(sha(REUSER)) is None
        # staged after the kill (the part is gone: stored again), it waits for the
        # deletion to be finished, which the next purge or erase does first
        later = archive.stage(REUSER, envelope(8))
        archive.store_staged([later])
        with pytest.raises(CatalogError, match="being removed"):
            archive.ingester.submit_staged(later).result(timeout=30)
        assert finish_pending(archive) == 2
        again = archive.ingest(REUSER, envelope(9)).id
        assert archive.raw(again) == REUSER
        assert verify(archive).ok


def test_erasure_removes_the_sealed_blobs_of_an_encrypted_archive(tmp_path: Path) -> None:
    """With encryption on, blobs live under keyed names: erasure must still find and delete
    them, and keep the sealed attachment that kept mail shares."""
    keys = tmp_path / "etc" / "archive.keys"
    config = make_config(tmp_path / "home", f'encryption = "aes-256-gcm"\nkey_file = "{keys}"\n')
    init_keys(config)
    ids = populate(config)
    with Archive(config) as archive:
        before = len(list(archive.store.inner.keys()))  # type: ignore[attr-defined]
        outcome = remove(
            archive, [archive.get(ids["secret"])], why=ERASE, reason="request", who="cli:dpo"
        )
        assert outcome.blobs_deleted == 2  # the message blob and its own part
        assert len(list(archive.store.inner.keys())) == before - 2  # type: ignore[attr-defined]
        names = set(archive.store.keys())
        assert f"m/{sha(SECRET)}" not in names
        assert f"p/{sha(SECRET_PART)}" not in names
        assert f"p/{sha(SHARED_PART)}" in names
        assert archive.raw(ids["kept"]) == KEPT
    with Archive(config, readonly=True) as archive:
        report = verify(archive)
    assert report.ok, report.problems
    assert len(report.removed) == 1


def test_rewrap_never_writes_back_a_blob_erased_after_it_read_it(tmp_path: Path) -> None:
    """``keys rewrap`` reads a blob, seals it, and writes it later with its batch: a blob
    erased in between must stay erased, not come back sealed."""
    home = tmp_path / "home"
    ids = populate(make_config(home))  # plain blobs, from before encryption
    keys = tmp_path / "etc" / "archive.keys"
    config = make_config(home, f'encryption = "aes-256-gcm"\nkey_file = "{keys}"\n')
    init_keys(config)
    part = f"p/{sha(SECRET_PART)}"
    with Archive(config) as archive:
        store = archive.store
        assert isinstance(store, EncryptedStore)
        erased: list[int] = []

        def erase_once(blob: bytes) -> bool:
            # the part has just been read (and is about to be sealed): the erasure comes now
            if not erased:
                row = archive.get(ids["secret"])
                outcome = remove(archive, [row], why=ERASE, reason="request", who="w")
                erased.extend(r.id for r, _ in outcome.removed)
            return True

        report = rewrap(
            store,
            is_plain=erase_once,
            names=[part, f"m/{sha(SECRET)}", f"m/{sha(KEPT)}"],
            guard=archive.catalog.writing,
        )
        assert erased == [ids["secret"]]
        assert not store.exists(part)
        assert not store.exists(f"m/{sha(SECRET)}")
        assert store.stored_name(part) not in set(store.inner.keys())
        assert archive.raw(ids["kept"]) == KEPT  # the kept message is sealed as usual
        assert report.damaged == []
