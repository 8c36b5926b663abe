"""The promise to Postfix when something fails: 451 unless the listener said 5xx itself."""

from __future__ import annotations

from collections.abc import Callable

from postfix_archiver.archive import Archive

from .capture_helpers import (
    FailingStore,
    Listener,
    Proxy,
    Recorder,
    archived,
    free_port,
    make_message,
)

IDENT = "NAME=client.example.net ADDR=192.0.2.7 IDENT=4RetrY1"


def test_listener_down_is_451_and_a_retry_archives_once(
    start_proxy: Callable[..., Proxy], archive: Archive
) -> None:
    port = free_port()  # nothing listens here yet
    proxy = start_proxy(f"127.0.0.1:{port}")
    content = make_message("retried")
    recipients = ["bob@example.com", "carol@example.com"]

    code, text = proxy.send(content, recipients=recipients, xforward=IDENT)

    assert (code, text) == (451, "4.3.0 Error: archiving failed, try again later")
    # archived before reinjection was tried: the copy is safe, the retry must not duplicate
    (first,) = archived(archive)
    assert len(first.envelopes) == 1

    listener = Listener(port=port).start()
    try:
        code, text = proxy.send(content, recipients=recipients, xforward=IDENT)
        assert code == 250, text
        assert len(listener.handler.messages) == 1
    finally:
        listener.stop()
    (again,) = archived(archive)
    assert again.row.id == first.row.id
    assert len(again.envelopes) == 1
    assert again.envelopes[0].envelope.queue_id == "4RetrY1"


def test_permanent_reject_at_data_is_passed_on(proxy: Proxy, listener: Listener) -> None:
    listener.handler.data_reply = "552 5.3.4 Message too big"

    code, text = proxy.send(make_message("too big"))

    assert (code, text) == (552, "5.3.4 Message too big")


def test_temporary_reject_at_data_is_451(proxy: Proxy, listener: Listener) -> None:
    listener.handler.data_reply = "451 4.3.0 later"

    code, text = proxy.send(make_message("later"))

    assert code == 451
    assert text.startswith("4.3.0")
    assert len(listener.handler.data_calls) == 1
    assert listener.handler.messages == []


def test_one_recipient_refused_is_451_and_nothing_is_sent(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    listener.handler.rcpt_replies["carol@example.com"] = "550 5.1.1 <carol@example.com>: unknown"

    code, _ = proxy.send(make_message("half"), recipients=["bob@example.com", "carol@example.com"])

    # a partial delivery now would be delivered twice on Postfix's retry
    assert code == 451
    assert listener.handler.data_calls == []  # DATA never sent
    assert len(archived(archive)) == 1


def test_every_recipient_refused_permanently_is_passed_on(proxy: Proxy, listener: Listener) -> None:
    for rcpt in ("bob@example.com", "carol@example.com"):
        listener.handler.rcpt_replies[rcpt] = f"550 5.1.1 <{rcpt}>: Recipient address rejected"

    code, text = proxy.send(
        make_message("nobody"), recipients=["bob@example.com", "carol@example.com"]
    )

    assert code == 550
    assert text == "5.1.1 <bob@example.com>: Recipient address rejected"
    assert listener.handler.data_calls == []


def test_refusals_mixing_4xx_and_5xx_are_temporary(proxy: Proxy, listener: Listener) -> None:
    listener.handler.rcpt_replies["bob@example.com"] = "550 5.1.1 unknown"
    listener.handler.rcpt_replies["carol@example.com"] = "450 4.2.0 mailbox busy"

    code, _ = proxy.send(make_message("mixed"), recipients=["bob@example.com", "carol@example.com"])

    assert code == 451
    assert listener.handler.data_calls == []


def test_archive_failure_is_451_and_nothing_is_reinjected(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    good = archive.store
    archive.store = FailingStore()
    try:
        code, text = proxy.send(make_message("disk full"))
    finally:
        archive.store = good

    assert (code, text) == (451, "4.3.0 Error: archiving failed, try again later")
    assert listener.handler.connections == 0
    assert listener.handler.data_calls == []
    assert archived(archive) == []
    # and the proxy keeps serving once the store is back
    code, text = proxy.send(make_message("disk fine"))
    assert code == 250, text


def test_a_pooled_connection_the_listener_closed_is_replaced(
    proxy: Proxy, listener: Listener, archive: Archive
) -> None:
    code, text = proxy.send(make_message("first"))
    assert code == 250, text
    first_handler = listener.handler

    listener.handler = Recorder()
    listener.restart()  # closes the connection the proxy keeps in its pool
    code, text = proxy.send(make_message("second"))

    assert code == 250, text
    assert len(first_handler.messages) == 1
    assert len(listener.handler.messages) == 1
    assert listener.handler.connections == 1
    assert len(archived(archive)) == 2


def test_listener_without_xforward_still_gets_the_message(proxy: Proxy, listener: Listener) -> None:
    listener.handler.advertise_xforward = False

    code, text = proxy.send(make_message("plain listener"), xforward=IDENT)

    assert code == 250, text
    assert listener.handler.messages[0].xforward == {}


def test_a_listener_without_pipelining_gets_commands_one_by_one(
    proxy: Proxy, listener: Listener
) -> None:
    """The same transaction, a reply awaited after each command: refusals mean the same."""
    listener.handler.advertise_pipelining = False

    code, text = proxy.send(make_message("one by one"), xforward=IDENT)
    assert code == 250, text
    assert listener.handler.messages[0].xforward["IDENT"] == "4RetrY1"

    listener.handler.rcpt_replies["carol@example.com"] = "550 5.1.1 unknown"
    code, _ = proxy.send(
        make_message("refused"), recipients=["bob@example.com", "carol@example.com"]
    )
    assert code == 451  # one refused, one accepted: try again later, nothing sent
    assert len(listener.handler.data_calls) == 1
