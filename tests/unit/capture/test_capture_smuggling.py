"""SMTP smuggling: only <CRLF>.<CRLF> ends a message, on the way in and on the way out.

A bare LF or CR before or after the dot must not end the DATA early; what follows it (here a
second transaction) is body text, archived and reinjected as such.
"""

from __future__ import annotations

import socket

import pytest

from postfix_archiver.archive import Archive

from .capture_helpers import Listener, Proxy, archived, crlf

SMUGGLED = (
    b"MAIL FROM:<ceo@bank.example>\r\n"
    b"RCPT TO:<victim@example.com>\r\n"
    b"DATA\r\n"
    b"From: ceo@bank.example\r\n"
    b"Subject: smuggled\r\n"
    b"\r\n"
    b"wire the money\r\n"
)

ENDINGS = {
    "bare LF dot bare LF": b"\n.\n",
    "bare CR dot CRLF": b"\r.\r\n",
    "bare LF dot CRLF": b"\n.\r\n",
    "CRLF dot bare LF": b"\r\n.\n",
    "CRLF dot bare CR": b"\r\n.\r",
}


HEAD = crlf("From: mallory@example.net\nTo: bob@example.com\nSubject: innocent\n\n")


def _unstuffed(data: bytes) -> bytes:
    """What the server makes of DATA lines (split at CRLF only): a leading dot removed."""
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in data.split(b"\r\n"))


def _replies(sock: socket.socket) -> list[bytes]:
    """Every reply line the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data.split(b"\r\n")[:-1]


def _smuggle(port: int, body: bytes) -> list[bytes]:
    """One transaction with ``body``, then QUIT; the reply lines after the greeting and EHLO."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"EHLO client.test\r\n"
            b"MAIL FROM:<mallory@example.net>\r\n"
            b"RCPT TO:<bob@example.com>\r\n"
            b"DATA\r\n" + HEAD + body + b"\r\n.\r\nQUIT\r\n"
        )
        lines = _replies(sock)
    # greeting and the multi-line EHLO reply are not what we look at
    after_ehlo = next(i for i, line in enumerate(lines) if line.startswith(b"250 ")) + 1
    return lines[after_ehlo:]


@pytest.mark.parametrize(
    "ending", [*ENDINGS.values(), b"".join(ENDINGS.values())], ids=[*ENDINGS, "all of them"]
)
def test_a_smuggled_second_transaction_stays_in_the_body(
    proxy: Proxy, listener: Listener, archive: Archive, ending: bytes
) -> None:
    body = b"hello" + ending + SMUGGLED + b"the end"

    replies = _smuggle(proxy.port, body)

    codes = [r[:3] for r in replies]
    # MAIL, RCPT, DATA, the final dot, QUIT: nothing answered the smuggled commands
    assert codes == [b"250", b"250", b"354", b"250", b"221"], replies
    (message,) = archived(archive)
    assert message.raw == _unstuffed(HEAD + body + b"\r\n")  # the smuggled text is data
    assert list(message.envelopes[0].envelope.recipients) == ["bob@example.com"]
    assert len(listener.handler.data_calls) == 1
    (got,) = listener.handler.messages
    assert got.sender == "mallory@example.net"
    assert got.recipients == ["bob@example.com"]
    assert b"MAIL FROM:<ceo@bank.example>" in got.content
    assert b"wire the money" in got.content
    assert got.content.endswith(b"the end\r\n")  # the reinjected copy did not end early


def test_smuggled_lone_dot_lines_are_reinjected_dot_stuffed(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    # a real lone-dot line inside the message (sent stuffed) must arrive as "." again
    content = crlf("Subject: dots\n\nbefore\n.\n..\nafter\n")
    code, text = proxy.send(content)

    assert code == 250, text
    assert archived(archive)[0].raw == content
    assert listener.handler.messages[0].content.endswith(content)
