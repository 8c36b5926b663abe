"""Giving the message back to Postfix from the SMTP proxy: a pooled asynchronous client.

It keeps connections to the reinjection listener (127.0.0.1:10026) open and reuses them, and
pipelines XFORWARD, MAIL and RCPT into one write when the listener offers PIPELINING (Postfix
does): three round trips a message instead of five or more. The rules it follows
(recipients decided before DATA, XFORWARD passed on, which replies are permanent) are shared
with the pipe filter's sender in ``outgoing``.

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
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import SupportsIndex

from ..config import parse_hostport
from ..errors import TemporaryFailure
from .outgoing import (
    XFORWARD_ATTRS,
    Outgoing,
    _fail,
    _mail_command,
    _rcpt_command,
    _refusal,
    _xforward_lines,
    send_sync,
    xtext,
)

log = logging.getLogger("postfix_archiver.reinject")

__all__ = ["XFORWARD_ATTRS", "Outgoing", "Reinjector", "send_sync", "xtext"]

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")


# a bigger message is written this much at a time (``write_data``)
DATA_CHUNK = 1 << 20


def data_block(content: bytes) -> bytes:
    """The DATA payload: CR LF line endings, dot-stuffed, terminated by ``.`` CR LF."""
    content = _stuffed(content)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _stuffed(content: bytes) -> bytes:
    """Lines of ``content`` with CR LF endings, dot-stuffed; ``content`` starts a line."""
    crlf = content.count(b"\r\n")
    if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
        content = _LINE_ENDINGS.sub(b"\r\n", content)  # a bare CR or LF is not SMTP
    if content.startswith(b"."):
        content = b"." + content
    return content.replace(b"\r\n.", b"\r\n..")


def data_chunks(content: bytes, size: int = DATA_CHUNK) -> Iterator[bytes]:
    """``data_block(content)`` in pieces of about ``size`` bytes, for a big message not to be
    copied whole once more (twice: stuffing, then the transport's buffer).

    Each piece but the last ends just after an LF, so that no CR LF is split (the next piece
    starts a line: a dot there is stuffed as after any line end) and pieces can be stuffed
    alone. A line longer than ``size`` is one piece."""
    pos, end = 0, len(content)
    while end - pos > size:
        cut = content.rfind(b"\n", pos, pos + size) + 1
        if cut <= pos:
            cut = content.find(b"\n", pos + size) + 1 or end
            if cut == end:
                break
        yield _stuffed(content[pos:cut])
        pos = cut
    yield data_block(content[pos:] if pos else content)


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
            line = await self.reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionResetError("the reinjection listener closed the connection")
            lines.append(line[4:].rstrip(b"\r\n").decode("utf-8", "replace"))
            if line[3:4] != b"-":
                try:
                    return int(line[:3]), lines
                except ValueError:
                    raise ConnectionResetError(f"not an SMTP reply: {line[:60]!r}") from None

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
        target = parse_hostport(address)
        self.host, self.port = target.host, target.port
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
                    code, text = await conn.reply()
                    if code != 220:
                        raise TemporaryFailure(f"greeting {code} {text}")
                    conn.writer.write(f"EHLO {self.helo}\r\n".encode())
                    code, lines = await conn.reply_lines()
                    if code != 250:
                        raise TemporaryFailure(f"EHLO answered {code} {' '.join(lines)}")
                except BaseException:
                    conn.close()
                    raise
        except (OSError, TimeoutError, TemporaryFailure) as exc:
            raise TemporaryFailure(
                f"reinjection listener {self.host}:{self.port} unavailable: {exc}"
            ) from exc
        # "250-host greeting", "250-PIPELINING", ..., "250 XFORWARD NAME ADDR ...": keywords
        conn.extensions = {line.split()[0].upper() for line in lines[1:] if line.strip()}
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
            conn.writer.write(b"QUIT\r\n")
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
        xforward = _xforward_lines(msg.xforward) if "XFORWARD" in conn.extensions else []
        commands = [f"XFORWARD {line}".encode("ascii") for line in xforward]
        commands.append(_mail_command(msg.sender, msg.mail_options))
        commands += [_rcpt_command(r) for r in msg.recipients]
        pipelining = "PIPELINING" in conn.extensions
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(conn, msg, commands, len(xforward), pipelining)
        except TimeoutError as exc:
            raise TemporaryFailure("reinjection listener timed out") from exc
        except _StaleConnection:
            raise
        except (ConnectionError, OSError) as exc:
            raise TemporaryFailure(f"reinjection failed: {exc}") from exc

    async def _exchange(
        self,
        conn: _Connection,
        msg: Outgoing,
        commands: list[bytes],
        xforwards: int,
        pipelining: bool,
    ) -> str:
        replies = await self._commands(conn, commands, pipelining)
        for code, text in replies[:xforwards]:
            if code != 250:
                # not a verdict on the message: never pass it on as permanent
                raise TemporaryFailure(f"XFORWARD refused: {code} {text}")
        code, text = replies[xforwards]
        if code != 250:
            raise _fail("MAIL FROM", code, text)
        rcpt_replies = replies[xforwards + 1 :]
        refused = [
            (rcpt, c, t)
            for rcpt, (c, t) in zip(msg.recipients, rcpt_replies, strict=True)
            if c not in (250, 251)
        ]
        if refused:
            conn.writer.write(b"RSET\r\n")
            await conn.reply()
            raise _refusal(refused, len(msg.recipients))
        conn.writer.write(b"DATA\r\n")
        code, text = await conn.reply()
        if code != 354:
            raise _fail("DATA", code, text)
        await write_data(conn.writer, msg.content)
        code, text = await conn.reply()
        if code != 250:
            raise _fail("DATA", code, text)
        return f"{code} {text}"

    async def _commands(
        self, conn: _Connection, commands: list[bytes], pipelining: bool
    ) -> list[tuple[int, str]]:
        """Send the commands (at once when pipelining) and read one reply each. A connection
        that fails or says 421 (closing) at its first reply is stale: nothing was accepted,
        retrying is safe."""
        first = commands if pipelining else commands[:1]
        try:
            conn.writer.write(b"".join(c + b"\r\n" for c in first))
            replies = [await conn.reply()]
        except (ConnectionError, OSError) as exc:
            raise _StaleConnection(f"reinjection listener dropped the connection: {exc}") from exc
        code, text = replies[0]
        if code == 421:
            verb = first[0].split(b" ", 1)[0].decode("ascii", "replace")
            raise _StaleConnection(f"reinjection listener answered {code} {text} to {verb}")
        for command in commands[1:]:
            if not pipelining:
                conn.writer.write(command + b"\r\n")
            replies.append(await conn.reply())
        return replies

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._leave_pool(conn)
            self._start_quit(conn)
        if self._quitting:
            await asyncio.gather(*self._quitting, return_exceptions=True)


class _StaleConnection(Exception):
    pass
