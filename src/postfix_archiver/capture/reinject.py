"""Giving the message back to Postfix from the SMTP proxy: a pooled asynchronous client.

It keeps connections to the reinjection listener (127.0.0.1:10026) open and reuses them, and
pipelines XFORWARD, MAIL and RCPT into one write when the listener offers PIPELINING (Postfix
does): three round trips a message instead of five or more. What it sends and how it reads
the replies (recipients decided before DATA, XFORWARD passed on, which replies are permanent)
is the transaction of ``smtp_client``, which the pipe filter's ``outgoing.send_sync`` drives
too; this module is the transport.

It is a small client on asyncio streams rather than aiosmtplib: the reinjection listener is
always Postfix's smtpd on the loopback, and aiosmtplib's per-message work (a round trip per
command, a timer per command, re-normalizing line endings of mail that arrives as CR LF
already) was a fifth of the proxy's CPU.

Postfix's smtpd hangs up on a client idle for ``smtpd_timeout`` with ``421 4.4.2 ... timeout
exceeded``. A pooled connection is closed (with QUIT) after ``idle_limit``, well before that;
one the listener gave up on anyway (a 421 or EOF arriving while it waits in the pool, or a
421 as the first reply when it is reused) is replaced, and the message sent again over a
fresh connection: nothing was accepted on the old one, so this never delivers twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from typing import SupportsIndex

from ..errors import TemporaryFailure
from .outgoing import send_sync
from .smtp_client import (
    DATA_CHUNK,
    DATA_COMMAND,
    QUIT_COMMAND,
    RSET_COMMAND,
    XFORWARD_ATTRS,
    Outgoing,
    Transaction,
    data_block,
    data_chunks,
    ehlo_command,
    extensions,
    greeting,
    host_and_port,
    reply_line,
    xtext,
)

log = logging.getLogger("postfix_archiver.reinject")

__all__ = [
    "DATA_CHUNK",
    "XFORWARD_ATTRS",
    "Outgoing",
    "Reinjector",
    "data_block",
    "data_chunks",
    "send_sync",
    "write_data",
    "xtext",
]


async def write_data(writer: asyncio.StreamWriter, content: bytes) -> None:
    """The DATA block onto ``writer``: a big message piece by piece, each handed to the socket
    (``drain``) before the next is made."""
    if len(content) <= DATA_CHUNK:
        writer.write(data_block(content))
        return
    for piece in data_chunks(content):
        writer.write(piece)
        await writer.drain()


class _Reader(asyncio.StreamReader):
    """A stream reader that notices the listener speaking while its connection waits in the
    pool: between transactions it has nothing to say, so anything then (a 421, EOF) is the
    listener giving up on the connection."""

    on_idle_news: Callable[[], None] | None = None

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        super().feed_data(data)
        self._news()

    def feed_eof(self) -> None:
        super().feed_eof()
        self._news()

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._news()

    def _news(self) -> None:
        if self.on_idle_news is not None:
            self.on_idle_news()


class _Connection:
    def __init__(self, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.extensions: set[str] = set()
        self.stale = False  # the listener spoke or hung up while the connection was idle
        self.expiry: asyncio.TimerHandle | None = None

    async def reply(self) -> tuple[int, str]:
        code, lines = await self.reply_lines()
        return code, " ".join(lines)

    async def reply_lines(self) -> tuple[int, list[str]]:
        """One reply, possibly of several lines."""
        lines: list[str] = []
        while True:
            code, text = reply_line(await self.reader.readline())
            lines.append(text)
            if code is not None:
                return code, lines

    def close(self) -> None:
        self.writer.close()


class Reinjector:
    """Asynchronous reinjection client with a pool of open connections."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 120.0,
        max_idle: int = 20,
        idle_limit: float = 60.0,
        helo: str | None = None,
    ) -> None:
        self.host, self.port = host_and_port(address)
        self.timeout = timeout
        self.max_idle = max_idle
        self.idle_limit = idle_limit
        self.helo = helo or socket.getfqdn()
        self._idle: list[_Connection] = []
        self._quitting: set[asyncio.Task[None]] = set()

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.timeout):
                loop = asyncio.get_running_loop()
                reader = _Reader(loop=loop)
                protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
                transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port)
                conn = _Connection(reader, asyncio.StreamWriter(transport, protocol, reader, loop))
                try:
                    greeting(*await conn.reply())
                    conn.writer.write(ehlo_command(self.helo))
                    conn.extensions = extensions(*await conn.reply_lines())
                except BaseException:
                    conn.close()
                    raise
        except (OSError, TimeoutError, TemporaryFailure) as exc:
            raise TemporaryFailure(
                f"reinjection listener {self.host}:{self.port} unavailable: {exc}"
            ) from exc
        return conn

    # -- the pool ------------------------------------------------------------------------------

    def _take(self) -> _Connection | None:
        """A pooled connection still worth using, the most recently used first."""
        while self._idle:
            conn = self._idle.pop()
            self._leave_pool(conn)
            if not (conn.stale or conn.reader.at_eof() or conn.writer.is_closing()):
                return conn
            conn.close()
        return None

    def _put_back(self, conn: _Connection) -> None:
        if len(self._idle) >= self.max_idle:
            self._start_quit(conn)
            return
        conn.expiry = asyncio.get_running_loop().call_later(self.idle_limit, self._expire, conn)
        conn.reader.on_idle_news = lambda: self._gave_up(conn)
        self._idle.append(conn)

    def _leave_pool(self, conn: _Connection) -> None:
        conn.reader.on_idle_news = None
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None

    def _gave_up(self, conn: _Connection) -> None:
        """The listener spoke to an idle connection: its idle timeout (421) or a hang-up."""
        conn.stale = True
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
            self._leave_pool(conn)
            conn.close()
            log.debug("reinjection listener closed an idle connection; dropped from the pool")

    def _expire(self, conn: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
            self._leave_pool(conn)
            self._start_quit(conn)

    def _start_quit(self, conn: _Connection) -> None:
        task = asyncio.get_running_loop().create_task(self._quit(conn))
        self._quitting.add(task)
        task.add_done_callback(self._quitting.discard)

    async def _quit(self, conn: _Connection) -> None:
        try:
            conn.writer.write(QUIT_COMMAND)
            await asyncio.wait_for(conn.reply(), 5)
        except (OSError, TimeoutError, ConnectionError):
            pass
        conn.close()
        with contextlib.suppress(OSError, ConnectionError):
            await conn.writer.wait_closed()

    # -- one message ---------------------------------------------------------------------------

    async def send(self, msg: Outgoing) -> str:
        """Reinject ``msg``; returns the listener's final reply text."""
        conn = self._take()
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            reply = await self._transaction(conn, msg)
        except _StaleConnection as stale:
            conn.close()
            if not reused:
                raise TemporaryFailure(str(stale)) from stale
            # the listener gave up on the pooled connection as it was reused: one fresh try
            log.debug("reinjection: pooled connection was stale (%s), reconnecting", stale)
            conn = await self._connect()
            try:
                reply = await self._transaction(conn, msg)
            except _StaleConnection as exc:
                conn.close()
                raise TemporaryFailure(str(exc)) from exc
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        self._put_back(conn)
        return reply

    async def _transaction(self, conn: _Connection, msg: Outgoing) -> str:
        tx = Transaction(msg, conn.extensions)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(conn, tx, msg.content)
        except TimeoutError as exc:
            raise TemporaryFailure("reinjection listener timed out") from exc
        except _StaleConnection:
            raise
        except (ConnectionError, OSError) as exc:
            raise TemporaryFailure(f"reinjection failed: {exc}") from exc

    async def _exchange(self, conn: _Connection, tx: Transaction, content: bytes) -> str:
        await self._envelope(conn, tx)
        refusal = tx.refusal()
        if refusal is not None:
            if tx.rset_first:
                with contextlib.suppress(ConnectionError, OSError):
                    conn.writer.write(RSET_COMMAND)
                    await conn.reply()
            raise refusal
        conn.writer.write(DATA_COMMAND)
        tx.data_reply(*await conn.reply())
        await write_data(conn.writer, content)
        return tx.final_reply(*await conn.reply())

    async def _envelope(self, conn: _Connection, tx: Transaction) -> None:
        """Send the envelope commands (at once when pipelining) and hand the transaction one
        reply each. A connection that fails or says 421 (closing) at its first reply is
        stale: nothing was accepted, retrying is safe."""
        commands, pipelining = tx.commands, tx.pipelining
        try:
            conn.writer.write(b"".join(commands) if pipelining else commands[0])
            code, text = await conn.reply()
        except (ConnectionError, OSError) as exc:
            raise _StaleConnection(f"reinjection listener dropped the connection: {exc}") from exc
        if code == 421:
            raise _StaleConnection(
                f"reinjection listener answered {code} {text} to {tx.first_verb}"
            )
        tx.envelope_reply(code, text)
        for command in commands[1:]:
            if not pipelining:
                conn.writer.write(command)
            tx.envelope_reply(*await conn.reply())

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._leave_pool(conn)
            self._start_quit(conn)
        if self._quitting:
            await asyncio.gather(*self._quitting, return_exceptions=True)


class _StaleConnection(Exception):
    pass
