"""The ingest path and the read side: byte-exact storage, dedup, envelopes, read checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.archive import Archive, Outcome, verify
from postfix_archiver.config import Config, parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import IntegrityError, NotFoundError

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def env(
    sender: str = "alice@example.com",
    recipients: tuple[str, ...] = ("bob@example.com",),
    queue_id: str | None = "4ABC123",
    received: datetime = T0,
    **extra: str,
) -> Envelope:
    return Envelope(sender, recipients, queue_id=queue_id, received=received, **extra)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_root(archive: Archive) -> Path:
    return Path(archive.config.archive.store_url.removeprefix("file://"))


def overwrite_blob(archive: Archive, key: str, stored: bytes) -> None:
    """Replace a blob's stored bytes behind the archive's back, wherever the store keeps it."""
    assert archive.store.exists(key)
    archive.store.put(key, stored)


def rewrite_blob(archive: Archive, key: str, change: int = 1) -> None:
    """Decompress the stored blob, flip one byte ``change`` positions from its end, recompress."""
    data = bytearray(zstandard.ZstdDecompressor().decompress(archive.store.get(key)))
    data[-change] ^= 0x01
    overwrite_blob(archive, key, zstandard.ZstdCompressor().compress(bytes(data)))


def b64(data: bytes, eol: bytes = b"\r\n") -> bytes:
    encoded = base64.b64encode(data)
    return eol.join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def with_attachment(data: bytes, *, subject: str = "report", eol: bytes = b"\r\n") -> bytes:
    return eol.join(
        [
            b"From: Alice <alice@example.com>",
            b"To: Bob <bob@example.com>",
            b"Subject: " + subject.encode(),
            b"Message-ID: <" + sha(subject.encode())[:16].encode() + b"@example.com>",
            b"MIME-Version: 1.0",
            b"Content-Type: multipart/mixed; boundary=XYZ",
            b"",
            b"--XYZ",
            b"Content-Type: text/plain",
            b"",
            b"Please find the report attached.",
            b"--XYZ",
            b'Content-Type: application/octet-stream; name="report.bin"',
            b"Content-Transfer-Encoding: base64",
            b"",
            b64(data, eol),
            b"--XYZ--",
            b"",
        ]
    )


SIMPLE = (
    b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
    b"Subject: lunch\r\nMessage-ID: <lunch@example.com>\r\n"
    b"Date: Fri, 01 Mar 2024 10:00:00 +0100\r\n\r\nAt noon? The body text.\r\n"
)


# -- malformed input ---------------------------------------------------------------------

rng = random.Random(20240301)
BIG_BROKEN_B64 = b"\n".join(
    base64.b64encode(rng.randbytes(57))[: rng.randrange(10, 77)] + b"!*" for _ in range(200)
)

MALFORMED: list[tuple[str, bytes, str | None]] = [
    (
        "missing-close-boundary",
        b"Subject: a\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
        b"Content-Type: text/plain\n\ncut off here",
        "CloseBoundaryNotFoundDefect",
    ),
    (
        "no-start-boundary",
        b"Subject: b\nContent-Type: multipart/mixed; boundary=b\n\nthe parts never start\n",
        "StartBoundaryNotFoundDefect",
    ),
    (
        "multipart-without-boundary",
        b"Subject: c\nContent-Type: multipart/alternative\n\n--b\n\nx\n--b--\n",
        "NoBoundaryInMultipartDefect",
    ),
    (
        "garbage-before-headers",
        b"\x01\x02 not a header\nSubject: d\n\nbody\n",
        "MissingHeaderBodySeparatorDefect",
    ),
    (
        "broken-base64-body",
        b"Subject: e\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
        b"SGVsbG8g!!!d29ybGQ=\n",
        "InvalidBase64CharactersDefect",
    ),
    (
        "base64-bad-padding",
        b"Subject: f\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        b"QUJDRA=\n",
        "InvalidBase64PaddingDefect",
    ),
    (
        "big-broken-base64-attachment",
        b"Subject: g\nContent-Type: multipart/mixed; boundary=q\n\n--q\n"
        b"Content-Type: application/zip\nContent-Transfer-Encoding: base64\n\n"
        + BIG_BROKEN_B64
        + b"\n--q--\n",
        "InvalidBase64",
    ),
    (
        "unknown-charset",
        b"Subject: h\nContent-Type: text/plain; charset=x-martian\n\n\xe9t\xe9\n",
        "unknown charset 'x-martian'",
    ),
    (
        "charset-that-cannot-replace",
        b"Subject: =?idna?q?=FF?=\nContent-Type: text/plain; charset=idna\n\n\xff\n",
        "unknown charset 'idna'",
    ),
    (
        "bad-date",
        b"Subject: i\nDate: the day after tomorrow\n\nbody\n",
        "unparseable Date header",
    ),
    (
        "eight-bit-headers",
        "Subject: Grüße\nFrom: Jörg <jörg@exämple.de>\n".encode()
        + b"To: caf\xe9@example.fr\n\nlatin-1 address, utf-8 subject\n",
        None,
    ),
    (
        "nul-bytes",
        b"Subject: nul\x00here\nFrom: a\x00@example.com\n\nbody \x00 with \x00\x00 nuls\n\x00",
        None,
    ),
    (
        "bare-cr-and-lf",
        b"Subject: cr\rFrom: x@example.com\r\nTo: y@example.com\n\r\nline\rline\nline\r\n\r.\r",
        None,
    ),
    (
        "unicode-escape-surrogate",
        b"Subject: =?unicode_escape?q?\\ud800?=\nContent-Type: text/plain; charset=utf-7\n\n"
        b"+2AA-\n",
        None,
    ),
    ("empty", b"", None),
    ("headers-only-no-newline", b"Subject: nothing else", None),
    ("binary-garbage", random.Random(7).randbytes(20_000), None),
    ("huge-header-line", b"Subject: " + b"x" * 200_000 + b"\n\nbody\n", None),
    (
        "deep-nesting",
        b"".join(
            f"Content-Type: multipart/mixed; boundary=n{i}\n\n--n{i}\n".encode() for i in range(60)
        )
        + b"Content-Type: text/plain\n\ninnermost\n",
        None,
    ),
]


@pytest.mark.parametrize(
    ("raw", "defect"), [pytest.param(r, d, id=name) for name, r, d in MALFORMED]
)
def test_malformed_input_is_archived_byte_for_byte(
    archive: Archive, raw: bytes, defect: str | None
) -> None:
    result = archive.ingest(raw, env())
    assert result.new_message
    assert result.sha256 == sha(raw)
    assert archive.raw(result.id) == raw
    row = archive.get(result.id)
    assert row.size == len(raw)
    if defect is not None:
        assert any(defect in d for d in row.defects), row.defects
    # defects survive the catalog as a JSON list of strings
    assert all(isinstance(d, str) for d in row.defects)


def test_malformed_corpus_verifies_clean(archive: Archive) -> None:
    for i, (_name, raw, _defect) in enumerate(MALFORMED):
        archive.ingest(raw, env(queue_id=f"Q{i}"))
    report = verify(archive)
    assert report.ok, report.problems
    assert report.messages == len(MALFORMED)


def test_eight_bit_headers_are_indexed_readably(archive: Archive) -> None:
    raw = "Subject: Grüße\nFrom: Jörg <jörg@exämple.de>\n\nbody\n".encode()
    row = archive.get(archive.ingest(raw, env()).id)
    assert row.subject == "Grüße"
    assert row.from_ == "Jörg <jörg@exämple.de>"


def test_nul_bytes_are_kept_in_the_copy_but_not_the_index(archive: Archive) -> None:
    raw = b"Subject: nul\x00here\n\nbody \x00\n"
    result = archive.ingest(raw, env())
    assert archive.raw(result.id).count(b"\x00") == 2
    assert archive.get(result.id).subject == "nulhere"


# -- round trips -------------------------------------------------------------------------


def test_cpython_email_corpus_round_trips(
    archive: Archive, cpython_messages: list[tuple[str, bytes]]
) -> None:
    assert len(cpython_messages) > 40
    ids: dict[str, int] = {}
    for name, raw in cpython_messages:
        result = archive.ingest(raw, env(queue_id=name))
        ids[name] = result.id
    for name, raw in cpython_messages:
        assert archive.raw(ids[name]) == raw, name
    distinct = {sha(raw) for _, raw in cpython_messages}
    assert archive.stats().messages == len(distinct)
    assert archive.stats().envelopes == len(cpython_messages)
    report = verify(archive)
    assert report.ok, report.problems


def test_cpython_email_corpus_with_crlf_line_endings(
    archive: Archive, cpython_messages: list[tuple[str, bytes]]
) -> None:
    for name, raw in cpython_messages:
        crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert archive.raw(archive.ingest(crlf, env(queue_id=name)).id) == crlf, name


def test_ingest_many_returns_results_in_input_order(archive: Archive) -> None:
    raws = [SIMPLE.replace(b"lunch", f"lunch {i}".encode()) for i in range(50)]
    results = list(archive.ingest_many((r, env(queue_id=f"Q{i}")) for i, r in enumerate(raws)))
    assert [r.sha256 for r in results] == [sha(r) for r in raws]
    assert all(r.new_message for r in results)
    for raw, result in zip(raws, results, strict=True):
        assert archive.raw(result.id) == raw


def test_ingest_from_an_event_loop(archive: Archive) -> None:
    async def archive_it() -> Outcome:
        return await asyncio.wrap_future(archive.ingester.submit(SIMPLE, env()))

    outcome = asyncio.run(archive_it())
    result = outcome.result
    assert result is not None
    assert outcome.status == "Archived"
    assert archive.raw(result.id) == SIMPLE
    assert result.new_message
    assert result.new_envelope


def test_catalog_row_describes_the_message(archive: Archive) -> None:
    data = random.Random(3).randbytes(10_000)
    raw = with_attachment(data)
    result = archive.ingest(raw, env())
    row = archive.get(result.id)
    assert row.subject == "report"
    assert row.from_ == "Alice <alice@example.com>"
    assert row.attachment_count == 1
    assert row.sha256 == sha(raw)
    assert row.date == T0  # no Date header: the time received
    att, payload = archive.attachment(result.id, 1)
    assert payload == data
    assert att.sha256 == sha(data)
    with pytest.raises(NotFoundError):
        archive.attachment(result.id, 9)


def test_unknown_id_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFoundError, match="no archived message with id 404"):
        archive.raw(404)


# -- dedup -------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_attachment_in_a_hundred_messages_is_stored_once(archive: Archive) -> None:
    data = random.Random(1).randbytes(1024 * 1024)

    def message(i: int) -> bytes:
        # half of them as they come by SMTP, half as the pipe filter hands them over
        return with_attachment(data, subject=f"copy {i}", eol=b"\r\n" if i % 2 else b"\n")

    def items() -> Iterator[tuple[bytes, Envelope]]:
        for i in range(100):
            yield message(i), env(queue_id=f"Q{i}")

    results = list(archive.ingest_many(items(), window=8))
    assert len({r.id for r in results}) == 100
    files = [f for f in (store_root(archive) / "p").rglob("*") if f.is_file()]
    assert len(files) == 1
    assert files[0].name == sha(data)
    assert list(archive.store.keys("p/")) == [f"p/{sha(data)}"]
    stats = archive.stats()
    assert stats.messages == 100
    assert stats.parts == 1
    assert stats.raw_bytes > 100 * 1024 * 1024
    assert stats.stored_bytes < 2 * 1024 * 1024
    for i, r in enumerate(results):
        assert archive.raw(r.id) == message(i)


def test_part_shared_across_messages_survives_when_one_is_read(archive: Archive) -> None:
    data = random.Random(5).randbytes(50_000)
    first = archive.ingest(with_attachment(data, subject="one"), env(queue_id="1"))
    second = archive.ingest(with_attachment(data, subject="two", eol=b"\n"), env(queue_id="2"))
    assert first.id != second.id
    assert len(list(archive.store.keys("p/"))) == 1
    assert archive.raw(second.id) == with_attachment(data, subject="two", eol=b"\n")
    assert archive.raw(first.id) == with_attachment(data, subject="one")


# -- envelopes ---------------------------------------------------------------------------


def test_same_bytes_with_another_envelope_is_one_message_two_envelopes(
    archive: Archive,
) -> None:
    first = archive.ingest(SIMPLE, env(queue_id="AAA", recipients=("bob@example.com",)))
    second = archive.ingest(
        SIMPLE,
        env(queue_id="BBB", recipients=("carol@example.com",), received=T0 + timedelta(hours=1)),
    )
    assert (first.new_message, first.new_envelope) == (True, True)
    assert (second.new_message, second.new_envelope) == (False, True)
    assert second.id == first.id
    assert second.sha256 == first.sha256
    view = archive.view(first.id)
    assert [e.envelope.queue_id for e in view.envelopes] == ["AAA", "BBB"]
    assert [e.envelope.recipients for e in view.envelopes] == [
        ("bob@example.com",),
        ("carol@example.com",),
    ]
    events = list(archive.catalog.chain())
    assert [(e.seq, e.message) for e in events] == [(1, first.id), (2, first.id)]
    assert events[1].prev_hash == events[0].hash
    assert archive.stats().messages == 1
    assert archive.stats().envelopes == 2
    assert len(list(archive.store.keys("m/"))) == 1
    assert verify(archive).ok


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param(env(received=T0 + timedelta(minutes=30)), id="later"),
        pytest.param(
            env(
                sender="ALICE@example.com",
                received=T0 + timedelta(days=1),
                client_address="192.0.2.9",
            ),
            id="case-and-client-differ",
        ),
    ],
)
def test_a_retry_records_nothing_new(archive: Archive, retry: Envelope) -> None:
    first = archive.ingest(SIMPLE, env())
    again = archive.ingest(SIMPLE, retry)
    assert again.id == first.id
    assert (again.new_message, again.new_envelope) == (False, False)
    [only] = archive.view(first.id).envelopes
    assert only.envelope.received == T0  # the first arrival is what was recorded
    assert len(list(archive.catalog.chain())) == 1
    assert archive.stats().envelopes == 1


def test_recipient_order_does_not_make_a_new_arrival(archive: Archive) -> None:
    a = archive.ingest(SIMPLE, env(recipients=("x@example.com", "y@example.com")))
    b = archive.ingest(SIMPLE, env(recipients=("Y@example.com", "x@example.com")))
    assert not b.new_envelope
    c = archive.ingest(SIMPLE, env(recipients=("x@example.com",)))
    assert c.new_envelope
    assert a.id == b.id == c.id


def test_envelope_recipients_keep_bcc(archive: Archive) -> None:
    envelope = Envelope(
        "alice@example.com",
        ("bob@example.com", "hidden-auditor@example.net"),
        queue_id="4XYZ",
        client_address="192.0.2.10",
        client_name="mx.example.com",
        helo="mx.example.com",
        received=datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
        source="pipe",
    )
    result = archive.ingest(SIMPLE, envelope)
    raw = archive.raw(result.id)
    assert b"hidden-auditor" not in raw
    [recorded] = archive.view(result.id).envelopes
    assert recorded.envelope == envelope
    assert "hidden-auditor@example.net" in recorded.envelope.recipients
    assert "hidden-auditor" not in archive.get(result.id).to
    assert archive.catalog.is_visible(result.id, ["hidden-auditor@example.net"])


def test_null_sender_is_kept(archive: Archive) -> None:
    result = archive.ingest(SIMPLE, env(sender=""))
    [recorded] = archive.view(result.id).envelopes
    assert recorded.envelope.sender == ""


# -- every read checks the SHA-256 -------------------------------------------------------


def test_flipped_byte_in_message_blob(archive: Archive) -> None:
    result = archive.ingest(SIMPLE, env())
    rewrite_blob(archive, f"m/{result.sha256}", change=5)
    with pytest.raises(IntegrityError) as info:
        archive.raw(result.id)
    text = str(info.value)
    assert f"m/{result.sha256}" in text
    assert "do not match their SHA-256" in text
    assert "altered or damaged" in text


def test_garbage_message_blob(archive: Archive) -> None:
    result = archive.ingest(SIMPLE, env())
    overwrite_blob(archive, f"m/{result.sha256}", os.urandom(300))
    with pytest.raises(IntegrityError, match=f"m/{result.sha256}: stored blob is damaged"):
        archive.raw(result.id)


def test_truncated_message_blob(archive: Archive) -> None:
    result = archive.ingest(SIMPLE, env())
    key = f"m/{result.sha256}"
    overwrite_blob(archive, key, archive.store.get(key)[:-10])
    with pytest.raises(IntegrityError, match=f"m/{result.sha256}"):
        archive.raw(result.id)


def test_flipped_byte_in_part_blob(archive: Archive) -> None:
    data = random.Random(9).randbytes(30_000)
    result = archive.ingest(with_attachment(data), env())
    part = f"p/{sha(data)}"
    rewrite_blob(archive, part, change=1000)
    with pytest.raises(IntegrityError) as info:
        archive.raw(result.id)
    assert f"part blob {part}: bytes do not match their SHA-256" in str(info.value)
    # the skeleton itself is fine: only the part is named
    assert f"m/{result.sha256}" not in str(info.value)


def test_garbage_part_blob(archive: Archive) -> None:
    data = random.Random(10).randbytes(30_000)
    result = archive.ingest(with_attachment(data), env())
    overwrite_blob(archive, f"p/{sha(data)}", b"\x28\xb5\x2f\xfd garbage" * 10)
    with pytest.raises(IntegrityError, match=f"part blob p/{sha(data)}: stored blob is damaged"):
        archive.raw(result.id)


def test_missing_blobs(archive: Archive) -> None:
    data = random.Random(11).randbytes(30_000)
    result = archive.ingest(with_attachment(data), env())
    archive.store.delete(f"p/{sha(data)}")
    with pytest.raises(IntegrityError, match=f"part blob p/{sha(data)} is missing"):
        archive.raw(result.id)
    archive.store.delete(f"m/{result.sha256}")
    with pytest.raises(IntegrityError, match=f"message blob m/{result.sha256} is missing"):
        archive.raw(result.id)


def test_ingesting_known_bytes_again_does_not_hide_damage(archive: Archive) -> None:
    """Known bytes are not rewritten on a second ingest: damage stays visible to verify."""
    result = archive.ingest(SIMPLE, env())
    rewrite_blob(archive, f"m/{result.sha256}")
    archive.ingest(SIMPLE, env(queue_id="other"))
    with pytest.raises(IntegrityError):
        archive.raw(result.id)
    assert not verify(archive).ok


# -- damaged manifests never escape as anything but IntegrityError -------------------------


@pytest.fixture(scope="module")
def manifest_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    home = tmp_path_factory.mktemp("manifest")
    config: Config = parse_config(f'[archive]\nhome = "{home}"\n')
    with Archive(config) as archive:
        yield archive


MANIFEST_DATA = random.Random(12).randbytes(9000)
MANIFEST_RAW = with_attachment(MANIFEST_DATA, subject="manifest")


def read_with_manifest(archive: Archive, manifest: bytes) -> bytes:
    """Store ``manifest`` for the test message, read it back, restore the original."""
    result = archive.ingest(MANIFEST_RAW, env())
    key = f"m/{result.sha256}"
    original = archive.store.get(key)
    archive.store.put(key, zstandard.ZstdCompressor().compress(manifest))
    try:
        return archive.read_blob(result.sha256)
    finally:
        archive.store.put(key, original)


def original_manifest(archive: Archive) -> bytes:
    result = archive.ingest(MANIFEST_RAW, env())
    stored = archive.store.get(f"m/{result.sha256}")
    return zstandard.ZstdDecompressor().decompress(stored)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(1, 255))
def test_any_changed_manifest_byte_is_an_integrity_error(
    manifest_archive: Archive, position: int, value: int
) -> None:
    manifest = bytearray(original_manifest(manifest_archive))
    # most of the time, hit the JSON header where the structure is
    header_end = manifest.index(b"\n")
    i = position % (header_end + 1) if position % 3 else position % len(manifest)
    manifest[i] ^= value
    try:
        raw = read_with_manifest(manifest_archive, bytes(manifest))
    except IntegrityError:
        return
    assert raw == MANIFEST_RAW  # an unused field changed: the bytes are still checked


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda h: {**h, "segs": "nope"}, id="segs-not-a-list"),
        pytest.param(lambda h: [h], id="header-not-an-object"),
        pytest.param(lambda h: {}, id="no-segs"),
        pytest.param(
            lambda h: {
                **h,
                "segs": [s if isinstance(s, int) else [*s[:2], 0, *s[3:]] for s in h["segs"]],
            },
            id="width-zero",
        ),
        pytest.param(
            lambda h: {
                **h,
                "segs": [s if isinstance(s, int) else [*s[:2], -4, *s[3:]] for s in h["segs"]],
            },
            id="width-negative",
        ),
        pytest.param(
            lambda h: {
                **h,
                "segs": [s if isinstance(s, int) else [s[0], "rot13", *s[2:]] for s in h["segs"]],
            },
            id="unknown-encoding",
        ),
        pytest.param(
            lambda h: {
                **h,
                "segs": [s if isinstance(s, int) else ["../../m/x", *s[1:]] for s in h["segs"]],
            },
            id="sha-not-hex",
        ),
        pytest.param(
            lambda h: {**h, "segs": [s if isinstance(s, int) else s[:3] for s in h["segs"]]},
            id="short-ref",
        ),
        pytest.param(
            lambda h: {
                **h,
                "segs": [s if isinstance(s, int) else [*s[:3], 10, ""] for s in h["segs"]],
            },
            id="eol-not-a-string",
        ),
        pytest.param(
            lambda h: {
                **h,
                "segs": [s if isinstance(s, int) else [*s[:2], "76", *s[3:]] for s in h["segs"]],
            },
            id="width-a-string",
        ),
        pytest.param(
            lambda h: {**h, "segs": [s if isinstance(s, int) else {"a": 1} for s in h["segs"]]},
            id="ref-is-object",
        ),
        pytest.param(
            lambda h: {**h, "segs": [-5 if isinstance(s, int) else s for s in h["segs"]]},
            id="negative-length",
        ),
        pytest.param(
            lambda h: {**h, "segs": [None for s in h["segs"]]},
            id="null-segments",
        ),
    ],
)
def test_structurally_damaged_manifest_is_an_integrity_error_or_harmless(
    manifest_archive: Archive, edit: object
) -> None:
    assert callable(edit)
    manifest = original_manifest(manifest_archive)
    nl = manifest.index(b"\n")
    header = json.loads(manifest[1:nl])
    damaged = b"S" + json.dumps(edit(header)).encode() + manifest[nl:]
    outcome: bytes | IntegrityError
    try:
        outcome = read_with_manifest(manifest_archive, damaged)
    except IntegrityError as exc:
        outcome = exc
    if isinstance(outcome, IntegrityError):
        assert f"m/{sha(MANIFEST_RAW)}" in str(outcome)
    else:  # a harmless edit: what came back was still checked against the SHA-256
        assert outcome == MANIFEST_RAW
