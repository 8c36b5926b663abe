"""The after-queue SMTP proxy (and sink) on aiosmtpd.

The protocol state machine is aiosmtpd's; it is extended only with XFORWARD (so the real
client reaches the reinjection listener and Postfix's logs) and PIPELINING in the EHLO
reply. What happens to a message is the pipeline's business (``handle_DATA``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from . import replies
from .pipeline import CapturePipeline, Incoming
from .reinject import XFORWARD_ATTRS

log = logging.getLogger("postfix_archiver.smtp")


# <dot-atom-local@domain> and the rest of the line (the parameters)
_SIMPLE_PATH = re.compile(
    r"\s*<(([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>(.*)\Z",
    re.S,
)


class ArchiverEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.xforward: dict[str, str] = {}


class ArchiverSMTP(SMTP):
    """aiosmtpd's SMTP with XFORWARD, and line limits that never bounce real mail."""

    # Postfix folds at 998; a longer line from a broken sender must not become a 500
    line_length_limit = 1 << 20

    on_lost: Callable[[ArchiverSMTP], None] | None = None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """MAIL FROM/RCPT TO paths. The plain ``<local@domain>`` form Postfix sends is read
        with one regular expression; anything else goes to aiosmtpd's full parser (which
        builds a class on every call: a tenth of the proxy's CPU)."""
        m = _SIMPLE_PATH.match(arg) if arg else None
        if m is None or (self.local_part_limit and len(m.group(2)) > self.local_part_limit):
            result: tuple[str | None, str | None] = super()._getaddr(arg)
            return result
        return m.group(1), m.group(3).lstrip()

    def _create_envelope(self) -> ArchiverEnvelope:
        return ArchiverEnvelope()

    def connection_lost(self, error: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost(self)
        super().connection_lost(error)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        """DATA read in blocks instead of aiosmtpd's line at a time (several times faster
        on large messages). Only CR LF . CR LF ends the data: a bare LF or CR before the dot
        does not (SMTP smuggling); dot-stuffing is undone on CR LF lines only."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            data, too_much = await self._read_data()
        except asyncio.IncompleteReadError:
            log.info("connection lost during DATA")
            if self.transport is not None:
                self.transport.close()
            return
        if too_much:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push("552 5.3.4 Error: Too much mail data")
            return
        content = data.replace(b"\r\n.", b"\r\n")
        if content.startswith(b"."):
            content = content[1:]
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes, bool]:
        """The raw data up to (not including) the final ``.`` line; and whether it was over
        the size limit (then it is read to the end and dropped)."""
        limit = self.data_size_limit
        parts: list[bytes] = []
        size = 0
        tail = b""  # the last two bytes read, to see a CR LF that ends the previous block
        too_much = False
        while True:
            try:
                block = await self._reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                block = await self._reader.readexactly(exc.consumed)
                found = False
            else:
                before = (tail + block[:-3])[-2:] if len(block) < 5 else block[-5:-3]
                found = (size == 0 and len(block) == 3) or before == b"\r\n"
            size += len(block)
            if limit and size > limit:
                too_much = True
                parts.clear()  # keep draining, but hold nothing
            elif found:
                parts.append(block[:-3])
                return b"".join(parts), too_much
            else:
                parts.append(block)
            if found:
                return b"", too_much
            tail = (tail + block)[-2:]

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """XFORWARD NAME=... ADDR=...: attributes of the original client (Postfix)."""
        if not arg:
            await self.push("501 5.5.4 Syntax: XFORWARD attribute=value...")
            return
        assert self.envelope is not None
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: XFORWARD not allowed in a mail transaction")
            return
        envelope = self.envelope
        assert isinstance(envelope, ArchiverEnvelope)
        for item in arg.split():
            name, sep, value = item.partition("=")
            if not sep or name.upper() not in XFORWARD_ATTRS:
                await self.push(f"501 5.5.4 Bad XFORWARD attribute: {name[:40]}")
                return
            envelope.xforward[name.upper()] = value
        await self.push("250 2.0.0 Ok")


class ArchiverHandler:
    """aiosmtpd handler: the capture pipeline behind the final dot."""

    def __init__(self, pipeline: CapturePipeline) -> None:
        self.pipeline = pipeline
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.stopping = False

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        if not self.pipeline.sink:
            extra.append("250-XFORWARD " + " ".join(XFORWARD_ATTRS))
        return responses[:-1] + extra + responses[-1:]

    async def handle_DATA(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
    ) -> str:
        if self.stopping:
            return replies.SHUTTING_DOWN
        self.in_flight += 1
        self.idle.clear()
        try:
            xforward = envelope.xforward if isinstance(envelope, ArchiverEnvelope) else {}
            incoming = Incoming(
                content=envelope.original_content or b"",
                # aiosmtpd keeps the null sender as "<>"; ours is ""
                sender="" if envelope.mail_from in (None, "<>") else envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                source="sink" if self.pipeline.sink else "smtp",
                mail_options=list(envelope.mail_options),
                xforward=dict(xforward),
                client_address=None if xforward else _peer_address(session),
                helo=None if xforward else session.host_name,
            )
            return await self.pipeline.handle(incoming)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def handle_exception(self, error: Exception) -> str:
        # anything unexpected in the protocol layer is temporary: Postfix retries
        log.exception("SMTP session error: %s", error)
        return replies.TEMPFAIL


def _peer_address(session: Session) -> str | None:
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class ProxyServer:
    """A running proxy: listening socket, handler, graceful stop."""

    def __init__(
        self,
        pipeline: CapturePipeline,
        host: str,
        port: int,
        *,
        max_size: int,
        timeout: float,
        hostname: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.handler = ArchiverHandler(pipeline)
        self.host, self.port = host, port
        self.max_size = max_size
        self.timeout = timeout
        self.hostname = hostname or socket.getfqdn()
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[ArchiverSMTP] = set()

    def _factory(self) -> ArchiverSMTP:
        proto = ArchiverSMTP(
            self.handler,
            data_size_limit=self.max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.hostname,
            timeout=self.timeout,
            ident="postfix-archiver",
        )
        self._sessions.add(proto)
        proto.on_lost = self._sessions.discard
        return proto

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, self.host, self.port, reuse_address=True
        )
        sockets = self._server.sockets
        if sockets and self.port == 0:
            self.port = sockets[0].getsockname()[1]

    async def stop(self, grace: float = 60.0) -> None:
        """Stop listening, let transactions in flight finish, then close the sessions."""
        self.handler.stopping = True
        if self._server is not None:
            self._server.close()
        try:
            await asyncio.wait_for(self.handler.idle.wait(), grace)
        except TimeoutError:
            log.warning(
                "stopping with %d transactions unfinished (Postfix will retry them)",
                self.handler.in_flight,
            )
        for proto in list(self._sessions):
            if proto.transport is not None:
                proto.transport.close()
        await self.pipeline.aclose()


async def run_proxy(
    server: ProxyServer,
    *,
    on_reload: Callable[[], None] | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP calls ``on_reload``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)
    await server.start()
    log.info(
        "listening on %s:%d (%s)",
        server.host,
        server.port,
        "sink" if server.pipeline.sink else f"reinjecting to {server.pipeline.reinject_address}",
    )
    if ready is not None:
        ready()
    try:
        await stop.wait()
        log.info("stopping: finishing %d transactions in flight", server.handler.in_flight)
    finally:
        await server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
