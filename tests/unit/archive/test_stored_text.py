"""The index text of a stored message read from its skeleton (``stored_text``): the text of
the rebuilt message exactly, whatever the message, without reading the attachments it does
not need."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.archive import skeleton
from postfix_archiver.archive.stored_text import index_text_stored
from postfix_archiver.message import index_text_of

THRESHOLD = 256  # the smallest the config allows: every part worth cutting is cut


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Stored:
    """``raw`` as the archive stores it, and what reading its text read."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        split = skeleton.split_message(raw, THRESHOLD, _digest)
        self.segments = split.segments
        self.parts = split.parts
        self.read: list[str] = []
        self.rebuilt = 0

    def fetch(self, sha: str) -> bytes:
        self.read.append(sha)
        return self.parts[sha]

    def rebuild(self) -> bytes:
        self.rebuilt += 1
        rebuilt = skeleton.rebuild(self.segments, self.fetch)
        assert rebuilt == self.raw
        return rebuilt

    def text(self) -> str:
        return index_text_stored(self.segments, self.rebuild, self.fetch)


def _b64(data: bytes, eol: bytes = b"\n") -> bytes:
    encoded = base64.b64encode(data)
    return eol.join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _mixed(*parts: bytes, eol: bytes = b"\n", preamble: bytes = b"") -> bytes:
    head = b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\n"
    head += b'Content-Type: multipart/mixed; boundary="B"\n\n' + preamble
    raw = head + b"".join(b"--B\n" + p + b"\n" for p in parts) + b"--B--\n"
    return raw.replace(b"\n", eol)


PDF = bytes(range(256)) * 20
TEXT = b"Content-Type: text/plain; charset=utf-8\n\nthe quarterly budget, as agreed\n"
ATTACHED = (
    b'Content-Type: application/pdf; name="r.pdf"\nContent-Disposition: attachment\n'
    b"Content-Transfer-Encoding: base64\n\n" + _b64(PDF)
)


def test_an_attachment_is_not_read_for_the_text() -> None:
    stored = Stored(_mixed(TEXT, ATTACHED))
    assert stored.parts  # the PDF was cut out
    assert stored.text() == index_text_of(stored.raw) == "the quarterly budget, as agreed\n"
    assert stored.read == []
    assert stored.rebuilt == 0


def test_a_text_part_the_skeleton_cut_out_is_read() -> None:
    # a "filename=" in a field the parser does not read as the file name: the skeleton
    # takes the part for an attachment and cuts it out, the parser for the message's text
    korean = "정기회의는 세 시입니다 ".encode("euc-kr") * 40
    part = (
        b"Content-Type: text/plain; charset=euc-kr\nX-Note: filename=not-a-file\n"
        b"Content-Transfer-Encoding: base64\n\n" + _b64(korean)
    )
    stored = Stored(_mixed(TEXT, part, ATTACHED, eol=b"\r\n"))
    assert len(stored.parts) == 2
    text = stored.text()
    assert text == index_text_of(stored.raw)
    assert "정기회의는" in text
    assert stored.read == [_digest(korean)]  # that part, not the PDF
    assert stored.rebuilt == 0


def test_a_part_kept_as_it_was_means_the_whole_message() -> None:
    # quoted-printable, or base64 in lines of another width: its bytes could be any lines
    latin = ("Crème brûlée, " * 40).encode("iso-8859-1")
    qp = (
        b"Content-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Disposition: attachment; filename=menu.txt\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n"
        + b"=\n".join(latin[i : i + 60] for i in range(0, len(latin), 60)).replace(b"\xe8", b"=E8")
    )
    stored = Stored(_mixed(TEXT, qp))
    assert any(isinstance(s, skeleton.PartRef) and s.encoding == "raw" for s in stored.segments)
    assert stored.text() == index_text_of(stored.raw)
    assert stored.rebuilt == 1


def test_an_outer_boundary_inside_an_inner_multipart() -> None:
    # the outer close delimiter ends the inner multipart too, for the scanner and the parser
    inner = (
        b'Content-Type: multipart/mixed; boundary="I"\n\n--I\n'
        + ATTACHED
        + b"\n--B--\n"
        + TEXT
        + b"\n--I--\n"
    )
    stored = Stored(_mixed(TEXT, inner))
    assert stored.parts
    assert stored.text() == index_text_of(stored.raw)


def test_a_part_outside_a_part_body_means_the_whole_message() -> None:
    # a skeleton whose cut-out part the parser reads as a preamble (the scanner and the
    # parser disagreeing on where a part starts): not left out, the message read whole
    content = PDF[:900]
    ref = skeleton.PartRef(_digest(content), "b64", 76, b"\n", b"")
    head = b'Subject: s\nContent-Type: multipart/mixed; boundary="B"\n\n'
    stored = Stored(b"")
    stored.segments = [head, ref, b"\n" + _mixed(TEXT).split(b"\n\n", 1)[1]]
    stored.parts = {ref.sha256: content}
    stored.raw = skeleton.rebuild(stored.segments, stored.parts.__getitem__)
    assert stored.text() == index_text_of(stored.raw) == "the quarterly budget, as agreed\n"
    assert stored.rebuilt == 1


def test_a_message_stored_whole_is_read_whole() -> None:
    stored = Stored(b"Subject: s\n\nshort\n")
    assert stored.segments == [stored.raw]
    assert stored.text() == "short\n"
    assert stored.rebuilt == 1


def test_messages_of_the_cpython_suite(cpython_messages: list[tuple[str, bytes]]) -> None:
    for name, raw in cpython_messages:
        for variant in (raw, raw.replace(b"\n", b"\r\n")):
            stored = Stored(variant)
            assert stored.text() == index_text_of(variant), name


# -- whatever the structure: the text of the rebuilt message, never an exception ------------

_LEAVES = st.sampled_from(
    [
        TEXT,
        ATTACHED,
        b"Content-Type: text/html; charset=utf-8\n\n<p>budget &amp; <b>plan</b></p>\n",
        b"Content-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: base64\n\n"
        + _b64("東京での会議は三時です".encode("iso-2022-jp") * 30),
        b"Content-Type: text/plain; name=n.txt\nContent-Transfer-Encoding: base64\n\n"
        + _b64(b"attached notes " * 40),
        b"Content-Type: image/png\nContent-Transfer-Encoding: base64\n\n" + _b64(PDF[:900]),
        b"Content-Type: application/octet-stream\n\n" + PDF[:600],
        b"Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain; "
        b"charset=gb2312\nContent-Transfer-Encoding: base64\n\n"
        + _b64("北京会议纪要".encode("gb2312") * 50),
        b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"
        + _b64(PDF[:700])
        + b"\n\n  \n",
        b"no header at all, body text\n",
    ]
)


@given(
    st.lists(_LEAVES, min_size=1, max_size=4),
    st.sampled_from([b"\n", b"\r\n"]),
    st.sampled_from([b"", b"preamble " + _b64(PDF[:400]) + b"\n", b"--B\n"]),
    st.integers(0, 3),
    st.sampled_from([None, b"--B--\n", b"\n--B\n", b"\n\n", b"--C\n"]),
)
@settings(max_examples=300, deadline=None)
def test_the_text_is_the_text_of_the_rebuilt_message(
    leaves: list[bytes], eol: bytes, preamble: bytes, cut: int, mangle: bytes | None
) -> None:
    raw = _mixed(*leaves, eol=eol, preamble=preamble)
    if mangle is not None:  # malformed MIME: a line put in the middle, the end cut off
        middle = len(raw) // (cut + 2)
        raw = raw[:middle] + mangle.replace(b"\n", eol) + raw[middle : len(raw) - cut * 7]
    stored = Stored(raw)
    assert stored.text() == index_text_of(raw)
