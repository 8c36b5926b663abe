"""Reinjection against a listener that misbehaves the ways Postfix's smtpd can.

The listener is aiosmtpd's stock ``SMTP`` (not our ``ArchiverSMTP``), taught only what
Postfix's smtpd does that matters here: PIPELINING and XFORWARD in the EHLO reply, and
``smtpd_timeout``, which answers an idle client ``421 4.4.2 ... timeout exceeded`` and hangs
up. Both clients are driven directly (the proxy's pooled ``Reinjector``, the pipe filter's
``send_sync``) and, for what the proxy receives itself, through a running proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from postfix_archiver.archive import Archive
from postfix_archiver.capture.outgoing import Outgoing, send_sync
from postfix_archiver.capture.reinject import Reinjector
from postfix_archiver.config import parse_config
from postfix_archiver.errors import ConfigError, TemporaryFailure

from .capture_helpers import XFORWARD_ADVERTISED, Proxy, archived, free_port, make_message

T = TypeVar("T")

TIMEOUT_421 = b"421 4.4.2 listener.test Error: timeout exceeded\r\n"


@dataclass
class Delivered:
    sender: str
    recipients: list[str]
    mail_options: list[str]
    xforward: list[str]


@dataclass
class Handler:
    """What the listener was given, and how it behaves when a client idles.

    ``on_idle``: "421" (Postfix: 421, then hang up), "eof" (aiosmtpd: hang up), "announce"
    (421 but the connection stays open), "lazy" (the 421 comes as the reply to the next
    command: the timer fired just as the client wrote). ``refuse``: every connection is
    answered 421 at its first command (a listener shutting down).
    """

    on_idle: str = "421"
    refuse: bool = False
    smtputf8: bool = True
    ehlos: int = 0
    quits: int = 0
    closed: int = 0
    commands_after_timeout: int = 0
    delivered: list[Delivered] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        server.greeted = True
        self.ehlos += 1
        if not self.smtputf8:  # Postfix with smtputf8_enable = no
            responses = [r for r in responses if r[4:] != "SMTPUTF8"]
        return [*responses[:-1], "250-PIPELINING", f"250-{XFORWARD_ADVERTISED}", responses[-1]]

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        assert isinstance(server, PostfixLikeSMTP)
        self.delivered.append(
            Delivered(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                server.xforward,
            )
        )
        server.xforward = []
        return "250 2.0.0 Ok: queued as 4ReInJ"


class PostfixLikeSMTP(SMTP):
    def __init__(self, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.handler = handler
        self.greeted = False
        self.timed_out = False
        self.hung_up = False
        self.xforward: list[str] = []

    def _timeout_cb(self) -> None:
        """aiosmtpd's idle timer, which on its own closes the connection without a word."""
        assert isinstance(self.transport, asyncio.Transport)
        self.timed_out = True
        if self.handler.on_idle in ("421", "announce"):
            self.transport.write(TIMEOUT_421)
        if self.handler.on_idle in ("421", "eof"):
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self.greeted:  # not the controller's own probe at start
            self.handler.closed += 1
        super().connection_lost(error)

    async def _hang_up(self) -> bool:
        """The listener's side of a first command it will not take."""
        if self.hung_up:
            return True
        if self.timed_out:
            self.handler.commands_after_timeout += 1
        if self.handler.refuse or (self.timed_out and self.handler.on_idle == "lazy"):
            assert self.transport is not None
            self.hung_up = True
            await self.push("421 4.4.2 listener.test Error: timeout exceeded")
            self.transport.close()
            return True
        return False

    async def smtp_XFORWARD(self, arg: str) -> None:
        if not await self._hang_up():
            self.xforward.append(arg)
            await self.push("250 2.0.0 Ok")

    async def smtp_MAIL(self, arg: str) -> None:
        if not await self._hang_up():
            await super().smtp_MAIL(arg)


class PostfixLikeController(Controller):
    def factory(self) -> SMTP:
        return PostfixLikeSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def start_listener() -> Iterator[Callable[..., tuple[str, Handler]]]:
    started: list[Controller] = []

    def start(idle_timeout: float = 0.5, **options: Any) -> tuple[str, Handler]:
        handler = Handler(**options)
        controller = PostfixLikeController(
            handler, hostname="127.0.0.1", port=free_port(), timeout=idle_timeout
        )
        controller.start()
        started.append(controller)
        return f"127.0.0.1:{controller.port}", handler

    try:
        yield start
    finally:
        for controller in started:
            controller.stop()


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await scenario()

    return asyncio.run(main())


def outgoing(n: int = 1, **kwargs: Any) -> Outgoing:
    values: dict[str, Any] = {
        "sender": "alice@example.com",
        "recipients": ["bob@example.org"],
        "content": make_message(f"message {n}"),
        "xforward": {"NAME": "client.example.net", "ADDR": "192.0.2.7", "IDENT": f"4Id{n}"},
    }
    values.update(kwargs)
    return Outgoing(**values)


async def send_after_idle(reinjector: Reinjector, pause: float, first: int = 1) -> list[str]:
    """``first`` messages at once (a pool of that many), a quiet spell, then as many again."""
    replies = await asyncio.gather(*(reinjector.send(outgoing(n)) for n in range(first)))
    await asyncio.sleep(pause)
    replies += await asyncio.gather(*(reinjector.send(outgoing(first + n)) for n in range(first)))
    return replies


# -- item 2: a pooled connection the listener gave up on -------------------------------------


@pytest.mark.parametrize("on_idle", ["421", "eof", "announce"])
def test_pooled_connections_the_listener_timed_out_are_replaced(
    start_listener: Callable[..., tuple[str, Handler]], on_idle: str
) -> None:
    address, listener = start_listener(idle_timeout=0.3, on_idle=on_idle)

    async def scenario() -> list[str]:
        reinjector = Reinjector(address, timeout=5)
        try:
            return await send_after_idle(reinjector, pause=1.0, first=3)
        finally:
            await reinjector.close()

    replies = run(scenario)

    assert all(r.startswith("250 ") for r in replies)
    assert len(listener.delivered) == 6
    assert listener.ehlos == 6  # the timed-out connections were replaced, not used
    # nothing was written to a connection that had said 421 or hung up
    assert listener.commands_after_timeout == 0


def test_a_421_as_first_reply_on_a_reused_connection_is_retried_fresh(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    """The listener's timer fires just as the client writes: the connection looked alive."""
    address, listener = start_listener(idle_timeout=0.3, on_idle="lazy")

    async def scenario() -> list[str]:
        reinjector = Reinjector(address, timeout=5)
        try:
            return await send_after_idle(reinjector, pause=0.8, first=2)
        finally:
            await reinjector.close()

    replies = run(scenario)

    assert all(r.startswith("250 ") for r in replies)
    assert len(listener.delivered) == 4
    assert listener.commands_after_timeout == 2  # both stale connections answered 421
    assert listener.ehlos == 4
    # each message exactly once, each with its own XFORWARD
    idents = sorted(x for d in listener.delivered for x in d.xforward if "IDENT" in x)
    assert idents == [f"NAME=client.example.net ADDR=192.0.2.7 IDENT=4Id{n}" for n in range(4)]


def test_a_421_on_a_fresh_connection_is_a_temporary_failure(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    address, listener = start_listener(refuse=True)

    async def scenario() -> None:
        reinjector = Reinjector(address, timeout=5)
        try:
            await reinjector.send(outgoing())
        finally:
            await reinjector.close()

    with pytest.raises(TemporaryFailure, match=r"421 4\.4\.2"):
        run(scenario)
    assert listener.ehlos == 1  # no retry: a fresh connection's 421 is the listener's answer
    assert listener.delivered == []


def test_a_reused_connection_is_retried_once_only(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    address, listener = start_listener(idle_timeout=0.3, on_idle="lazy")

    async def scenario() -> None:
        reinjector = Reinjector(address, timeout=5)
        try:
            await reinjector.send(outgoing(1))
            await asyncio.sleep(0.8)
            listener.refuse = True  # and now it is shutting down
            await reinjector.send(outgoing(2))
        finally:
            await reinjector.close()

    with pytest.raises(TemporaryFailure, match=r"421 4\.4\.2"):
        run(scenario)
    assert listener.ehlos == 2
    assert len(listener.delivered) == 1


def test_pooled_connections_idle_past_the_limit_are_closed_first(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    """Closed by us, with QUIT, before the listener's own timeout says 421."""
    address, listener = start_listener(idle_timeout=2.0)

    async def scenario() -> list[str]:
        reinjector = Reinjector(address, timeout=5, idle_limit=0.3)
        try:
            replies = await asyncio.gather(*(reinjector.send(outgoing(n)) for n in range(3)))
            await asyncio.sleep(1.0)
            assert listener.quits == 3
            assert listener.closed == 3
            replies.append(await reinjector.send(outgoing(3)))
            return replies
        finally:
            await reinjector.close()

    replies = run(scenario)

    assert all(r.startswith("250 ") for r in replies)
    assert len(listener.delivered) == 4
    assert listener.ehlos == 4
    assert listener.commands_after_timeout == 0


def test_a_pooled_connection_within_the_limit_is_reused(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    address, listener = start_listener(idle_timeout=5.0)

    async def scenario() -> None:
        reinjector = Reinjector(address, timeout=5, idle_limit=2.0)
        try:
            for n in range(3):
                await reinjector.send(outgoing(n))
                await asyncio.sleep(0.2)
        finally:
            await reinjector.close()

    run(scenario)
    assert listener.ehlos == 1
    assert len(listener.delivered) == 3


def test_the_idle_limit_is_a_config_key() -> None:
    assert parse_config("").smtp.reinject_idle < 300  # below Postfix's smtpd_timeout
    assert parse_config("[smtp]\nreinject_idle = 20\n").smtp.reinject_idle == 20.0
    assert parse_config('[smtp]\nreinject_idle = "2m"\n').smtp.reinject_idle == 120.0
    with pytest.raises(ConfigError, match=r"archiver.toml:2: smtp.reinject_idle: must be between"):
        parse_config("[smtp]\nreinject_idle = 0\n", "archiver.toml")


# -- item 3: 8-bit envelopes without SMTPUTF8 ------------------------------------------------

# as aiosmtpd (and so the proxy) holds what arrived: UTF-8, undecodable bytes surrogate-escaped
UTF8_SENDER = "b\u00f6b@example.org"  # böb, UTF-8 on the wire
LATIN1_SENDER = b"b\xf6b@example.org".decode("utf-8", "surrogateescape")
UTF8_RCPT = "zo\u00eb@example.org"


def test_8bit_addresses_are_reinjected_as_they_came_without_smtputf8(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    address, listener = start_listener(smtputf8=False)
    msg = outgoing(sender=UTF8_SENDER, recipients=[UTF8_RCPT, "bob@example.org"])
    latin1 = outgoing(sender=LATIN1_SENDER)

    async def scenario() -> list[str]:
        reinjector = Reinjector(address, timeout=5)
        try:
            return [await reinjector.send(msg), await reinjector.send(latin1)]
        finally:
            await reinjector.close()

    run(scenario)

    first, second = listener.delivered
    assert (first.sender, first.recipients) == (UTF8_SENDER, [UTF8_RCPT, "bob@example.org"])
    assert first.mail_options == []  # no SMTPUTF8 claimed that the sender did not make
    assert second.sender == LATIN1_SENDER  # the very bytes


def test_8bit_addresses_from_argv_are_sent_as_they_came(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    """The pipe filter: argv is decoded UTF-8 with surrogateescape, as Python does."""
    address, listener = start_listener(smtputf8=False)

    send_sync(address, outgoing(sender=UTF8_SENDER, recipients=[UTF8_RCPT]), timeout=5)
    send_sync(address, outgoing(sender=LATIN1_SENDER, recipients=[LATIN1_SENDER]), timeout=5)

    first, second = listener.delivered
    assert (first.sender, first.recipients, first.mail_options) == (UTF8_SENDER, [UTF8_RCPT], [])
    assert (second.sender, second.recipients) == (LATIN1_SENDER, [LATIN1_SENDER])


def send_both_ways(address: str, *messages: Outgoing) -> None:
    """Each message by the pipe filter's sender, then by the proxy's pooled client."""
    for msg in messages:
        send_sync(address, msg, timeout=5)

    async def scenario() -> None:
        reinjector = Reinjector(address, timeout=5)
        try:
            for msg in messages:
                await reinjector.send(msg)
        finally:
            await reinjector.close()

    run(scenario)


def test_invalid_utf8_is_not_sent_as_smtputf8(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    """Pipe and proxy alike: SMTPUTF8 asked for when the addresses are UTF-8 and the listener
    offers it, never for bytes that are no UTF-8."""
    address, listener = start_listener(smtputf8=True)

    send_both_ways(address, outgoing(sender=UTF8_SENDER), outgoing(sender=LATIN1_SENDER))

    got = [(d.sender, d.mail_options) for d in listener.delivered]
    assert got == [(UTF8_SENDER, ["SMTPUTF8"]), (LATIN1_SENDER, [])] * 2


RAW_XFORWARD = {
    "NAME": "h\u00f6st.example.net",
    "HELO": b"h\xe9lo".decode("utf-8", "surrogateescape"),
    "IDENT": "4Raw+zz=1",  # a '+' that is no xtext escape
    "ADDR": "192.0.2.7",
}
XTEXT_XFORWARD = "NAME=h+C3+B6st.example.net ADDR=192.0.2.7 HELO=h+E9lo IDENT=4Raw+2Bzz+3D1"


def test_raw_8bit_xforward_values_are_sent_as_xtext(
    start_listener: Callable[..., tuple[str, Handler]],
) -> None:
    address, listener = start_listener()

    async def scenario() -> str:
        reinjector = Reinjector(address, timeout=5)
        try:
            return await reinjector.send(outgoing(xforward=RAW_XFORWARD))
        finally:
            await reinjector.close()

    run(scenario)
    send_sync(address, outgoing(xforward=RAW_XFORWARD), timeout=5)

    assert [d.xforward for d in listener.delivered] == [[XTEXT_XFORWARD]] * 2


# -- through the proxy: what a client other than Postfix may send it -------------------------


@contextlib.contextmanager
def proxy_to(address: str, archive: Archive) -> Iterator[Proxy]:
    proxy = Proxy(archive, parse_config(""), address)
    try:
        yield proxy
    finally:
        proxy.close()


def raw_transaction(proxy: Proxy, commands: list[bytes]) -> tuple[int, str]:
    with contextlib.closing(proxy.client()) as smtp:
        smtp.ehlo()
        for command in commands:
            smtp.send(command + b"\r\n")
            code, text = smtp.getreply()
            assert code == 250, (command, code, text)
        code, text = smtp.data(make_message("8-bit"))
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
    return code, text.decode()


def test_proxy_passes_an_8bit_sender_without_smtputf8_on(
    start_listener: Callable[..., tuple[str, Handler]], archive: Archive
) -> None:
    address, listener = start_listener(smtputf8=False)

    with proxy_to(address, archive) as proxy:
        code, text = raw_transaction(
            proxy, [b"MAIL FROM:<b\xc3\xb6b@example.org>", b"RCPT TO:<zo\xc3\xab@example.org>"]
        )

    assert code == 250, text
    [got] = listener.delivered
    assert (got.sender, got.recipients, got.mail_options) == (UTF8_SENDER, [UTF8_RCPT], [])
    [stored] = archived(archive)
    [envelope] = stored.envelopes
    assert envelope.envelope.sender == UTF8_SENDER


def test_proxy_passes_a_raw_8bit_xforward_on_as_xtext(
    start_listener: Callable[..., tuple[str, Handler]], archive: Archive
) -> None:
    address, listener = start_listener()

    with proxy_to(address, archive) as proxy:
        code, text = raw_transaction(
            proxy,
            [
                b"XFORWARD NAME=h\xc3\xb6st.example.net ADDR=192.0.2.7",
                b"XFORWARD HELO=h\xe9lo IDENT=4Raw+zz=1",
                b"MAIL FROM:<alice@example.com>",
                b"RCPT TO:<bob@example.org>",
            ],
        )

    assert code == 250, text
    [got] = listener.delivered
    assert got.xforward == [XTEXT_XFORWARD]
    [stored] = archived(archive)
    assert stored.envelopes[0].envelope.client_address == "192.0.2.7"


def test_proxy_archives_a_latin1_sender_and_reinjects_its_bytes(
    start_listener: Callable[..., tuple[str, Handler]], archive: Archive
) -> None:
    """Bytes that are not UTF-8 in the envelope: the reinjected copy keeps them, the archived
    envelope reads them as Latin-1 (it once failed to store them, and the mail was deferred
    until it bounced)."""
    address, listener = start_listener(smtputf8=False)

    with proxy_to(address, archive) as proxy:
        code, text = raw_transaction(
            proxy, [b"MAIL FROM:<b\xf6b@example.org>", b"RCPT TO:<zo\xeb@example.org>"]
        )

    assert code == 250, text
    [got] = listener.delivered
    assert got.sender == LATIN1_SENDER
    [stored] = archived(archive)
    [envelope] = stored.envelopes
    assert envelope.envelope.sender == "böb@example.org"
    assert envelope.envelope.recipients == ("zoë@example.org",)
