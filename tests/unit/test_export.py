"""Export as mbox (mboxrd), Maildir and a zip of .eml files: byte for byte, all or nothing."""

from __future__ import annotations

import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import IntegrityError, SourceError
from postfix_archiver.export import FORMATS, export, mbox_entry, mbox_from_line
from postfix_archiver.importers import open_source
from postfix_archiver.importers.mbox import MboxSource

ATTACHMENT = b"%PDF-1.4\n" + bytes(range(256)) * 40


def _attachment_message() -> bytes:
    import base64

    b64 = base64.encodebytes(ATTACHMENT)
    return (
        b"From: att@example.com\nTo: x@example.org\nSubject: with attachment\n"
        b"Date: Wed, 03 Jan 2024 09:00:00 +0000\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b1"\n\n'
        b"--b1\nContent-Type: text/plain\n\nsee attached\nFrom the desk of att\n"
        b'--b1\nContent-Type: application/pdf; name="a.pdf"\n'
        b'Content-Disposition: attachment; filename="a.pdf"\n'
        b"Content-Transfer-Encoding: base64\n\n" + b64 + b"--b1--\n"
    )


# messages that end in a newline, with every From_-quoting trap in their bodies
MESSAGES = [
    b"From: a@example.com\nSubject: plain\nDate: Mon, 01 Jan 2024 10:00:00 +0000\n\nhello\n",
    b"From: b@example.com\nSubject: from lines\nDate: Mon, 01 Jan 2024 11:00:00 +0000\n\n"
    b"From the start\n\nFrom after a blank line\n>From quoted once\n>>From quoted twice\n"
    b"> From not quoting\nFromage\n",
    b"From: c@example.com\r\nSubject: crlf\r\nDate: Mon, 01 Jan 2024 12:00:00 +0000\r\n\r\n"
    b"line\r\n\r\nFrom x\r\n>From y\r\n",
    b"From: d@example.com\nSubject: trailing blank\nDate: Tue, 02 Jan 2024 10:00:00 +0000\n\n"
    b"body\n\n",
    b"From: e@example.com\nSubject: ends with from\nDate: Tue, 02 Jan 2024 11:00:00 +0000\n\n"
    b"last line is\n\nFrom \n",
    _attachment_message(),
]


def _ingest(archive: Archive, messages: list[bytes], sender: str = "env@example.com") -> list[int]:
    ids = []
    for i, raw in enumerate(messages):
        env = Envelope(sender=sender, recipients=("x@example.org",), queue_id=f"Q{i}")
        ids.append(archive.ingest(raw, env).id)
    return ids


def _export(
    archive: Archive, fmt: str, target: Path, query: str = "", *, force: bool = False
) -> int:
    return export(archive, archive.iter_search(query), fmt, target, force=force)


def _dir_listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# --- mbox ----------------------------------------------------------------------------------


def test_mbox_round_trip_is_byte_identical(archive: Archive, tmp_path: Path) -> None:
    _ingest(archive, MESSAGES)
    target = tmp_path / "out.mbox"
    assert _export(archive, "mbox", target) == len(MESSAGES)
    back = [item.raw for item in MboxSource(target)]
    assert back == MESSAGES  # oldest first, as the dates of MESSAGES go
    assert [item.raw for item in open_source(str(target))] == MESSAGES


def test_mbox_quotes_every_from_line_mboxrd(archive: Archive, tmp_path: Path) -> None:
    _ingest(archive, MESSAGES[1:2])
    target = tmp_path / "out.mbox"
    _export(archive, "mbox", target)
    data = target.read_bytes()
    lines = data.split(b"\n")
    assert lines[0].startswith(b"From env@example.com Mon Jan 01 11:00:00 2024")
    assert sum(line.startswith(b"From ") for line in lines) == 1  # only the From_ line
    assert b"\n>From the start\n" in data
    assert b"\n>From after a blank line\n" in data
    assert b"\n>>From quoted once\n" in data
    assert b"\n>>>From quoted twice\n" in data
    assert b"\n> From not quoting\n" in data
    assert b"\nFromage\n" in data
    assert data.endswith(b"Fromage\n\n")


def test_mbox_message_without_final_newline_gets_one(archive: Archive, tmp_path: Path) -> None:
    raw = b"From: a@example.com\nSubject: no newline\n\nlast"
    _ingest(archive, [raw, MESSAGES[0]])
    target = tmp_path / "out.mbox"
    _export(archive, "mbox", target)
    assert sorted(item.raw for item in MboxSource(target)) == sorted([raw + b"\n", MESSAGES[0]])


def test_mbox_from_line() -> None:
    when = datetime(2024, 2, 29, 23, 5, 9, tzinfo=UTC)
    assert mbox_from_line("a@b", when) == b"From a@b Thu Feb 29 23:05:09 2024\n"
    assert mbox_from_line("", when).startswith(b"From MAILER-DAEMON ")
    assert mbox_from_line("a b@c", when).startswith(b"From MAILER-DAEMON ")
    assert mbox_entry(b"Subject: x\n\nFrom y", "a@b", when).endswith(b"\n\n>From y\n\n")


def test_mbox_sender_falls_back_to_from_header(archive: Archive, tmp_path: Path) -> None:
    _ingest(archive, [b"From: Someone <some@example.com>\nSubject: s\n\nx\n"], sender="")
    target = tmp_path / "out.mbox"
    _export(archive, "mbox", target)
    assert target.read_bytes().startswith(b"From some@example.com ")


# --- maildir and eml-zip -------------------------------------------------------------------


def test_maildir_files_in_new_are_byte_identical(archive: Archive, tmp_path: Path) -> None:
    ids = _ingest(archive, MESSAGES)
    target = tmp_path / "Maildir"
    assert _export(archive, "maildir", target) == len(MESSAGES)
    assert _dir_listing(target) == ["cur", "new", "tmp"]
    assert not list((target / "cur").iterdir())
    assert not list((target / "tmp").iterdir())
    files = sorted((target / "new").iterdir())
    assert len(files) == len(MESSAGES)
    assert sorted(f.read_bytes() for f in files) == sorted(MESSAGES)
    for f in files:
        ident = int(f.name.split("Q")[1].split(".")[0])
        row = archive.get(ident)
        assert f.read_bytes() == archive.raw(ident)
        assert int(f.stat().st_mtime) == int(row.date.timestamp())
    assert {int(f.name.split("Q")[1].split(".")[0]) for f in files} == set(ids)
    assert sorted(i.raw for i in open_source(str(target))) == sorted(MESSAGES)


def test_eml_zip_entries_are_byte_identical(archive: Archive, tmp_path: Path) -> None:
    old = b"From: old@example.com\nSubject: 1970\nDate: Thu, 01 Jan 1970 00:00:10 +0000\n\nold\n"
    ids = _ingest(archive, [*MESSAGES, old])
    target = tmp_path / "out.zip"
    assert _export(archive, "eml-zip", target) == len(MESSAGES) + 1
    with zipfile.ZipFile(target) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert sorted(names) == sorted(f"{i:08d}.eml" for i in ids)
        for ident in ids:
            assert zf.read(f"{ident:08d}.eml") == archive.raw(ident)
        assert zf.getinfo(f"{ids[-1]:08d}.eml").date_time == (1980, 1, 1, 0, 0, 0)
        assert zf.getinfo(f"{ids[0]:08d}.eml").date_time == (2024, 1, 1, 10, 0, 0)


def test_export_of_a_query_writes_only_its_matches(archive: Archive, tmp_path: Path) -> None:
    _ingest(archive, MESSAGES)
    target = tmp_path / "out.zip"
    assert _export(archive, "eml-zip", target, "has:attachment") == 1
    with zipfile.ZipFile(target) as zf:
        (name,) = zf.namelist()
        assert zf.read(name) == _attachment_message()


def test_progress_is_reported_per_message(archive: Archive, tmp_path: Path) -> None:
    _ingest(archive, MESSAGES)
    seen: list[int] = []
    export(archive, archive.iter_search(""), "mbox", tmp_path / "o", progress=seen.append)
    assert seen == [1] * len(MESSAGES)


def test_empty_export(archive: Archive, tmp_path: Path) -> None:
    assert _export(archive, "mbox", tmp_path / "empty.mbox") == 0
    assert (tmp_path / "empty.mbox").read_bytes() == b""


# --- existing targets, bad targets, failures midway ----------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_existing_target_needs_force(archive: Archive, tmp_path: Path, fmt: str) -> None:
    _ingest(archive, MESSAGES[:2])
    target = tmp_path / "out"
    if fmt == "maildir":
        target.mkdir()
        (target / "keep").write_bytes(b"old")
    else:
        target.write_bytes(b"old")
    before = _dir_listing(tmp_path)
    with pytest.raises(SourceError, match="already exists") as info:
        _export(archive, fmt, target)
    assert "--force" in str(info.value)
    assert _dir_listing(tmp_path) == before
    assert (target / "keep" if fmt == "maildir" else target).read_bytes() == b"old"

    assert _export(archive, fmt, target, force=True) == 2
    assert _dir_listing(tmp_path) == before
    if fmt == "maildir":
        assert _dir_listing(target) == ["cur", "new", "tmp"]
    else:
        assert target.read_bytes() != b"old"


def test_unknown_format(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown export format"):
        _export(archive, "pst", tmp_path / "x")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_missing_parent_directory(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such directory"):
        _export(archive, "mbox", tmp_path / "missing" / "out.mbox")


def _break_one_blob(archive: Archive, ids: list[int]) -> None:
    victim = archive.get(ids[len(ids) // 2])
    archive.store.delete(f"m/{victim.sha256}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_midway_leaves_nothing(archive: Archive, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    ids = _ingest(archive, MESSAGES)
    _break_one_blob(archive, ids)
    target = out / "result"
    with pytest.raises(IntegrityError, match="missing"):
        _export(archive, fmt, target)
    assert list(out.iterdir()) == []  # no target, no temporary files


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_midway_keeps_the_old_target(archive: Archive, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    ids = _ingest(archive, MESSAGES)
    target = out / "result"
    _export(archive, fmt, target)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _break_one_blob(archive, ids)
    with pytest.raises(IntegrityError):
        _export(archive, fmt, target, force=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_failure_midway_of_a_large_export(archive: Archive, tmp_path: Path) -> None:
    raws = [b"From: n@example.com\nSubject: %d\n\nbody %d\n" % (i, i) for i in range(300)]
    envelope = Envelope(sender="env@example.com", recipients=("x@example.org",))
    ids = [r.id for r in archive.ingest_many((raw, envelope) for raw in raws)]
    archive.store.delete(f"m/{archive.get(ids[250]).sha256}")
    out = tmp_path / "exports"
    out.mkdir()
    with pytest.raises(IntegrityError):
        _export(archive, "mbox", out / "big.mbox")
    assert os.listdir(out) == []
