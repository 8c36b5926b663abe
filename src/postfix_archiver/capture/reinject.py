"""Giving the message back to Postfix from the SMTP proxy: a pooled asynchronous client.

It keeps connections to the reinjection listener (127.0.0.1:10026) open and reuses them;
the rules it follows (recipients decided before DATA, XFORWARD passed on, which replies are
permanent) are shared with the pipe filter's sender in ``outgoing``.
"""

from __future__ import annotations

import logging
import socket

import aiosmtplib

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


class _Connection:
    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp
        self.xforward = smtp.supports_extension("xforward")
        self.used = 0


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
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            local_hostname=self.helo,
            use_tls=False,
            start_tls=False,
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise TemporaryFailure(
                f"reinjection listener {self.host}:{self.port} unavailable: {exc}"
            ) from exc
        return _Connection(smtp)

    async def send(self, msg: Outgoing) -> str:
        """Reinject ``msg``; returns the listener's final reply text."""
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._connect()
        try:
            reply = await self._transaction(conn, msg)
        except _StaleConnection:
            conn.smtp.close()
            # a pooled connection the listener had closed (idle timeout): one fresh try
            conn = await self._connect()
            try:
                reply = await self._transaction(conn, msg)
            except _StaleConnection as exc:
                conn.smtp.close()
                raise TemporaryFailure(
                    f"reinjection listener dropped the connection: {exc.__cause__}"
                ) from exc
            except BaseException:
                conn.smtp.close()
                raise
        except BaseException:
            conn.smtp.close()
            raise
        conn.used += 1
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.smtp.close()
        return reply

    async def _transaction(self, conn: _Connection, msg: Outgoing) -> str:
        smtp = conn.smtp
        try:
            if conn.xforward and msg.xforward:
                for line in _xforward_lines(msg.xforward):
                    resp = await smtp.execute_command(b"XFORWARD", line.encode("ascii"))
                    if resp.code != 250:
                        # not a verdict on the message: never pass it on as permanent
                        raise TemporaryFailure(f"XFORWARD refused: {resp.code} {resp.message}")
            utf8 = any(o.upper() == "SMTPUTF8" for o in msg.mail_options)
            enc = "utf-8" if utf8 else "ascii"
            # the addresses came from Postfix already checked: sent as they are, which also
            # spares aiosmtplib's address parser (a large share of the proxy's CPU)
            resp = await smtp.execute_command(
                b"MAIL",
                b"FROM:<" + msg.sender.encode(enc, "surrogateescape") + b">",
                *(o.encode(enc, "surrogateescape") for o in msg.mail_options),
            )
            if resp.code != 250:
                raise _fail("MAIL FROM", resp.code, resp.message)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise _StaleConnection() from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise TemporaryFailure(f"reinjection listener timed out: {exc}") from exc
        try:
            refused: list[tuple[str, int, str]] = []
            for rcpt in msg.recipients:
                resp = await smtp.execute_command(
                    b"RCPT", b"TO:<" + rcpt.encode(enc, "surrogateescape") + b">"
                )
                if resp.code not in (250, 251):
                    refused.append((rcpt, resp.code, resp.message))
            if refused:
                await smtp.rset()
                raise _refusal(refused, len(msg.recipients))
            try:
                resp = await smtp.data(msg.content)
            except aiosmtplib.SMTPDataError as exc:
                raise _fail("DATA", exc.code, exc.message) from exc
            return f"{resp.code} {resp.message}"
        except (
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPTimeoutError,
            ConnectionError,
        ) as exc:
            raise TemporaryFailure(f"reinjection failed: {exc}") from exc

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await conn.smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                conn.smtp.close()


class _StaleConnection(Exception):
    pass
