"""Byte-exact splitting of messages into a skeleton and large parts (``archive.skeleton``).

The property tests build MIME trees as bytes (not through ``email``, which would normalise
them): nested multipart/mixed|alternative|related, text parts plain and quoted-printable,
base64 attachments of random binary data around the 4 KiB threshold and above, odd
boundaries, CRLF or LF, preambles, epilogues and message/rfc822 parts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import quopri
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.archive import Archive
from postfix_archiver.archive.skeleton import (
    PartRef,
    Segment,
    Split,
    decode_manifest,
    encode_manifest,
    rebuild,
    split_message,
)
from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope

THRESHOLD = 4096


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_refs(segments: list[Segment]) -> list[PartRef]:
    return [s for s in segments if isinstance(s, PartRef)]


def round_trip(raw: bytes, threshold: int = THRESHOLD) -> Split:
    """Split ``raw``, store and reload the manifest, rebuild; returns the split."""
    split = split_message(raw, threshold, sha)
    manifest = encode_manifest(split, raw)
    segments = decode_manifest(manifest)
    assert segments == ([raw] if split.is_whole else split.segments)
    assert rebuild(segments, split.parts.__getitem__) == raw
    for ref in part_refs(segments):
        assert sha(split.parts[ref.sha256]) == ref.sha256
    return split


def b64_lines(data: bytes, width: int, eol: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return eol.join(encoded[i : i + width] for i in range(0, len(encoded), width))


def with_attachment(data: bytes, eol: bytes, *, subject: str = "report", width: int = 76) -> bytes:
    lines = [
        b"From: alice@example.com",
        b"To: bob@example.com",
        b"Subject: " + subject.encode(),
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="==outer=="',
        b"",
        b"--==outer==",
        b"Content-Type: text/plain; charset=us-ascii",
        b"",
        b"See the attachment.",
        b"--==outer==",
        b'Content-Type: application/pdf; name="report.pdf"',
        b"Content-Transfer-Encoding: base64",
        b'Content-Disposition: attachment; filename="report.pdf"',
        b"",
        b64_lines(data, width, eol),
        b"--==outer==--",
        b"",
    ]
    return eol.join(lines)


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def attachment() -> bytes:
    return random_bytes(20_000, seed=1)


# -- example-based -----------------------------------------------------------------------


def test_small_message_is_stored_whole() -> None:
    raw = b"Subject: hi\r\n\r\nshort body\r\n"
    split = round_trip(raw)
    assert split.is_whole
    assert split.parts == {}
    assert encode_manifest(split, raw) == b"R" + raw


def test_base64_attachment_is_stored_decoded(attachment: bytes) -> None:
    raw = with_attachment(attachment, b"\r\n")
    split = round_trip(raw)
    assert list(split.parts) == [sha(attachment)]
    assert split.parts[sha(attachment)] == attachment
    [ref] = part_refs(split.segments)
    assert (ref.encoding, ref.width, ref.eol) == ("b64", 76, b"\r\n")
    # the skeleton keeps everything but the attachment body
    literal = b"".join(s for s in split.segments if isinstance(s, bytes))
    assert len(literal) < 600
    assert b"See the attachment." in literal


def test_crlf_and_lf_copies_of_one_attachment_share_a_part(attachment: bytes) -> None:
    crlf = round_trip(with_attachment(attachment, b"\r\n"))
    lf = round_trip(with_attachment(attachment, b"\n"))
    assert list(crlf.parts) == list(lf.parts) == [sha(attachment)]
    assert [r.eol for r in part_refs(crlf.segments)] == [b"\r\n"]
    assert [r.eol for r in part_refs(lf.segments)] == [b"\n"]


def test_other_line_widths_are_regular_too(attachment: bytes) -> None:
    for width in (64, 72, 100, 4):
        split = round_trip(with_attachment(attachment, b"\n", width=width))
        [ref] = part_refs(split.segments)
        assert (ref.encoding, ref.width) == ("b64", width)
        assert split.parts == {sha(attachment): attachment}


def test_irregular_base64_falls_back_to_raw(attachment: bytes) -> None:
    encoded = base64.b64encode(attachment)
    widths = [76, 60, 76, 80, 12]
    lines, pos, i = [], 0, 0
    while pos < len(encoded):
        w = widths[i % len(widths)]
        lines.append(encoded[pos : pos + w])
        pos, i = pos + w, i + 1
    body = b"\r\n".join(lines)
    raw = with_attachment(attachment, b"\r\n").replace(b64_lines(attachment, 76, b"\r\n"), body)
    split = round_trip(raw)
    [ref] = part_refs(split.segments)
    assert ref.encoding == "raw"
    assert split.parts == {sha(body): body}


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b[:100] + b"\n" + b[100:], id="mixed-line-endings"),
        pytest.param(lambda b: b[:-4] + b"!!!!", id="junk-at-end"),
        pytest.param(lambda b: b.replace(b"\r\n", b"\r\n ", 3), id="leading-spaces"),
        pytest.param(lambda b: b + b"\r\n====", id="extra-padding"),
    ],
)
def test_damaged_base64_still_round_trips(attachment: bytes, mangle: object) -> None:
    assert callable(mangle)
    good = b64_lines(attachment, 76, b"\r\n")
    raw = with_attachment(attachment, b"\r\n").replace(good, mangle(good))
    split = round_trip(raw)
    assert split.parts  # still cut out (as raw bytes) because it is large
    [ref] = part_refs(split.segments)
    assert ref.encoding == "raw"


def test_width_not_a_multiple_of_four_is_raw(attachment: bytes) -> None:
    encoded = base64.b64encode(attachment)
    body = b"\n".join(encoded[i : i + 75] for i in range(0, len(encoded), 75))
    raw = with_attachment(attachment, b"\n").replace(b64_lines(attachment, 76, b"\n"), body)
    split = round_trip(raw)
    assert [r.encoding for r in part_refs(split.segments)] == ["raw"]


def test_threshold_is_inclusive() -> None:
    header = b"Subject: t\nContent-Type: application/octet-stream\n\n"
    at = round_trip(header + b"x" * 1000, threshold=1000)
    below = round_trip(header + b"x" * 999, threshold=1000)
    assert at.parts == {sha(b"x" * 1000): b"x" * 1000}
    assert below.is_whole


def test_trailing_blank_lines_after_base64_are_kept(attachment: bytes) -> None:
    body = b64_lines(attachment, 76, b"\r\n") + b"\r\n\r\n \t\r\n"
    raw = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body
    split = round_trip(raw)
    [ref] = part_refs(split.segments)
    assert ref.encoding == "b64"
    assert ref.tail == b"\r\n\r\n \t\r\n"


def test_attachment_inside_forwarded_message_is_cut(attachment: bytes) -> None:
    inner = with_attachment(attachment, b"\n", subject="inner")
    raw = (
        b"Subject: Fwd\nContent-Type: multipart/mixed; boundary=fw\n\n--fw\n"
        b"Content-Type: text/plain\n\nforwarded:\n--fw\nContent-Type: message/rfc822\n\n"
        + inner
        + b"\n--fw--\n"
    )
    split = round_trip(raw)
    assert list(split.parts) == [sha(attachment)]


def test_nesting_beyond_the_limit_is_kept_whole(attachment: bytes) -> None:
    raw = with_attachment(attachment, b"\n")
    for depth in range(30):
        raw = (
            f"Content-Type: multipart/mixed; boundary=d{depth}\n\n--d{depth}\n".encode()
            + raw
            + f"\n--d{depth}--\n".encode()
        )
    split = round_trip(raw)
    assert split.is_whole


def test_two_attachments_and_a_repeated_one(attachment: bytes) -> None:
    other = random_bytes(9000, seed=2)
    parts = [attachment, other, attachment]
    body = b"".join(
        b"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        + b64_lines(p, 76, b"\n")
        + b"\n"
        for p in parts
    )
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n" + body + b"--b--\n"
    split = round_trip(raw)
    assert split.parts == {sha(attachment): attachment, sha(other): other}
    assert [r.sha256 for r in part_refs(split.segments)] == [sha(p) for p in parts]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n",
        b"\r\n\r\n" + b"x" * 5000,
        b"no header separator at all " * 300,
        b"Content-Type: multipart/mixed; boundary=\n\n" + b"x" * 5000,
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\n' + b"y" * 5000,
        b"Content-Type: multipart/mixed; boundary*=utf-8''%C3%BC\n\n--\xc3\xbc\n\n" + b"z" * 5000,
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b"=" * 5000,
        b"\x00\xff" * 5000,
    ],
)
def test_odd_input_round_trips(raw: bytes) -> None:
    round_trip(raw)


def test_manifest_segments_survive_encoding(attachment: bytes) -> None:
    raw = with_attachment(attachment, b"\r\n")
    split = split_message(raw, THRESHOLD, sha)
    manifest = encode_manifest(split, raw)
    assert manifest.startswith(b"S")
    segments = decode_manifest(manifest)
    refs = part_refs(segments)
    assert refs == [PartRef(sha(attachment), "b64", 76, b"\r\n", b"")]
    with pytest.raises(ValueError, match="not a message manifest"):
        decode_manifest(b"X" + manifest[1:])


@pytest.mark.parametrize(
    "ref",
    [
        ["0" * 63, "b64", 76, "\n", ""],
        ["../../m/" + "0" * 56, "raw", 0, "", ""],
        ["0" * 64, "rot13", 76, "\n", ""],
        ["0" * 64, "b64", 0, "\n", ""],
        ["0" * 64, "b64", "76", "\n", ""],
        ["0" * 64, "b64", 76, 10, ""],
        ["0" * 64, "b64", 76, "\n", None],
    ],
)
def test_damaged_part_reference_is_refused(ref: list[object]) -> None:
    manifest = b"S" + json.dumps({"v": 1, "segs": [3, ref]}).encode() + b"\nabc"
    with pytest.raises(ValueError, match="bad part reference"):
        decode_manifest(manifest)


# -- generated MIME trees ----------------------------------------------------------------

TEXT_ALPHABET = st.characters(
    codec="utf-8", categories=("L", "N", "Zs", "Po"), exclude_characters="-\r\n\x85\u2028\u2029"
)
BOUNDARY_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,./:=? "
TSPECIALS = set('()<>@,;:\\"/[]?= ')


class Tree:
    """A generated message: its bytes and the big base64 parts the split must cut out."""

    def __init__(self) -> None:
        self.raw = b""
        self.regular: list[bytes] = []  # decoded data of regularly encoded big parts
        self.irregular: list[tuple[bytes, bytes]] = []  # (data, encoded body)
        self.boundaries = 0

    def __repr__(self) -> str:  # the bytes are too long to print usefully
        head = self.raw[:300]
        return f"Tree({len(self.raw)} bytes, sha256 {sha(self.raw)[:12]}, starting {head!r})"


@st.composite
def text_leaf(draw: st.DrawFn, eol: bytes) -> tuple[list[bytes], bytes]:
    line = draw(st.text(TEXT_ALPHABET, min_size=0, max_size=40))
    repeat = draw(st.sampled_from([1, 3, 50, 200]))
    text = eol.decode().join([line] * repeat)
    subtype = draw(st.sampled_from(["plain", "html"]))
    cte = draw(st.sampled_from(["8bit", "quoted-printable", None]))
    if cte == "quoted-printable":
        body = quopri.encodestring(text.encode()).replace(b"\n", eol)
    else:
        body = text.encode()
    headers = [f"Content-Type: text/{subtype}; charset=utf-8".encode()]
    if cte:
        headers.append(f"Content-Transfer-Encoding: {cte}".encode())
    return headers, body


@st.composite
def base64_leaf(draw: st.DrawFn, eol: bytes, tree: Tree) -> tuple[list[bytes], bytes]:
    size = draw(
        st.one_of(
            st.integers(0, 300),
            st.integers(2900, 3200),  # encodes to just around the threshold
            st.integers(THRESHOLD - 64, THRESHOLD + 64),
            st.integers(THRESHOLD, 24_000),
        )
    )
    data = random_bytes(size, draw(st.integers(0, 2**32)))
    if draw(st.booleans()):
        width = draw(st.sampled_from([76, 64, 72, 4, 128]))
        body = b64_lines(data, width, eol) if data else b""
        regular = True
    else:
        encoded = base64.b64encode(data)
        widths = draw(st.lists(st.integers(1, 90), min_size=1, max_size=6))
        lines, pos, i = [], 0, 0
        while pos < len(encoded):
            lines.append(encoded[pos : pos + widths[i % len(widths)]])
            pos, i = pos + widths[i % len(widths)], i + 1
        body = eol.join(lines)
        regular = False
    name = draw(st.sampled_from(["a.bin", "photo.jpg", "r\u00e9sum\u00e9.pdf", "x y.zip"]))
    ctype = draw(st.sampled_from(["application/octet-stream", "image/jpeg", "application/pdf"]))
    headers = [
        f'Content-Type: {ctype}; name="{name}"'.encode(),
        draw(
            st.sampled_from(
                [b"Content-Transfer-Encoding: base64", b"content-transfer-encoding: BASE64"]
            )
        ),
        f'Content-Disposition: attachment; filename="{name}"'.encode(),
    ]
    if len(body) >= THRESHOLD:
        if regular:
            tree.regular.append(data)
        else:
            tree.irregular.append((data, body))
    return headers, body


@st.composite
def boundary(draw: st.DrawFn, tree: Tree) -> str:
    tree.boundaries += 1
    stem = draw(st.text(st.sampled_from(BOUNDARY_CHARS), min_size=0, max_size=50))
    # unique per message, and never ending in a space (RFC 2046 bcharsnospace)
    return f"{stem}#{tree.boundaries}".replace("#", draw(st.sampled_from(["_", "=", ".", "'"])))


@st.composite
def node(draw: st.DrawFn, eol: bytes, tree: Tree, depth: int) -> tuple[list[bytes], bytes]:
    kinds = ["text", "b64"] + (["multi", "multi", "rfc822"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "text":
        return draw(text_leaf(eol))
    if kind == "b64":
        return draw(base64_leaf(eol, tree))
    if kind == "rfc822":
        inner = draw(message(eol, tree, depth + 1))
        return [b"Content-Type: message/rfc822"], inner
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    b = draw(boundary(tree))
    needs_quotes = any(c in TSPECIALS for c in b)
    param = f'"{b}"' if needs_quotes or draw(st.booleans()) else b
    fold = draw(st.sampled_from(["; ", ";" + eol.decode() + "\t", ";" + eol.decode() + " "]))
    header = f"Content-Type: multipart/{subtype}{fold}boundary={param}".encode()
    children = draw(st.lists(node(eol, tree, depth + 1), min_size=1, max_size=4))
    delim = b"--" + b.encode()
    out = b""
    preamble = draw(st.one_of(st.none(), st.text(TEXT_ALPHABET, max_size=60)))
    if preamble is not None:
        out += preamble.encode() + eol
    for headers, body in children:
        out += delim + eol + eol.join(headers) + eol + eol + body + eol
    out += delim + b"--"
    epilogue = draw(st.one_of(st.none(), st.text(TEXT_ALPHABET, max_size=60)))
    if epilogue is not None:
        out += eol + epilogue.encode() + draw(st.sampled_from([b"", eol]))
    return [header], out


@st.composite
def message(draw: st.DrawFn, eol: bytes, tree: Tree, depth: int = 0) -> bytes:
    headers = [
        b"From: Alice <alice@example.com>",
        b"To: bob@example.com",
        f"Subject: generated {draw(st.integers(0, 10**9))}".encode(),
        b"MIME-Version: 1.0",
    ]
    part_headers, body = draw(node(eol, tree, depth))
    return eol.join(headers + part_headers) + eol + eol + body


@st.composite
def mime_trees(draw: st.DrawFn) -> Tree:
    tree = Tree()
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    tree.raw = draw(message(eol, tree)) + draw(st.sampled_from([b"", eol]))
    return tree


def check_cut_out(tree: Tree, parts: dict[str, bytes]) -> None:
    for data in tree.regular:
        assert parts.get(sha(data)) == data
    for data, body in tree.irregular:
        # irregular encodings are kept as bytes (with the line break that ends a message
        # at top level), unless they happen to be regular after all
        assert parts.get(sha(data)) == data or any(p.startswith(body) for p in parts.values())
    if tree.regular or tree.irregular:
        assert parts


@settings(max_examples=150, deadline=None)
@given(mime_trees())
def test_generated_trees_split_and_rebuild_byte_exact(tree: Tree) -> None:
    split = round_trip(tree.raw)
    check_cut_out(tree, split.parts)
    # only bodies of at least the threshold leave the skeleton
    for ref in part_refs(split.segments):
        assert len(ref.render(split.parts[ref.sha256])) >= THRESHOLD


@settings(max_examples=40, deadline=None)
@given(mime_trees(), st.sampled_from([256, 1024, 10_000]))
def test_generated_trees_at_other_thresholds(tree: Tree, threshold: int) -> None:
    round_trip(tree.raw, threshold)


@pytest.fixture(scope="module")
def shared_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    home: Path = tmp_path_factory.mktemp("skeleton-archive")
    with Archive(parse_config(f'[archive]\nhome = "{home}"\n')) as archive:
        yield archive


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(tree=mime_trees())
def test_generated_trees_through_the_archive(shared_archive: Archive, tree: Tree) -> None:
    result = shared_archive.ingest(tree.raw, Envelope("alice@example.com", ("bob@example.com",)))
    assert shared_archive.raw(result.id) == tree.raw
    for data in tree.regular:
        assert shared_archive.store.exists(f"p/{sha(data)}")
    if tree.regular or tree.irregular:
        assert shared_archive.catalog.get(result.id) is not None
        stored = shared_archive.store.get(f"m/{result.sha256}")
        assert len(stored) < len(tree.raw)  # the skeleton, not the whole message


# -- reading a big part in place ---------------------------------------------------------------


@given(
    st.binary(max_size=300),
    st.sampled_from([4, 8, 76]),
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from([b"", b"\r\n", b"\n\n", b" \t\r\n"]),
    st.integers(1, 4),
    st.one_of(st.none(), st.tuples(st.integers(0, 500), st.binary(min_size=1, max_size=1))),
)
@settings(max_examples=400, deadline=None)
def test_rendering_compared_a_few_lines_at_a_time_is_rendering_it_whole(
    content: bytes,
    width: int,
    eol: bytes,
    tail: bytes,
    lines: int,
    damage: tuple[int, bytes] | None,
) -> None:
    from postfix_archiver.archive.skeleton import renders_as

    ref = PartRef(sha(content), "b64", width, eol, tail)
    body = bytearray(ref.render(content))
    if damage is not None and body:
        body[damage[0] % len(body)] = damage[1][0]
    raw = b"head\r\n\r\n" + bytes(body) + b"\r\n--b--\r\n"
    start, end = 8, 8 + len(body)
    expected = ref.render(content) == raw[start:end]
    assert renders_as(ref, content, raw, start, end, lines=lines) == expected


def test_a_big_attachment_is_split_with_few_copies() -> None:
    """The split copied a big base64 body four times over (the body, without its blanks,
    re-encoded, its lines): six times the message at the peak. Now its decoded bytes."""
    import tracemalloc

    data = random.Random(7).randbytes(3 << 20)
    raw = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    tracemalloc.start()
    try:
        split = split_message(raw, THRESHOLD, sha)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(split.parts.values()) == [data]
    assert rebuild(split.segments, split.parts.__getitem__) == raw
    assert peak < 1.5 * len(raw)
