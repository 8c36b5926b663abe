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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket

from ..errors import TemporaryFailure
from .outgoing import (
    XFORWARD_ATTRS,
    Outgoing,
    _fail,
    _refusal,
    _xforward_lines,
    parse_hostport,
    send_sync,
    xtext,
)

log = logging.getLogger("postfix_archiver.reinject")

__all__ = ["XFORWARD_ATTRS", "Outgoing", "Reinjector", "parse_hostport", "send_sync", "xtext"]

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")


def data_block(content: bytes) -> bytes:
    """The DATA payload: CR LF line endings, dot-stuffed, terminated by ``.`` CR LF."""
    crlf = content.count(b"\r\n")
    if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
        content = _LINE_ENDINGS.sub(b"\r\n", content)  # a bare CR or LF is not SMTP
    if content.startswith(b"."):
        content = b"." + content
    content = content.replace(b"\r\n.", b"\r\n..")
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.extensions: set[str] = set()

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
        self, address: str, *, timeout: float = 120.0, max_idle: int = 20, helo: str | None = None
    ) -> None:
        self.host, self.port = parse_hostport(address)
        self.timeout = timeout
        self.max_idle = max_idle
        self.helo = helo or socket.getfqdn()
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                conn = _Connection(reader, writer)
                try:
                    code, text = await conn.reply()
                    if code != 220:
                        raise TemporaryFailure(f"greeting {code} {text}")
                    writer.write(f"EHLO {self.helo}\r\n".encode())
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

    async def send(self, msg: Outgoing) -> str:
        """Reinject ``msg``; returns the listener's final reply text."""
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        try:
            reply = await self._transaction(conn, msg)
        except _StaleConnection as stale:
            conn.close()
            if not reused:
                raise TemporaryFailure(f"reinjection failed: {stale.__cause__}") from stale
            # a pooled connection the listener had closed (idle timeout): one fresh try
            conn = await self._connect()
            try:
                reply = await self._transaction(conn, msg)
            except _StaleConnection as exc:
                conn.close()
                raise TemporaryFailure(
                    f"reinjection listener dropped the connection: {exc.__cause__}"
                ) from exc
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return reply

    async def _transaction(self, conn: _Connection, msg: Outgoing) -> str:
        utf8 = any(o.upper() == "SMTPUTF8" for o in msg.mail_options)
        enc = "utf-8" if utf8 else "ascii"
        xforward = _xforward_lines(msg.xforward) if "XFORWARD" in conn.extensions else []
        # the addresses came from Postfix, already checked: sent as they are
        commands = [f"XFORWARD {line}".encode("ascii") for line in xforward]
        commands.append(
            b" ".join(
                [b"MAIL FROM:<" + msg.sender.encode(enc, "surrogateescape") + b">"]
                + [o.encode(enc, "surrogateescape") for o in msg.mail_options]
            )
        )
        commands += [b"RCPT TO:<" + r.encode(enc, "surrogateescape") + b">" for r in msg.recipients]
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
        conn.writer.write(data_block(msg.content))
        code, text = await conn.reply()
        if code != 250:
            raise _fail("DATA", code, text)
        return f"{code} {text}"

    async def _commands(
        self, conn: _Connection, commands: list[bytes], pipelining: bool
    ) -> list[tuple[int, str]]:
        """Send the commands (at once when pipelining) and read one reply each. A connection
        that fails before its first reply is stale: nothing was accepted, retrying is safe."""
        first = commands if pipelining else commands[:1]
        try:
            conn.writer.write(b"".join(c + b"\r\n" for c in first))
            replies = [await conn.reply()]
        except (ConnectionError, OSError) as exc:
            raise _StaleConnection() from exc
        for command in commands[1:]:
            if not pipelining:
                conn.writer.write(command + b"\r\n")
            replies.append(await conn.reply())
        return replies

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.writer.write(b"QUIT\r\n")
                await asyncio.wait_for(conn.reply(), 5)
            except (OSError, TimeoutError, ConnectionError):
                pass
            conn.close()
            with contextlib.suppress(OSError, ConnectionError):
                await conn.writer.wait_closed()


class _StaleConnection(Exception):
    pass
