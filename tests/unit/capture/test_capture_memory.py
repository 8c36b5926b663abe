"""Big mail in the proxy: fewer copies, one big message at a time, the bytes unchanged.

DATA is unstuffed block by block as it is read and written back for reinjection a piece at
a time; a message past ``BIG_MESSAGE`` bytes waits, unread, for its share of the bytes in
flight (the size limit's worth). The figures are in ``bench/memory.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import random
import socket
import threading
import time
from collections.abc import Callable
from threading import Thread
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.archive import Archive
from postfix_archiver.capture.reinject import data_block, data_chunks
from postfix_archiver.capture.smtp import BIG_MESSAGE, unstuff

from .capture_helpers import Listener, Proxy, Recorder, archived, crlf

_BYTES = st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b"\r\n.", b".."]))


def _unstuffed_whole(data: bytes) -> bytes:
    """How the whole DATA was unstuffed before: every dot after CR LF, and a leading one."""
    content = data.replace(b"\r\n.", b"\r\n")
    return content[1:] if content.startswith(b".") else content


@given(_BYTES, st.lists(st.integers(0, 40), max_size=8))
@settings(max_examples=500, deadline=None)
def test_unstuffing_block_by_block_is_unstuffing_the_whole(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    edges = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    out = b""
    for start, end in itertools.pairwise(edges):
        # the two bytes before the block, or the start of a line at the start of the data
        out += unstuff(data[start:end], data[max(0, start - 2) : start] if start else b"\r\n")
    assert out == _unstuffed_whole(data)


@given(_BYTES, st.integers(1, 9))
@settings(max_examples=500, deadline=None)
def test_the_data_block_written_in_pieces_is_the_same_bytes(pieces: list[bytes], size: int) -> None:
    content = b"".join(pieces)
    chunks = list(data_chunks(content, size))
    assert b"".join(chunks) == data_block(content)
    # no CR LF is cut in two, and a piece starts a line (a dot there is stuffed)
    assert all(not c.endswith(b"\r") for c in chunks[:-1])


def _big_message(subject: str, size: int, seed: int) -> bytes:
    """CRLF text with dot-leading lines everywhere (stuffed on the wire) and an attachment."""
    rng = random.Random(seed)
    lines = [b"." * rng.randint(0, 3) + b"line %d" % i for i in range(size // 2 // 14)]
    attachment = base64.encodebytes(rng.randbytes(size // 2 * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        crlf(
            f"From: alice@example.com\nTo: bob@example.com\nSubject: {subject}\n"
            'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        )
        + b"\r\n".join(lines)
        + crlf(
            '\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="a"\n'
            "Content-Transfer-Encoding: base64\n\n"
        )
        + attachment
        + b"--b--\r\n"
    )


def _send_in_odd_pieces(port: int, content: bytes, seed: int) -> bytes:
    """One transaction over a raw socket, the DATA written in pieces of random sizes (so the
    proxy reads blocks cut anywhere, between a CR LF and its dot too); the final reply."""
    wire = content.replace(b"\r\n.", b"\r\n..")
    if wire.startswith(b"."):
        wire = b"." + wire
    wire += b".\r\n"
    rng = random.Random(seed)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")

        def reply() -> bytes:
            while (line := reader.readline())[3:4] == b"-":
                pass
            return line

        reply()
        for command in (b"EHLO client.test", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@x.org>"):
            sock.sendall(command + b"\r\n")
            assert reply().startswith(b"250")
        sock.sendall(b"DATA\r\n")
        assert reply().startswith(b"354")
        pos = 0
        while pos < len(wire):
            step = rng.choice([1, 2, 3, 4097, 65536, 1 << 20])
            sock.sendall(wire[pos : pos + step])
            pos += step
        return reply()


def test_a_big_message_is_archived_and_reinjected_byte_exact(
    start_proxy: Callable[..., Proxy], listener: Listener, archive: Archive
) -> None:
    content = _big_message("big", BIG_MESSAGE + (1 << 20), seed=1)
    assert len(content) > BIG_MESSAGE
    proxy = start_proxy(listener.address, max_size=16 << 20)

    reply = _send_in_odd_pieces(proxy.port, content, seed=2)

    assert reply.startswith(b"250"), reply
    (stored,) = archived(archive)
    assert stored.raw == content
    (got,) = listener.handler.messages
    # the reinjected copy: our X-Archive-* fields on top of the very same bytes
    head, sep, rest = got.content.partition(b"From: alice@example.com\r\n")
    assert sep
    assert rest == content.removeprefix(sep)
    assert all(line.startswith(b"X-Archive-") for line in head.split(b"\r\n")[:-1])


class _Timeline(Recorder):
    """The reinjection listener noting when each message's DATA begins and is answered; the
    one called "first" is held until ``release`` is set, another DATA begins, or ``hold``
    seconds pass."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.hold = hold

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        subject = bytes(envelope.original_content).split(b"Subject: ")[1].split(b"\r\n")[0]
        self.events.append(("begin", subject.decode()))
        self.data_started.set()
        deadline = time.monotonic() + self.hold
        while subject == b"first" and len(self.events) == 1 and not self.release.is_set():
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        reply = await super().handle_DATA(server, session, envelope)
        self.events.append(("end", subject.decode()))
        return reply


def _send_first(proxy: Proxy, content: bytes, replies: dict[str, tuple[int, str]]) -> Thread:
    sending = threading.Thread(target=lambda: replies.update(first=proxy.send(content)))
    sending.start()
    return sending


def test_a_big_message_waits_while_another_is_in_flight(
    start_proxy: Callable[..., Proxy], archive: Archive
) -> None:
    """Two big messages at once: the second is read on only once the first is answered, so
    the proxy holds one, not both (before, both were read and archived side by side, and the
    second reached the listener while the first was held there)."""
    timeline = _Timeline(hold=4.0)
    listener = Listener(timeline).start()
    try:
        proxy = start_proxy(listener.address, max_size=BIG_MESSAGE * 2)
        first = _big_message("first", BIG_MESSAGE + (512 << 10), seed=3)
        second = _big_message("second", BIG_MESSAGE + (512 << 10), seed=4)
        assert len(first) > BIG_MESSAGE
        replies: dict[str, tuple[int, str]] = {}
        sending = _send_first(proxy, first, replies)
        assert timeline.data_started.wait(20)  # the first is with the listener now
        replies["second"] = proxy.send(second)
        sending.join(30)
    finally:
        listener.stop()

    assert [code for code, _ in replies.values()] == [250, 250], replies
    assert timeline.events == [
        ("begin", "first"),
        ("end", "first"),
        ("begin", "second"),
        ("end", "second"),
    ]
    assert sorted(s.raw for s in archived(archive)) == sorted([first, second])


def test_a_big_message_given_up_while_waiting_does_not_hold_up_the_next(
    start_proxy: Callable[..., Proxy], archive: Archive
) -> None:
    """A session that times out while its big message waits for its turn gives the turn
    back: the next big message goes through once the one in flight is done."""
    timeline = _Timeline(hold=30.0)
    listener = Listener(timeline).start()
    try:
        proxy = start_proxy(listener.address, max_size=BIG_MESSAGE * 2)
        first = _big_message("first", BIG_MESSAGE + (512 << 10), seed=5)
        third = _big_message("third", BIG_MESSAGE + (512 << 10), seed=6)
        replies: dict[str, tuple[int, str]] = {}
        sending = _send_first(proxy, first, replies)
        assert timeline.data_started.wait(20)
        proxy.server.timeout = 1.0  # for the session that gives up
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as quitter:
            quitter.sendall(
                b"EHLO q.test\r\nMAIL FROM:<q@example.com>\r\nRCPT TO:<b@x.org>\r\nDATA\r\n"
            )
            with contextlib.suppress(OSError):  # the proxy stops reading: past its turn
                quitter.settimeout(3)
                quitter.sendall((b"x" * 998 + b"\r\n") * ((BIG_MESSAGE + (1 << 20)) // 1000))
            # its session timed out meanwhile: closed while it waited
            quitter.settimeout(10)
            while quitter.recv(65536):
                pass
        proxy.server.timeout = 10.0
        timeline.release.set()
        sending.join(30)
        replies["third"] = proxy.send(third)
    finally:
        listener.stop()

    assert [code for code, _ in replies.values()] == [250, 250], replies
    assert sorted(s.raw for s in archived(archive)) == sorted([first, third])


@pytest.mark.parametrize("size", [0, 1, 5])
def test_small_data_blocks_are_written_at_once(size: int) -> None:
    content = b"x" * size
    assert list(data_chunks(content)) == [data_block(content)]
