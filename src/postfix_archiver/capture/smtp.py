"""The after-queue SMTP proxy (and sink) on aiosmtpd.

The protocol state machine is aiosmtpd's; it is extended only with XFORWARD (so the real
client reaches the reinjection listener and Postfix's logs) and PIPELINING in the EHLO
reply. What happens to a message is the pipeline's business (``handle_DATA``).

``ArchiverSMTP`` reads DATA itself (in blocks: faster on big mail, and only CR LF . CR LF ends
it) and so relies on aiosmtpd internals beyond its handler API: ``_reader`` (the connection's
stream), ``_set_post_data_state`` and ``_call_handler_hook`` (ending a transaction, calling
``handle_DATA``), ``_getaddr``, ``_create_envelope`` and ``_reset_timeout``. pyproject.toml
pins aiosmtpd to the minor version they were checked against, and
tests/unit/capture/test_capture_aiosmtpd.py checks them, so an upgrade that changes them
fails a test rather than production.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from .. import memory, metrics
from . import replies
from .counting import Count
from .pipeline import CapturePipeline, Incoming
from .smtp_client import XFORWARD_ATTRS, xtext_safe

log = logging.getLogger("postfix_archiver.smtp")


# <dot-atom-local@domain> and the rest of the line (the parameters)
_SIMPLE_PATH = re.compile(
    r"\s*<(([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>(.*)\Z",
    re.S,
)


# A message this big waits for its share of the bytes in flight before it is read further
# (``_Budget``); smaller mail never waits.
BIG_MESSAGE = 4 << 20
# the bytes of big messages in flight when the size limit is off
_UNLIMITED_BUDGET = 64 << 20
# The idle timer while the handler answers DATA: the client waits on us then, it is not idle.
# The handler bounds itself (answer_timeout, the reinjection timeout) and Postfix gives up
# after its smtp_data_done_timeout (600s); this only stops a handler bug holding a session.
_ANSWERING = 3600.0


def unstuff(data: bytes, before: bytes) -> bytes:
    """Dot-stuffing undone in a block of DATA: a dot right after CR LF is dropped. ``before``
    is the two bytes the block follows, since a CR LF and its dot may be in two blocks."""
    if before == b"\r\n" and data.startswith(b"."):
        return data[1:].replace(b"\r\n.", b"\r\n")
    if before.endswith(b"\r") and data.startswith(b"\n."):
        return b"\n" + data[2:].replace(b"\r\n.", b"\r\n")
    return data.replace(b"\r\n.", b"\r\n")


class _Budget:
    """The bytes of big messages the proxy holds at once (the size limit's worth).

    A big message takes its share (its declared SIZE, else all of it) before it is read
    further, and gives it back once it is answered; meanwhile the others wait their turn,
    unread, first come first served, so their senders wait instead of the proxy holding them
    all. Memory then stays near one big message's worth, not six."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, wanted: int) -> int:
        n = max(1, min(wanted, self.total))
        if not self._waiting and n <= self.free:
            self.free -= n
            return n
        entry = (n, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:  # the session went away while it waited
            if entry[1].done() and not entry[1].cancelled():
                self.give(n)  # granted just before: hand it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)
                self._wake()
            raise
        return n

    def give(self, n: int) -> None:
        self.free += n
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self._waiting[0][0] <= self.free:
            n, future = self._waiting.popleft()
            if not future.done():
                self.free -= n
                future.set_result(None)

    @property
    def idle(self) -> bool:
        return self.free == self.total


# one budget per event loop: the memory is the process's, whichever server reads the mail
_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Budget] = (
    weakref.WeakKeyDictionary()
)


def _budget(limit: int | None) -> _Budget:
    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None:
        budget = _budgets[loop] = _Budget(limit or _UNLIMITED_BUDGET)
        memory.return_big_blocks()  # before the first big message: see ``memory``
    return budget


def _declared_size(envelope: Envelope) -> int | None:
    """MAIL FROM's SIZE=, which Postfix sends: the message's size, near enough."""
    for option in envelope.mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isascii() and value.isdigit() and len(value) < 16:
            return int(value)
    return None


class _Share:
    """One transaction's share of the budget, if it turns out to be a big message."""

    def __init__(self, budget: _Budget, declared: int | None) -> None:
        self.budget = budget
        self.declared = declared
        self.held = 0

    async def take(self, read: int) -> None:
        wanted = self.budget.total if self.declared is None else max(self.declared, read)
        self.held = await self.budget.take(wanted)

    def release(self) -> None:
        """Give the share back; the last big message out returns the freed memory."""
        if self.held:
            self.budget.give(self.held)
            self.held = 0
            if self.budget.idle:
                memory.release_free_memory()


_hook_names: dict[type, tuple[str, ...]] = {}


def hook_names(cls: type) -> tuple[str, ...]:
    """The names aiosmtpd looks for on a session or handler: its commands (``smtp_*``), AUTH
    mechanisms (``auth_*``) and hooks (``handle_*``), listed once per class."""
    names = _hook_names.get(cls)
    if names is None:
        names = _hook_names[cls] = tuple(
            n for n in dir(cls) if n.startswith(("smtp_", "auth_", "handle_"))
        )
    return names


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

    def __dir__(self) -> list[str]:
        """aiosmtpd's constructor finds the commands and AUTH mechanisms with ``dir()`` and
        ``inspect.getmembers`` over every attribute of the session, once per connection:
        that was a sixth of the sink's time holding the GIL (smtp-source, and Postfix
        without connection caching, send one message per connection). Those are the only
        names it looks for."""
        return list(hook_names(type(self)))

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
        share = _Share(_budget(self.data_size_limit), _declared_size(self.envelope))
        try:
            try:
                content, too_much = await self._read_data(share)
            except asyncio.IncompleteReadError:
                log.info("connection lost during DATA")
                if self.transport is not None:
                    self.transport.close()
                return
            if too_much:
                sink = getattr(getattr(self.event_handler, "pipeline", None), "sink", False)
                Count("sink" if sink else "smtp", 0).rejected()
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                await self.push("552 5.3.4 Error: Too much mail data")
                return
            self.envelope.content = content
            self.envelope.original_content = content
            del content  # the envelope's is the only reference: gone with it
            # aiosmtpd's timer runs from the DATA command: left alone, it hung up on a client
            # waiting for an answer (archived and reinjected by then: a second delivery)
            self._reset_timeout(_ANSWERING)
            status = await self._call_handler_hook("DATA")
            self._reset_timeout()  # the client's turn again
            self._set_post_data_state()  # type: ignore[no-untyped-call]
        finally:
            share.release()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self, share: _Share) -> tuple[bytes, bool]:
        """The data up to (not including) the final ``.`` line, dot-stuffing undone; and
        whether it was over the size limit (then it is read to the end and dropped).

        Each block is unstuffed into one buffer as it comes: the blocks, their join and the
        unstuffed copy were three copies of a big message at once. Past ``BIG_MESSAGE``
        bytes the message waits, unread, for its ``share`` of the bytes in flight."""
        limit = self.data_size_limit
        buf = bytearray()
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
            # the data starts a line, as if after a CR LF
            context = tail if size else b"\r\n"
            size += len(block)
            if limit and size > limit:
                too_much = True
                buf = bytearray()  # keep draining, but hold nothing
            elif not too_much:
                buf += unstuff(block[:-3] if found else block, context)
                if size >= BIG_MESSAGE and not share.held:
                    await share.take(size)
                    self._reset_timeout()  # the wait was ours, not the client's
            if found:
                return (b"" if too_much else bytes(buf)), too_much
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
            # kept as valid xtext, as Postfix sends it: raw 8-bit from another client can
            # neither be reinjected nor stored as it is
            envelope.xforward[name.upper()] = xtext_safe(value)
        await self.push("250 2.0.0 Ok")


class ArchiverHandler:
    """aiosmtpd handler: the capture pipeline behind the final dot."""

    def __init__(self, pipeline: CapturePipeline) -> None:
        self.pipeline = pipeline
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.stopping = False

    def __dir__(self) -> list[str]:
        """The hooks, for aiosmtpd's constructor (see ``ArchiverSMTP.__dir__``)."""
        return list(hook_names(type(self)))

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # the sink too: Postfix's IDENT is the queue id its line in the log starts with (an
        # always_bcc copy is in the message's own queue file, so it is the message's)
        extra = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES"]
        extra.append("250-XFORWARD " + " ".join(XFORWARD_ATTRS))
        return responses[:-1] + extra + responses[-1:]

    async def handle_DATA(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
    ) -> str:
        if self.stopping:
            source = "sink" if self.pipeline.sink else "smtp"
            Count(source, len(envelope.original_content or b"")).deferred(metrics.DEFER_SHUTDOWN)
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
        sock: socket.socket | None = None,
    ) -> None:
        self.pipeline = pipeline
        # a socket bound already (by the supervisor of several processes): accept on it
        self.sock = sock
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
        if self.sock is not None:
            self._server = await loop.create_server(self._factory, sock=self.sock)
        else:
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
    stopping: Callable[[], None] | None = None,
    parent_fd: int | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; SIGHUP calls ``on_reload``; ``ready`` once listening,
    ``stopping`` when a signal asks it to stop (systemd's READY=1 and STOPPING=1). With
    ``parent_fd``, also stop when that pipe ends: the supervising process is gone."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent_fd is not None:
        watched = parent_fd

        def orphaned() -> None:
            with contextlib.suppress(BlockingIOError):
                if os.read(watched, 1) == b"":
                    log.warning("the supervising serve process is gone: stopping")
                    loop.remove_reader(watched)
                    stop.set()

        os.set_blocking(watched, False)
        loop.add_reader(watched, orphaned)
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
        if stopping is not None:
            stopping()
        log.info("stopping: finishing %d transactions in flight", server.handler.in_flight)
    finally:
        await server.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        if parent_fd is not None:
            loop.remove_reader(parent_fd)
