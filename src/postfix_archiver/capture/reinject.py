"""Giving the message back to Postfix: SMTP to the reinjection listener (127.0.0.1:10026).

The asynchronous client keeps connections open and reuses them (a pool), forwards Postfix's
XFORWARD attributes so Postfix logs keep the real client, and decides about recipients before
DATA: if any recipient is refused, nothing is sent, so a retry never delivers twice.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiosmtplib

from ..errors import PermanentFailure, TemporaryFailure

log = logging.getLogger("postfix_archiver.reinject")

_CRLF = re.compile(rb"\r\n|\r|\n")
XFORWARD_ATTRS = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")


def xtext(value: str) -> str:
    """RFC 3461 xtext: what XFORWARD values are written in."""
    return "".join(
        c if 33 <= ord(c) <= 126 and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in value
    )


def parse_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Outgoing:
    """One message to reinject."""

    sender: str
    recipients: Sequence[str]
    content: bytes
    mail_options: Sequence[str] = ()
    xforward: Mapping[str, str] = field(default_factory=dict)  # attribute -> xtext value


def _fail(stage: str, code: int, text: str) -> Exception:
    if 500 <= code < 600:
        return PermanentFailure(code, text)
    return TemporaryFailure(f"reinjection listener answered {code} {text} to {stage}")


def _refusal(refused: list[tuple[str, int, str]], total: int) -> Exception:
    """All recipients refused permanently: pass it on. Any other mix: try again later."""
    if len(refused) == total and all(500 <= code < 600 for _, code, _ in refused):
        _, code, text = refused[0]
        return PermanentFailure(code, text)
    detail = "; ".join(f"<{r}>: {c} {t}" for r, c, t in refused)
    return TemporaryFailure(f"reinjection listener refused recipients: {detail}")


def _xforward_lines(xforward: Mapping[str, str]) -> list[str]:
    """XFORWARD commands, split so no line grows past Postfix's limit."""
    lines: list[str] = []
    current = ""
    for name in XFORWARD_ATTRS:
        if name not in xforward:
            continue
        item = f"{name}={xforward[name]}"
        if current and len(current) + len(item) > 400:
            lines.append(current)
            current = ""
        current = f"{current} {item}".strip()
    if current:
        lines.append(current)
    return lines


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
            try:
                await smtp.mail(
                    msg.sender,
                    options=list(msg.mail_options),
                    encoding="utf-8" if utf8 else "ascii",
                )
            except aiosmtplib.SMTPResponseException as exc:
                raise _fail("MAIL FROM", exc.code, exc.message) from exc
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise _StaleConnection() from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise TemporaryFailure(f"reinjection listener timed out: {exc}") from exc
        try:
            refused: list[tuple[str, int, str]] = []
            for rcpt in msg.recipients:
                try:
                    await smtp.rcpt(rcpt, encoding="utf-8" if utf8 else "ascii")
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refused.append((rcpt, exc.code, exc.message))
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


def send_sync(address: str, msg: Outgoing, *, timeout: float = 120.0) -> str:
    """One reinjection over a new connection (the pipe filter: one message per process)."""
    host, port = parse_hostport(address)
    try:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    except OSError as exc:
        raise TemporaryFailure(f"reinjection listener {host}:{port} unavailable: {exc}") from exc
    try:
        smtp.ehlo()
        if smtp.has_extn("xforward") and msg.xforward:
            for line in _xforward_lines(msg.xforward):
                code, text = smtp.docmd("XFORWARD", line)
                if code != 250:
                    raise TemporaryFailure(f"XFORWARD refused: {code} {text!r}")
        options = list(msg.mail_options)
        non_ascii = not msg.sender.isascii() or any(not r.isascii() for r in msg.recipients)
        if non_ascii and smtp.has_extn("smtputf8") and "SMTPUTF8" not in options:
            options.append("SMTPUTF8")
        code, text = smtp.mail(msg.sender, options)
        if code != 250:
            raise _fail("MAIL FROM", code, text.decode("utf-8", "replace"))
        refused = []
        for rcpt in msg.recipients:
            code, text = smtp.rcpt(rcpt)
            if code not in (250, 251):
                refused.append((rcpt, code, text.decode("utf-8", "replace")))
        if refused:
            smtp.rset()
            raise _refusal(refused, len(msg.recipients))
        # pipe(8) hands over LF lines; SMTP wants CRLF (smtplib would send bare LFs and add
        # an empty last line), as the asynchronous client does it
        code, text = smtp.data(_CRLF.sub(b"\r\n", msg.content))
        if code != 250:
            raise _fail("DATA", code, text.decode("utf-8", "replace"))
        reply = f"{code} {text.decode('utf-8', 'replace')}"
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()  # the message is accepted; a lost QUIT changes nothing
        return reply
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise TemporaryFailure(f"reinjection failed: {exc}") from exc
    finally:
        smtp.close()
