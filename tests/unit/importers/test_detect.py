"""``open_source``: Maildir (with Maildir++ folders), single .eml, folders of .eml, bad paths."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.errors import SourceError
from postfix_archiver.importers import ImportSource, open_source
from postfix_archiver.importers.eml import EmlSource
from postfix_archiver.importers.maildir import MaildirSource
from postfix_archiver.importers.mbox import MboxSource


def msg(n: int, eol: bytes = b"\n") -> bytes:
    text = (
        b"Return-Path: <sender%d@example.com>\n"
        b"Delivered-To: rcpt%d@example.org\n"
        b"From: Sender %d <sender%d@example.com>\n"
        b"To: rcpt%d@example.org\n"
        b"Subject: message %d\n"
        b"Date: Mon, 01 Jan 2024 10:%02d:00 +0000\n"
        b"\n"
        b"body %d\nFrom the body\n" % (n, n, n, n, n, n, n % 60, n)
    )
    return text.replace(b"\n", eol)


def raws(source: ImportSource) -> list[bytes]:
    return [item.raw for item in source]


def ingest(archive: Archive, source: ImportSource) -> list[tuple[bool, bool]]:
    items = ((item.raw, item.envelope) for item in source)
    return [(r.new_message, r.new_envelope) for r in archive.ingest_many(items)]


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "Maildir"
    for folder in (root, root / ".Sent", root / ".Archive.2023"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    (root / "cur" / "1700000000.M1P1.host:2,S").write_bytes(msg(1))
    (root / "cur" / "1700000001.M2P1.host:2,RS").write_bytes(msg(2, b"\r\n"))
    (root / "new" / "1700000002.M3P1.host").write_bytes(msg(3))
    (root / "tmp" / "1700000003.M4P1.host").write_bytes(msg(4))  # being delivered: skipped
    (root / "cur" / ".hidden").write_bytes(msg(5))  # not a message file
    (root / ".Sent" / "cur" / "1700000004.M5P1.host:2,S").write_bytes(msg(6))
    (root / ".Archive.2023" / "new" / "1700000005.M6P1.host").write_bytes(msg(7))
    (root / ".notafolder").mkdir()  # no cur/ or new/: not a Maildir++ folder
    (root / ".notafolder" / "x").write_bytes(msg(8))
    (root / "dovecot-uidlist").write_bytes(b"3 V1 N4\n")
    return root


def test_maildir_reads_cur_new_and_maildirpp_folders(maildir: Path) -> None:
    source = open_source(str(maildir))
    assert isinstance(source, MaildirSource)
    assert source.unit == "messages"
    assert source.total == 5
    assert sorted(raws(source)) == sorted([msg(1), msg(2, b"\r\n"), msg(3), msg(6), msg(7)])
    assert "5 messages" in source.description


def test_maildir_with_only_new(tmp_path: Path) -> None:
    (tmp_path / "md" / "new").mkdir(parents=True)
    (tmp_path / "md" / "new" / "m1").write_bytes(msg(1))
    assert raws(open_source(str(tmp_path / "md"))) == [msg(1)]


def test_maildir_file_moved_while_importing_is_skipped(maildir: Path) -> None:
    source = open_source(str(maildir))
    (maildir / "new" / "1700000002.M3P1.host").unlink()  # a client moved it to cur/
    assert len(raws(source)) == 4


def test_maildir_import_twice_adds_nothing(archive: Archive, maildir: Path) -> None:
    assert ingest(archive, open_source(str(maildir))) == [(True, True)] * 5
    assert ingest(archive, open_source(str(maildir))) == [(False, False)] * 5
    assert archive.stats().envelopes == 5
    (row,) = archive.search("to:rcpt6@example.org").results
    (envelope,) = archive.view(row.id).envelopes
    assert envelope.envelope.sender == "sender6@example.com"  # from Return-Path
    assert envelope.envelope.recipients == ("rcpt6@example.org",)  # from Delivered-To


def test_single_eml_file(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(msg(1, b"\r\n"))
    source = open_source(str(path))
    assert isinstance(source, EmlSource)
    assert (source.total, source.unit) == (1, "messages")
    assert raws(source) == [msg(1, b"\r\n")]


def test_a_message_file_need_not_be_named_eml(tmp_path: Path) -> None:
    path = tmp_path / "message.txt"
    path.write_bytes(msg(1))
    assert raws(open_source(str(path))) == [msg(1)]


def test_folder_of_eml_files_nested(tmp_path: Path) -> None:
    root = tmp_path / "export"
    (root / "2023" / "q4").mkdir(parents=True)
    (root / "2024").mkdir()
    (root / "a.eml").write_bytes(msg(1))
    (root / "2023" / "q4" / "b.EML").write_bytes(msg(2))
    (root / "2024" / "c.eml").write_bytes(msg(3, b"\r\n"))
    (root / "2024" / "notes.txt").write_bytes(b"not a message\n")
    (root / "2024" / "d.eml.part").write_bytes(msg(4))
    source = open_source(str(root))
    assert isinstance(source, EmlSource)
    assert source.total == 3
    assert sorted(raws(source)) == sorted([msg(1), msg(2), msg(3, b"\r\n")])


def test_eml_folder_import_twice_adds_nothing(archive: Archive, tmp_path: Path) -> None:
    for i in range(4):
        (tmp_path / f"{i}.eml").write_bytes(msg(i))
    assert ingest(archive, open_source(str(tmp_path))) == [(True, True)] * 4
    assert ingest(archive, open_source(str(tmp_path))) == [(False, False)] * 4


def test_mbox_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    path.write_bytes(b"From a@b Mon Jan  1 10:00:00 2024\n" + msg(1))
    assert isinstance(open_source(str(path)), MboxSource)


# --- bad paths: one clear line naming the path ---------------------------------------------


def _one_line_error(spec: str, *fragments: str) -> None:
    with pytest.raises(SourceError) as info:
        list(open_source(spec))
    text = str(info.value)
    assert "\n" not in text
    assert spec in text
    for fragment in fragments:
        assert fragment in text


def test_missing_path(tmp_path: Path) -> None:
    _one_line_error(str(tmp_path / "nope.mbox"), "no such file or directory")


def test_missing_parent(tmp_path: Path) -> None:
    _one_line_error(str(tmp_path / "nope" / "inbox"), "no such file or directory")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "inbox.mbox").mkdir()  # a directory where a file was meant
    _one_line_error(str(tmp_path / "inbox.mbox"), "no messages found")


def test_directory_without_messages(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_bytes(b"hello\n")
    _one_line_error(str(tmp_path), "no messages found")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    _one_line_error(str(path), "not an mbox file or a message")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mbox"
    path.write_bytes(b"")
    _one_line_error(str(path), "not an mbox file or a message")


def test_text_that_is_not_mail(tmp_path: Path) -> None:
    path = tmp_path / "readme"
    path.write_bytes(b"Hello,\nthis is not mail.\n")
    _one_line_error(str(path), "not an mbox file or a message")


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "inbox.fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            open_source(str(fifo))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # blocked opening the FIFO: give it a writer so it can finish
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(5)
        pytest.fail("open_source blocked on a FIFO instead of refusing it")
    (error,) = outcome
    assert isinstance(error, SourceError)
    assert str(fifo) in str(error)
    assert "\n" not in str(error)


def test_devices_are_refused() -> None:
    _one_line_error("/dev/null", "not a regular file")
