"""Sink mode (BCC/journal copies): archived, answered 250, never reinjected."""

from __future__ import annotations

from collections.abc import Callable

from postfix_archiver.archive import Archive

from .capture_helpers import (
    Listener,
    Proxy,
    ServeProcess,
    archived,
    archived_at,
    make_message,
    transaction,
)

JOURNAL_HEADERS = (
    "X-Original-To: carol@example.com\n"
    "Delivered-To: dave@example.com\n"
    "Delivered-To: ARCHIVE@example.com\n"
    "X-Envelope-To: <erin@example.com>, frank@example.com\n"
)


def test_sink_archives_with_header_recipients_and_reinjects_nothing(
    start_proxy: Callable[..., Proxy], listener: Listener, archive: Archive
) -> None:
    proxy = start_proxy(None)
    content = make_message("journal copy", extra_headers=JOURNAL_HEADERS)

    code, text = proxy.send(content, "alice@example.com", ["archive@example.com"])

    assert (code, text) == (250, "2.0.0 Ok: archived")
    (message,) = archived(archive)
    assert message.raw == content
    envelope = message.envelopes[0].envelope
    assert envelope.source == "sink"
    assert list(envelope.recipients) == [
        "archive@example.com",
        "carol@example.com",
        "dave@example.com",
        "erin@example.com",
        "frank@example.com",
    ]
    assert listener.handler.connections == 0


def test_sink_offers_xforward_and_records_postfix_queue_id(
    start_proxy: Callable[..., Proxy], archive: Archive
) -> None:
    """Postfix's smtp client sends XFORWARD to a sink that offers it: the copy's queue id (the
    message's own, for always_bcc) is recorded and starts the sink's log line."""
    proxy = start_proxy(None)
    with proxy.client() as smtp:
        smtp.ehlo()
        assert "xforward" in smtp.esmtp_features
        assert "pipelining" in smtp.esmtp_features
        code, text = transaction(
            smtp,
            make_message("bcc copy"),
            "alice@example.com",
            ["archive@example.com"],
            xforward=["NAME=mx.example.net ADDR=192.0.2.7", "IDENT=4SiNkQ1d"],
        )
    assert code == 250, text
    (message,) = archived(archive)
    envelope = message.envelopes[0].envelope
    assert envelope.queue_id == "4SiNkQ1d"
    assert envelope.client_address == "192.0.2.7"


def test_serve_sink_ignores_the_reinjection_address(
    start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    server = start_serve("--sink", "--reinject", listener.address)
    content = make_message("sink process", extra_headers="X-Original-To: carol@example.com\n")

    code, text = server.send(content, "alice@example.com", ["archive@example.com"])

    assert (code, text) == (250, "2.0.0 Ok: archived")
    (message,) = archived_at(server.home)
    assert message.raw == content
    assert list(message.envelopes[0].envelope.recipients) == [
        "archive@example.com",
        "carol@example.com",
    ]
    assert listener.handler.connections == 0
