"""The SMTP proxy on real sockets: archive first, then reinject, then 250.

The reinjection listener is a second real SMTP server (see ``conftest.Listener``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

from postfix_archiver.archive import Archive

from .capture_helpers import (
    Listener,
    Proxy,
    archived,
    crlf,
    header_block,
    home_config,
    make_message,
)

BCC = "dave@example.com"  # envelope only: Postfix dropped the Bcc header


def test_250_only_after_archived_and_reinjected_with_every_recipient(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    content = make_message()
    recipients = ["bob@example.com", "carol@example.com", BCC]

    code, text = proxy.send(content, "alice@example.com", recipients)

    # the reply is given only once both the archive and the listener hold the message
    assert code == 250, text
    stored = archived(archive)
    assert len(stored) == 1
    assert len(listener.handler.messages) == 1
    (message,) = stored
    assert text == f"2.0.0 Ok: archived as {message.row.id}, queued as 4ReInJ1"
    # the archived copy: byte for byte what the client sent, none of our headers
    assert message.raw == content
    assert b"x-archive" not in message.raw.lower()
    (envelope,) = message.envelopes
    assert envelope.envelope.sender == "alice@example.com"
    assert list(envelope.envelope.recipients) == recipients
    assert envelope.envelope.source == "smtp"
    # the reinjected copy: our two headers on top of the unchanged message, to everyone
    got = listener.handler.messages[0]
    assert got.sender == "alice@example.com"
    assert got.recipients == recipients
    assert got.content == (
        b"X-Archive-Status: Archived\r\nX-Archive-Id: %d\r\n" % message.row.id + content
    )


def test_forged_archive_headers_are_removed_from_the_reinjected_copy(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    forged = (
        "X-Archive-Status: Archived\n"
        "x-archive-id: 1\n"
        "X-ARCHIVE-STATUS: Skipped;\n"
        '\trule="folded forgery"\n'
        "X-Archive-Id:\n"
        " 99999\n"
        "X-Archived-By: some other tool\n"
    )
    content = make_message("forged", extra_headers=forged, body="X-Archive-Id: 7 in the body\n")

    code, text = proxy.send(content)

    assert code == 250, text
    (message,) = archived(archive)
    assert message.raw == content  # the archive keeps what arrived, forgeries included
    got = listener.handler.messages[0].content
    headers = header_block(got)
    assert re.findall(rb"(?im)^x-archive-[a-z]+:.*$", headers) == [
        b"X-Archive-Status: Archived\r",
        b"X-Archive-Id: %d\r" % message.row.id,
    ]
    assert b"folded forgery" not in got
    assert b"99999" not in got
    assert b"X-Archived-By: some other tool\r\n" in headers  # not ours: kept
    assert got.endswith(b"\r\n\r\nX-Archive-Id: 7 in the body\r\n")  # body untouched
    # everything else is the original, in order
    clean = make_message(
        "forged",
        extra_headers="X-Archived-By: some other tool\n",
        body="X-Archive-Id: 7 in the body\n",
    )
    assert got == b"X-Archive-Status: Archived\r\nX-Archive-Id: %d\r\n" % message.row.id + clean


def test_ehlo_advertises_the_extensions_postfix_uses(proxy: Proxy) -> None:
    with proxy.client() as smtp:
        code, _ = smtp.ehlo()
        assert code == 250
        features = smtp.esmtp_features
    for name in ("pipelining", "8bitmime", "smtputf8", "size", "xforward"):
        assert name in features, features
    assert int(features["size"]) == 10 * 1024 * 1024
    for attr in ("NAME", "ADDR", "PROTO", "HELO", "IDENT", "SOURCE"):
        assert attr in features["xforward"].split()


def test_xforward_reaches_the_listener_and_the_archived_envelope(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    # Postfix's smtp client sends the attributes in two commands
    xforward = [
        "NAME=client.example.net ADDR=192.0.2.7 PROTO=ESMTP HELO=helo.example.net",
        "IDENT=4QuEuE1d SOURCE=REMOTE",
    ]
    code, text = proxy.send(make_message("xforward"), xforward=xforward)

    assert code == 250, text
    got = listener.handler.messages[0]
    assert got.xforward == {
        "NAME": "client.example.net",
        "ADDR": "192.0.2.7",
        "PROTO": "ESMTP",
        "HELO": "helo.example.net",
        "IDENT": "4QuEuE1d",
        "SOURCE": "REMOTE",
    }
    env = archived(archive)[0].envelopes[0].envelope
    assert env.client_address == "192.0.2.7"
    assert env.client_name == "client.example.net"
    assert env.helo == "helo.example.net"
    assert env.queue_id == "4QuEuE1d"  # IDENT wins over the Received header


def test_xforward_unavailable_and_xtext_values(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    xforward = "NAME=[UNAVAILABLE] ADDR=2001:db8::7 HELO=odd+20helo IDENT=4AbC"
    code, text = proxy.send(make_message("unavailable"), xforward=xforward)

    assert code == 250, text
    # passed on as received (still xtext), so Postfix decodes them itself
    assert listener.handler.messages[0].xforward["HELO"] == "odd+20helo"
    env = archived(archive)[0].envelopes[0].envelope
    assert env.client_name is None
    assert env.client_address == "2001:db8::7"
    assert env.helo == "odd helo"


def test_queue_id_from_the_postfix_received_header_without_ident(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    code, text = proxy.send(make_message("no xforward"))

    assert code == 250, text
    env = archived(archive)[0].envelopes[0].envelope
    assert env.queue_id == "4XyzAB1cD2"  # "by mx.example.com (Postfix) with ESMTP id ..."
    # without XFORWARD the client is the one talking to us
    assert env.client_address == "127.0.0.1"
    assert env.helo == "client.test"
    assert listener.handler.messages[0].xforward == {}


def test_reinjection_reuses_one_connection(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    for i in range(5):
        # each message over its own client session, as Postfix's smtp client may do
        code, text = proxy.send(make_message(f"message {i}"))
        assert code == 250, text

    assert len(listener.handler.messages) == 5
    assert listener.handler.connections == 1
    assert listener.handler.ehlos == 1
    assert len(archived(archive)) == 5


def test_several_messages_in_one_session(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    from .capture_helpers import transaction

    with proxy.client() as smtp:
        for i in range(3):
            code, text = transaction(
                smtp, make_message(f"session {i}"), "alice@example.com", [f"u{i}@example.com"]
            )
            assert code == 250, text
        smtp.quit()

    assert [m.recipients for m in listener.handler.messages] == [
        ["u0@example.com"],
        ["u1@example.com"],
        ["u2@example.com"],
    ]
    assert [list(s.envelopes[0].envelope.recipients) for s in archived(archive)] == [
        ["u0@example.com"],
        ["u1@example.com"],
        ["u2@example.com"],
    ]


def _read_reply(sock: socket.socket, buf: bytearray) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    lines: list[bytes] = []
    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed after {lines!r}")
            buf += chunk
        line, _, rest = bytes(buf).partition(b"\r\n")
        buf[:] = rest
        lines.append(line)
        if line[3:4] != b"-":
            return b"\r\n".join(lines)


def test_pipelining(proxy: Proxy, listener: Listener, archive: Archive) -> None:
    content = make_message("pipelined")
    buf = bytearray()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        assert _read_reply(sock, buf).startswith(b"220")
        sock.sendall(b"EHLO client.test\r\n")
        assert b"PIPELINING" in _read_reply(sock, buf)
        sock.sendall(
            b"MAIL FROM:<alice@example.com>\r\n"
            b"RCPT TO:<bob@example.com>\r\n"
            b"RCPT TO:<carol@example.com>\r\n"
            b"DATA\r\n"
        )
        replies = [_read_reply(sock, buf)[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"250", b"354"]
        # the message, the final dot and QUIT in one write, too
        sock.sendall(content + b".\r\nQUIT\r\n")
        assert _read_reply(sock, buf).startswith(b"250 2.0.0 Ok: archived as")
        assert _read_reply(sock, buf).startswith(b"221")

    (message,) = archived(archive)
    assert message.raw == content
    assert list(message.envelopes[0].envelope.recipients) == [
        "bob@example.com",
        "carol@example.com",
    ]
    assert listener.handler.messages[0].recipients == ["bob@example.com", "carol@example.com"]


def test_8bit_and_smtputf8_mail_passes_unchanged(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    content = make_message("Grüße", body="Ünïcödé body, 8bit\n")
    with proxy.client() as smtp:
        smtp.ehlo()
        code, _ = smtp.mail("jörg@example.com", ["SMTPUTF8", "BODY=8BITMIME"])
        assert code == 250
        code, _ = smtp.rcpt("zoë@example.com")
        assert code == 250
        code, text = smtp.data(content)
        assert code == 250, text
        smtp.quit()

    (message,) = archived(archive)
    assert message.raw == content
    assert message.envelopes[0].envelope.sender == "jörg@example.com"
    got = listener.handler.messages[0]
    assert got.sender == "jörg@example.com"
    assert got.recipients == ["zoë@example.com"]
    assert "SMTPUTF8" in got.mail_options
    assert got.content.endswith(content)


def test_lf_only_lines_in_crlf_session_are_archived_as_sent(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    # a broken client: bare LF inside CRLF lines is data, archived byte for byte
    content = crlf("Subject: mixed\n\n") + b"line one\nline two\r\n"
    code, text = proxy.send(content)

    assert code == 250, text
    assert archived(archive)[0].raw == content
    assert b"line one" in listener.handler.messages[0].content


def test_null_sender_is_recorded_as_empty_and_reinjected_as_null(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    bounce = make_message("Undelivered Mail Returned to Sender", sender="MAILER-DAEMON@example.com")

    code, text = proxy.send(bounce, "", ["alice@example.com"])

    assert code == 250, text
    assert archived(archive)[0].envelopes[0].envelope.sender == ""
    assert listener.handler.messages[0].sender == ""


def test_null_sender_rule_applies_in_the_proxy(
    tmp_path: Path, start_proxy: Callable[..., Proxy], listener: Listener
) -> None:
    rules = '[[rules]]\nname = "bounces"\nnull_sender = true\naction = "skip"\n'
    config = home_config(tmp_path / "bounce-home", rules)
    with Archive(config) as archive:
        proxy = start_proxy(listener.address, config=config, archive=archive)
        try:
            code, text = proxy.send(make_message("bounce"), "", ["alice@example.com"])
        finally:
            proxy.close()
        assert code == 250, text
        assert archived(archive) == []
    assert listener.handler.messages[0].content.startswith(
        b"X-Archive-Status: Skipped; rule=bounces\r\n"
    )


def test_concurrent_sessions_each_get_their_own_reply(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[int, str]:
        return proxy.send(make_message(f"parallel {i}"), recipients=[f"u{i}@example.com"])

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))

    assert [code for code, _ in results] == [250] * 6, results
    stored = archived(archive)
    assert len(stored) == 6
    # each reply names the archive id of its own message
    by_rcpt = {s.envelopes[0].envelope.recipients[0]: s.row.id for s in stored}
    for i, (_, text) in enumerate(results):
        assert text.startswith(f"2.0.0 Ok: archived as {by_rcpt[f'u{i}@example.com']},")
    assert sorted(m.recipients[0] for m in listener.handler.messages) == sorted(by_rcpt)
    assert listener.handler.connections <= 6


def test_a_slow_answer_is_given_not_cut_off_by_the_idle_timeout(
    start_proxy: Callable[..., Proxy], listener: Listener, archive: Archive
) -> None:
    """The session's idle timeout is the client's: while the proxy archives and reinjects, the
    client is waiting on us, not idle. Before, the timer ran from the DATA command through the
    answer and hung up on a message already archived and reinjected (Postfix would retry it:
    a second delivery); a loaded machine got there with a big message and a slow listener."""
    proxy = start_proxy(listener.address)
    proxy.server.timeout = 1.0  # for the session below
    listener.handler.data_delay = 2.5  # the listener answers well after the idle timeout

    code, text = proxy.send(make_message())

    assert code == 250, text
    assert len(archived(archive)) == 1
    assert len(listener.handler.messages) == 1
