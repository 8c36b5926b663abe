"""Index entries made by an import from the parse it staged with (``archive.ingest_index``):
the very entries the indexer makes from the blobs, committed with the import, once per
message, and a crash between the message commit and the index commit leaves the messages
queued for the indexer."""

from __future__ import annotations

import base64
import io
import signal
import sqlite3
import zipfile
from pathlib import Path

import pytest
from test_archive_crash import (
    CHILD_PRELUDE,
    TIMEOUT,
    child,
    write_config,
    write_messages,
)
from tests.conftest import make_config

from postfix_archiver.archive import Archive
from postfix_archiver.archive.indexer import Made, entry_of, signature_of
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope

NOTES = b"minutes of the zqxplanning meeting\r\n" * 200  # cut out of the skeleton, extractable
SMALL = b"zqxsmallnote kept in the skeleton\r\n"  # under the threshold: stays in the skeleton


def env(n: int) -> Envelope:
    return Envelope("alice@example.com", ("bob@example.com",), queue_id=f"Q{n}", source="import")


def attached(n: int, *parts: tuple[str, str, bytes]) -> bytes:
    head = (
        f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: memo {n}\r\n"
        f"Message-ID: <{n}@example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain\r\n\r\nsee attached {n}\r\n"
    ).encode()
    out = head
    for name, ctype, data in parts:
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
        out += (
            f'--B\r\nContent-Type: {ctype}; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode() + encoded
    return out + b"--B--\r\n"


def a_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("zqxinner-budget.txt", "zqxzipped figures\n" * 100)
    return out.getvalue()


CJK = (
    "From: =?UTF-8?B?5bGx55Sw?= <yamada@example.jp>\r\nTo: bob@example.com\r\n"
    "Subject: =?UTF-8?B?5Lya6K2w44Gu6K2w5LqL6YyyIOadseS6rA==?=\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "明日の会議は東京で行います。请查收附件。회의록을 보내드립니다.\r\n"
).encode()

MALFORMED = [
    # no closing boundary, a part with broken base64, a header line without a colon
    b"From: x@example.com\r\nSubject: broken zqxbroken\r\nContent-Type: multipart/mixed; "
    b'boundary="Q"\r\nnot a header\r\n\r\n--Q\r\nContent-Type: text/plain\r\n\r\nbody\r\n'
    b'--Q\r\nContent-Type: application/pdf; name="a.pdf"\r\nContent-Transfer-Encoding: base64'
    b"\r\n\r\n@@@not base64@@@\r\n",
    # 8-bit bytes in headers and body, no charset; a bare LF here and there
    b"From: \xe9t\xe9 <ete@example.com>\nSubject: caf\xe9 zqxeight\r\n\r\nna\xefve body\n",
    # a nested message/rfc822 with an unterminated multipart inside
    b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.com\r\n"
    b'Content-Type: multipart/alternative; boundary="Z"\r\n\r\n--Z\r\nContent-Type: text/html'
    b"\r\n\r\n<p>zqxinner html</p>\r\n",
    b"",  # nothing at all
]


def corpus(cpython: list[tuple[str, bytes]]) -> list[bytes]:
    return [
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: plain zqxplain\r\n\r\nhello\r\n",
        attached(1, ("notes.txt", "text/plain", NOTES), ("small.txt", "text/plain", SMALL)),
        attached(2, ("budget.zip", "application/zip", a_zip())),
        attached(3, ("photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 30)),
        CJK,
        *MALFORMED,
        *(raw for _, raw in cpython),
    ]


def indexer_made(config: Config, raw: bytes) -> Made:
    """What the indexer makes of ``raw``: archived on its own, read back and parsed again."""
    with Archive(config) as other:
        sha = other.ingest(raw, env(0)).sha256
        made = entry_of(other, sha)
    assert made is not None
    return made


def test_entries_made_at_ingest_are_the_indexers(
    tmp_path: Path, cpython_messages: list[tuple[str, bytes]]
) -> None:
    messages = corpus(cpython_messages)
    with Archive(make_config(tmp_path / "ingest")) as archive:
        staged = archive._prepare_many([(raw, env(i)) for i, raw in enumerate(messages)])
        seen: set[str] = set()  # extracted for an earlier message of the chunk: not again
        for i, (raw, s) in enumerate(zip(messages, staged, strict=True)):
            assert s.made is not None, i
            # a fresh archive each: each extracts its attachments itself
            theirs = indexer_made(make_config(tmp_path / f"indexer{i}"), raw)
            assert s.made.entry == theirs.entry, i
            assert s.made.extracts == [x for x in theirs.extracts if x.sha256 not in seen], i
            # the texts extracted are stored (cached) before the entry goes to be committed
            for sha, text, names in theirs.texts:
                assert archive.stored_text(sha) == (text, tuple(names)), i
            seen.update(x.sha256 for x in theirs.extracts)
    # the cases meant are in there: attachment text, names inside a zip, CJK as bigrams
    assert "zqxplanning" in staged[1].made.entry.attachments  # type: ignore[union-attr]
    assert "zqxsmallnote" in staged[1].made.entry.attachments  # type: ignore[union-attr]
    assert "zqxinner-budget.txt" in staged[2].made.entry.names  # type: ignore[union-attr]
    assert "会議" in staged[4].made.entry.subject  # type: ignore[union-attr]


@pytest.mark.parametrize("processes", [1, 2])
def test_an_import_is_searchable_without_the_indexer(config: Config, processes: int) -> None:
    messages = [attached(n, ("notes.txt", "text/plain", NOTES)) for n in range(40)] + [CJK]
    items = [(raw, env(i)) for i, raw in enumerate(messages)]
    with Archive(config) as archive:
        results = list(archive.ingest_many(items, processes=processes, window=8))
        assert archive.catalog.index_status().queued == 0
        assert archive.search("zqxplanning").total == 40
        assert archive.search("memo 7").total >= 1
        assert archive.search("会議").total == 1
        ids = [r.id for r in results]
        assert set(archive.catalog.index_signatures(ids).values()) == {signature_of(archive)}
        assert archive.catalog.index_check() == ([], [])
        # the attachment was extracted and its text cached, as the indexer does
        [att] = archive.attachments(ids[0])
        assert archive.extractions([att])[att.sha256].status == "ok"
        assert archive.stored_text(att.sha256) is not None
        assert archive.index_pending() == 0


def test_a_long_body_is_noted_once_and_cut_as_the_indexer_cuts_it(tmp_path: Path) -> None:
    extra = "index_limit = 4096\n"
    raw = b"From: a@example.com\r\nSubject: long\r\n\r\n" + b"zqxlong words " * 1000
    with Archive(make_config(tmp_path / "a", extra)) as archive:
        [result] = archive.ingest_many([(raw, env(1))])
        assert archive.catalog.index_status().queued == 0
        [row] = archive.search("zqxlong").results
        assert [d for d in archive.get(result.id).defects if "longer" in d] == [
            "body text longer than 4096 characters: only the start is indexed"
        ]
        made = entry_of(archive, row.sha256)
    assert made is not None
    with Archive(make_config(tmp_path / "b", extra)) as other:
        [staged] = other._prepare_many([(raw, env(1))])
    assert staged.made is not None
    assert staged.made.entry == made.entry


def test_the_same_bytes_again_are_indexed_once(config: Config) -> None:
    one = b"From: a@example.com\r\nSubject: twice zqxtwice\r\n\r\nsame bytes\r\n"
    other = b"From: a@example.com\r\nSubject: other\r\n\r\nzqxother\r\n"
    with Archive(config) as archive:
        # twice in one chunk, and in the next chunks: staged as new each time, before any
        # of them commits; then once more in a later import, staged as known bytes
        items = [(one, env(1)), (one, env(2)), (other, env(3))] * 6
        results = list(archive.ingest_many(items, window=4))
        results += list(archive.ingest_many([(one, env(99))]))
        assert sum(r.new_message for r in results) == 2
        assert archive.catalog.index_status().queued == 0
        assert archive.search("zqxtwice").total == 1
        with sqlite3.connect(config.archive.home / "catalog.sqlite") as conn:
            assert conn.execute("SELECT count(*) FROM fts_docsize").fetchone() == (2,)
        assert archive.catalog.index_check() == ([], [])


# the process dies as the committer indexes what it just committed: the messages are in the
# catalog, their entries are not
INDEX_THEN_DIE = """
from postfix_archiver.catalog.sqlite import SqliteCatalog
SqliteCatalog.index = die
with Archive(load_config(config_path)) as archive:
    items = ((raw, envelope(i)) for i, raw in enumerate(messages))
    for result in archive.ingest_many(items):
        print(result.id, flush=True)
print("survived")
"""


def test_a_crash_between_message_and_index_commit_leaves_them_queued(tmp_path: Path) -> None:
    config_path, config = write_config(tmp_path / "data")
    messages = [f"Subject: crash {n}\r\n\r\nzqxcrash {n}\r\n".encode() for n in range(20)]
    messages_path = tmp_path / "messages.json"
    write_messages(messages_path, messages)

    proc = child(CHILD_PRELUDE + INDEX_THEN_DIE, config_path, messages_path)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, err
    assert "survived" not in out

    with Archive(config) as archive:
        committed = archive.stats().messages
        assert committed > 0
        # every committed message is queued, none indexed, none lost
        assert archive.catalog.index_status().queued == committed
        assert archive.search("zqxcrash").total == 0
        assert archive.catalog.index_check() == ([], [])
        # the indexer (or the next import's end) finishes them
        assert archive.index_pending() == committed
        assert archive.search("zqxcrash").total == committed
        assert archive.catalog.index_check() == ([], [])
