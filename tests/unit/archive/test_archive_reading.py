"""The read model: one parse per message for its readers, attachments from their stored part.

Parses are counted at the stdlib's feedparser (``FeedParser.close`` ends every parse of a
message, whichever way ours goes about it), so the counts hold whatever the parsing does
inside.
"""

from __future__ import annotations

import base64
import quopri
import random
import threading
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from test_archive_skeleton import Tree, mime_trees
from tests.conftest import Parses

from postfix_archiver.archive import Archive
from postfix_archiver.archive.reading import ParseCache
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import NotFoundError
from postfix_archiver.message import (
    INLINE_IMAGE_TYPES,
    MAX_INLINE_IMAGE,
    MAX_INLINE_TOTAL,
    attachment_payload,
    leaf_parts,
    normalize_message_id,
    parse_message,
)

ENVELOPE = Envelope("alice@example.com", ("bob@example.com",))
BIG = random.Random(3).randbytes(20_000)  # above the 4 KB threshold: stored on its own
SMALL = b"tiny attachment"  # below it: stays in the skeleton
PNG = b"\x89PNG\r\n\x1a\n" + random.Random(5).randbytes(6000)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    return Parses(monkeypatch)


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def message_with(*parts: bytes) -> bytes:
    out = (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: parts\r\n"
        b"Message-ID: <parts@example.com>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="b1"\r\n\r\n'
    )
    for part in parts:
        out += b"--b1\r\n" + part + b"\r\n"
    return out + b"--b1--\r\n"


HTML = b'Content-Type: text/html; charset=utf-8\r\n\r\n<p>Logo: <img src="cid:Logo@Example"></p>'
IMAGE = (
    b"Content-Type: image/png\r\nContent-ID: <logo@example>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(PNG)
)


def b64_attachment(data: bytes, name: str) -> bytes:
    return (
        f'Content-Type: application/octet-stream; name="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
    ).encode() + b64(data)


def qp_attachment(data: bytes, name: str) -> bytes:
    return (
        f'Content-Type: text/plain; charset=latin-1; name="{name}"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
    ).encode() + quopri.encodestring(data).replace(b"\n", b"\r\n")


def old_attachment(archive: Archive, message: int, index: int) -> tuple[object, bytes]:
    """What a download returned before: the whole message rebuilt and parsed again."""
    return attachment_payload(archive.raw(message), index)


# -- one parse for the readers -----------------------------------------------------------


def test_read_gives_rows_bodies_and_inline_images_from_one_parse(
    archive: Archive, parses: Parses
) -> None:
    raw = message_with(HTML, IMAGE, b64_attachment(BIG, "big.bin"))
    message = archive.ingest(raw, ENVELOPE).id
    parses.count = 0
    read = archive.read(message)
    assert parses.count >= 1
    once = parses.count
    assert read.row.id == message
    assert [e.envelope.sender for e in read.envelopes] == ["alice@example.com"]
    assert [a.filename for a in read.attachments] == ["", "big.bin"]  # the image, the file
    assert read.parsed.text_html.startswith("<p>Logo")
    assert read.parsed.inline["logo@example"].data == PNG
    assert read.parsed.inline["logo@example"].content_type == "image/png"
    # the next readers of the same message (the iframe's body, show --json) parse nothing
    again = archive.read(message)
    assert parses.count == once
    assert again.parsed is read.parsed
    assert again.envelopes == read.envelopes


def test_rows_are_read_fresh_while_the_parse_is_kept(archive: Archive) -> None:
    raw = message_with(HTML)
    message = archive.ingest(raw, ENVELOPE).id
    assert len(archive.read(message).envelopes) == 1
    archive.ingest(raw, Envelope("carol@example.com", ("dave@example.com",)))
    assert len(archive.read(message).envelopes) == 2  # a new arrival of the same bytes


def test_read_of_an_unknown_id_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFoundError):
        archive.read(12345)


def _stdlib_inline(raw: bytes) -> dict[str, tuple[str, bytes]]:
    """The web's own collection of ``cid:`` images before the read model (a second full
    parse with the stdlib), as the reference."""
    found: dict[str, tuple[str, bytes]] = {}
    total = 0
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw)
        for part in leaf_parts(msg):
            cid = normalize_message_id(str(part.get("Content-ID") or ""))
            ctype = part.get_content_type()
            if not cid or ctype not in INLINE_IMAGE_TYPES:
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes) or len(payload) > MAX_INLINE_IMAGE:
                continue
            total += len(payload)
            if total > MAX_INLINE_TOTAL:
                break
            found[cid.lower()] = (ctype, payload)
    except Exception:
        return found
    return found


def test_inline_images_are_those_a_second_parse_found(
    cpython_messages: list[tuple[str, bytes]],
) -> None:
    raws = [raw for _, raw in cpython_messages]
    raws.append(message_with(HTML, IMAGE, IMAGE.replace(b"logo@", b"other@")))
    # too big alone; then enough to pass the total, after which nothing more is kept
    huge = b"Content-Type: image/gif\r\nContent-ID: <huge>\r\nContent-Transfer-Encoding: base64"
    raws.append(message_with(huge + b"\r\n\r\n" + b64(b"G" * (MAX_INLINE_IMAGE + 1))))
    many = [
        IMAGE.replace(b"image/png", b"image/jpeg").replace(b"logo@", f"n{i}@".encode())
        for i in range(3)
    ]
    big = b64(b"J" * (MAX_INLINE_IMAGE - 10))
    raws.append(message_with(*(m.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + big for m in many * 2)))
    assert any(_stdlib_inline(raw) for raw in raws)
    for raw in raws:
        got = {
            k: (v.content_type, v.data) for k, v in parse_message(raw, inline=True).inline.items()
        }
        assert got == _stdlib_inline(raw)
        assert parse_message(raw).inline == {}  # ingest keeps none


# -- attachments from their stored part ----------------------------------------------------


def test_a_stored_attachment_is_served_without_parsing_the_message(
    archive: Archive, parses: Parses
) -> None:
    text = ("Grüße, quoted-printable = and long lines " * 400).encode("latin-1")
    raw = message_with(
        HTML, b64_attachment(BIG, "big.bin"), qp_attachment(text, "notes.txt"),
        b64_attachment(SMALL, "small.bin"),
    )  # fmt: skip
    message = archive.ingest(raw, ENVELOPE).id
    rows = {a.filename: a for a in archive.attachments(message)}
    expected = {name: old_attachment(archive, message, a.index) for name, a in rows.items()}
    for name in ("big.bin", "notes.txt"):
        parses.count = 0
        meta, payload = archive.attachment(message, rows[name].index)
        assert parses.count == 0, name  # its part, decoded; no parse of the message
        assert (meta, payload) == expected[name]
    assert expected["big.bin"][1] == BIG
    assert expected["notes.txt"][1] == text
    # one the skeleton kept: the whole message, parsed, as before
    parses.count = 0
    assert archive.attachment(message, rows["small.bin"].index) == expected["small.bin"]
    assert parses.count == 1


def test_a_leaf_that_is_no_attachment_and_a_missing_index(archive: Archive) -> None:
    raw = message_with(HTML, b64_attachment(BIG, "big.bin"))
    message = archive.ingest(raw, ENVELOPE).id
    assert archive.attachment(message, 0) == old_attachment(archive, message, 0)  # the HTML
    with pytest.raises(NotFoundError, match="has no part 7"):
        archive.attachment(message, 7)


def test_a_damaged_part_is_an_integrity_error_not_other_bytes(archive: Archive) -> None:
    from postfix_archiver.errors import IntegrityError

    message = archive.ingest(message_with(b64_attachment(BIG, "big.bin")), ENVELOPE).id
    (row,) = archive.attachments(message)
    key = f"p/{row.sha256}"
    archive.store.put_many([(key, archive._compress(BIG[:-1] + b"!"))])
    with pytest.raises(IntegrityError, match="do not match their SHA-256"):
        archive.attachment(message, row.index)


def test_attachments_of_the_email_corpus_are_the_bytes_of_a_full_parse(
    tmp_path: Path, cpython_messages: list[tuple[str, bytes]]
) -> None:
    # a low threshold: most parts of these small messages are stored on their own
    config = parse_config(f'[archive]\nhome = "{tmp_path}"\nattachment_threshold = 256\n')
    checked = 0
    with Archive(config) as archive:
        for name, raw in cpython_messages:
            message = archive.ingest(raw, ENVELOPE).id
            for a in archive.attachments(message):
                assert archive.attachment(message, a.index) == attachment_payload(raw, a.index), (
                    name
                )
                checked += 1
    assert checked > 10


@pytest.fixture(scope="module")
def tree_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    home = tmp_path_factory.mktemp("reading-archive")
    with Archive(parse_config(f'[archive]\nhome = "{home}"\n')) as archive:
        yield archive


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=mime_trees())
def test_attachments_of_generated_trees_are_the_bytes_of_a_full_parse(
    tree_archive: Archive, tree: Tree
) -> None:
    message = tree_archive.ingest(tree.raw, ENVELOPE).id
    for a in tree_archive.attachments(message):
        assert tree_archive.attachment(message, a.index) == attachment_payload(tree.raw, a.index)


# -- the cache itself ------------------------------------------------------------------------


def test_parse_cache_keeps_the_last_few_within_its_bytes() -> None:
    cache = ParseCache(entries=2, max_bytes=1000)
    made: list[str] = []

    def parse(text: str) -> object:
        def run() -> object:
            made.append(text)
            return parse_message(text.encode())

        return run

    a = cache.get("a", parse("A" * 100))  # type: ignore[arg-type]
    cache.get("b", parse("B" * 100))  # type: ignore[arg-type]
    assert cache.get("a", parse("again")) is a  # type: ignore[arg-type]
    cache.get("c", parse("C" * 100))  # type: ignore[arg-type]  # drops b, the least recent
    cache.get("b", parse("B" * 100))  # type: ignore[arg-type]
    assert made == ["A" * 100, "B" * 100, "C" * 100, "B" * 100]
    # bigger than the whole budget: parsed every time, kept never, and nothing else dropped
    cache.get("huge", parse("H" * 2000))  # type: ignore[arg-type]
    cache.get("huge", parse("H" * 2000))  # type: ignore[arg-type]
    assert made[-2:] == ["H" * 2000] * 2
    cache.get("d", parse("D" * 600))  # type: ignore[arg-type]
    cache.get("e", parse("E" * 600))  # type: ignore[arg-type]  # d + e pass 1000: d goes
    made.clear()
    cache.get("e", parse("E"))  # type: ignore[arg-type]
    cache.get("d", parse("D"))  # type: ignore[arg-type]
    assert made == ["D"]


def test_concurrent_reads_of_one_message_agree(archive: Archive) -> None:
    raws = [message_with(HTML, b64_attachment(BIG + bytes([i]), f"{i}.bin")) for i in range(12)]
    ids = [archive.ingest(raw, ENVELOPE).id for raw in raws]
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                i = rng.randrange(len(ids))
                read = archive.read(ids[i])
                assert read.row.id == ids[i]
                assert read.attachments[0].filename == f"{i}.bin"
                assert read.parsed.attachments[0].filename == f"{i}.bin"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
