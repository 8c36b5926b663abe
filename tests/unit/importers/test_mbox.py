"""The mbox importer: splitting, mboxrd ``>From`` unquoting, line endings, envelopes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.errors import SourceError
from postfix_archiver.importers import open_source
from postfix_archiver.importers.mbox import MboxSource, parse_from_line, split_mbox


def _read(path: Path) -> list[bytes]:
    return [item.raw for item in MboxSource(path)]


def _write(tmp_path: Path, data: bytes, name: str = "box.mbox") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


MSG_A = b"From: a@example.com\nSubject: one\n\nfirst body\n"
MSG_B = b"From: b@example.com\nSubject: two\n\nsecond body\n"


def test_two_messages_with_separator_lines(tmp_path: Path) -> None:
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n" + MSG_A + b"\n"
        b"From b@example.com Tue Jan  2 11:30:00 2024\n" + MSG_B + b"\n",
    )
    assert _read(box) == [MSG_A, MSG_B]


def test_mboxrd_from_quoting_is_undone_one_level(tmp_path: Path) -> None:
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n"
        b"Subject: quoting\n\n"
        b">From the start of a line\n"
        b">>From a quoted quote\n"
        b">>>From three\n"
        b"> From is not quoting\n"
        b"text >From in the middle\n"
        b">Fromage\n"
        b"\n",
    )
    assert _read(box) == [
        b"Subject: quoting\n\n"
        b"From the start of a line\n"
        b">From a quoted quote\n"
        b">>From three\n"
        b"> From is not quoting\n"
        b"text >From in the middle\n"
        b">Fromage\n"
    ]


def test_from_line_inside_a_paragraph_does_not_split(tmp_path: Path) -> None:
    body = b"Subject: s\n\nI said\nFrom here on we differ.\nFrom me, with love\n"
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n"
        + body
        + b"\n"
        + (b"From b@example.com Mon Jan  1 10:00:00 2024\n" + MSG_B),
    )
    assert _read(box) == [body, MSG_B]


def test_quoted_from_after_a_blank_line_does_not_split(tmp_path: Path) -> None:
    body = b"Subject: s\n\nparagraph\n\n>From the top\n"
    box = _write(tmp_path, b"From a@example.com Mon Jan  1 10:00:00 2024\n" + body + b"\n")
    assert _read(box) == [b"Subject: s\n\nparagraph\n\nFrom the top\n"]


def test_crlf_messages_keep_their_line_endings(tmp_path: Path) -> None:
    a = b"From: a@example.com\r\nSubject: one\r\n\r\nbody\r\n>From x\r\n"
    b = b"From: b@example.com\r\nSubject: two\r\n\r\nbody two\r\n"
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\r\n"
        + a.replace(b"\r\n>From x", b"\r\n>>From x")
        + b"\r\n"
        + b"From b@example.com Mon Jan  1 10:00:00 2024\r\n"
        + b
        + b"\r\n",
    )
    assert _read(box) == [a, b]


def test_last_message_without_trailing_blank_line(tmp_path: Path) -> None:
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n" + MSG_A + b"\n"
        b"From b@example.com Mon Jan  1 10:00:00 2024\n" + MSG_B,
    )
    assert _read(box) == [MSG_A, MSG_B]


def test_last_message_without_final_newline(tmp_path: Path) -> None:
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n" + MSG_A + b"\n"
        b"From b@example.com Mon Jan  1 10:00:00 2024\nSubject: two\n\nno newline",
    )
    assert _read(box) == [MSG_A, b"Subject: two\n\nno newline"]


def test_a_message_ending_in_a_blank_line_keeps_it(tmp_path: Path) -> None:
    msg = b"Subject: s\n\nbody\n\n"
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n" + msg + b"\n"
        b"From b@example.com Mon Jan  1 10:00:00 2024\n" + MSG_B + b"\n",
    )
    assert _read(box) == [msg, MSG_B]


def test_progress_adds_up_to_the_file_size(tmp_path: Path) -> None:
    box = _write(
        tmp_path,
        b"From a@example.com Mon Jan  1 10:00:00 2024\n" + MSG_A + b"\n"
        b"From b@example.com Mon Jan  1 10:00:00 2024\r\n" + MSG_B,
    )
    source = MboxSource(box)
    assert source.unit == "bytes"
    assert source.total == box.stat().st_size
    assert sum(item.advance for item in source) == source.total


def test_from_line_sender_and_time_make_the_envelope(tmp_path: Path) -> None:
    msg = (
        b"Return-Path: <ignored@example.com>\n"
        b"Delivered-To: Bob@Example.org\n"
        b"X-Original-To: bcc-only@example.org\n"
        b"From: a@example.com\nDate: Fri, 05 Jan 2024 08:00:00 +0000\nSubject: s\n\nbody\n"
    )
    box = _write(
        tmp_path,
        b"From bounce@lists.example.com Mon Jan  1 10:00:00 2024\n" + msg + b"\n"
        b"From MAILER-DAEMON Tue Jan  2 11:30:00 2024\n" + MSG_B,
    )
    first, second = list(MboxSource(box))
    assert first.envelope.sender == "bounce@lists.example.com"
    assert first.envelope.recipients == ("bcc-only@example.org", "Bob@Example.org")
    assert first.envelope.received == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert first.envelope.source == "import"
    assert second.envelope.sender == ""  # MAILER-DAEMON is the null sender
    assert second.envelope.received == datetime(2024, 1, 2, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "sender", "when"),
    [
        (b"From a@b Mon Jan  1 10:00:00 2024\n", "a@b", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        (b"From a@b Mon Jan 01 10:00:00 2024\r\n", "a@b", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        (
            b"From a@b Mon Jan  1 10:00:00 2024 remote from x\n",
            "a@b",
            datetime(2024, 1, 1, 10, tzinfo=UTC),
        ),
        (
            b"From MAILER-DAEMON Mon Jan  1 10:00:00 2024\n",
            "",
            datetime(2024, 1, 1, 10, tzinfo=UTC),
        ),
        (b"From a@b garbage\n", "a@b", None),
        (b"Subject: not a from line\n", "", None),
    ],
)
def test_parse_from_line(line: bytes, sender: str, when: datetime | None) -> None:
    assert parse_from_line(line) == (sender, when)


def test_split_rejects_text_before_the_first_from_line() -> None:
    with pytest.raises(ValueError, match="does not start"):
        list(split_mbox(io.BytesIO(b"Subject: x\nFrom a b\n")))


def test_not_an_mbox_is_a_source_error(tmp_path: Path) -> None:
    box = _write(tmp_path, b"Subject: x\n\nFrom a b\n")
    with pytest.raises(SourceError, match="not an mbox file") as info:
        list(MboxSource(box))
    assert str(box) in str(info.value)
    assert "\n" not in str(info.value)


def test_open_source_picks_mbox_for_a_from_line(tmp_path: Path) -> None:
    box = _write(tmp_path, b"From a@b Mon Jan  1 10:00:00 2024\n" + MSG_A, name="saved.eml")
    source = open_source(str(box))
    assert isinstance(source, MboxSource)
    assert [i.raw for i in source] == [MSG_A]


def test_import_twice_adds_nothing(archive: Archive, tmp_path: Path) -> None:
    messages = [
        b"From: n%d@example.com\nSubject: m %d\nDelivered-To: x@example.org\n\nbody %d\nFrom me\n"
        % (i, i, i)
        for i in range(25)
    ]
    data = b"".join(
        b"From n%d@example.com Mon Jan  1 10:%02d:00 2024\n" % (i, i) + m + b"\n"
        for i, m in enumerate(messages)
    )
    box = _write(tmp_path, data)

    def run() -> list[tuple[bool, bool]]:
        items = ((item.raw, item.envelope) for item in open_source(str(box)))
        return [(r.new_message, r.new_envelope) for r in archive.ingest_many(items)]

    assert run() == [(True, True)] * 25
    assert run() == [(False, False)] * 25
    stats = archive.stats()
    assert (stats.messages, stats.envelopes) == (25, 25)
    found = archive.search("", limit=100).results
    assert sorted(archive.raw(r.id) for r in found) == sorted(messages)
