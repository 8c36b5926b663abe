"""What reinjection sends, the rules it follows, and the one-shot sender of the pipe filter.

Recipients are decided before DATA: if any recipient is refused, nothing is sent, so a retry
never delivers twice. XFORWARD attributes are passed on so Postfix logs keep the real client.
The pooled asynchronous client of the SMTP proxy is in ``reinject``; this module stays free
of asyncio so the pipe filter (a process per message) starts fast.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import parse_hostport
from ..errors import PermanentFailure, TemporaryFailure

log = logging.getLogger("postfix_archiver.reinject")

_CRLF = re.compile(rb"\r\n|\r|\n")
XFORWARD_ATTRS = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")


def xtext(value: str) -> str:
    """RFC 3461 xtext: what XFORWARD values are written in. Undecodable bytes (surrogate-
    escaped, as from argv or a raw 8-bit command) are encoded as the bytes they were."""
    return "".join(
        c
        if 33 <= ord(c) <= 126 and c not in "+="
        else "".join(f"+{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
        for c in value
    )


_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-Fa-f]{2})*")
_XTEXT_ESCAPE = re.compile(r"(\+[0-9A-Fa-f]{2})")


def xtext_safe(value: str) -> str:
    """An XFORWARD value as received, made valid xtext: Postfix sends xtext already, another
    client may send raw 8-bit bytes or a stray ``+``, which cannot be written as they are or
    which Postfix's smtpd refuses (501), so the message could never be reinjected."""
    if _XTEXT.fullmatch(value):
        return value
    return "".join(
        piece if _XTEXT_ESCAPE.fullmatch(piece) else xtext(piece)
        for piece in _XTEXT_ESCAPE.split(value)
    )


def _address(address: str) -> bytes:
    """An address as it came: the proxy and argv hold undecodable bytes surrogate-escaped.
    8-bit without SMTPUTF8 goes on as raw bytes, as Postfix itself passes it."""
    return address.encode("utf-8", "surrogateescape")


def _mail_command(sender: str, options: Sequence[str]) -> bytes:
    return b" ".join([b"MAIL FROM:<" + _address(sender) + b">", *map(_address, options)])


def _rcpt_command(recipient: str) -> bytes:
    return b"RCPT TO:<" + _address(recipient) + b">"


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
        item = f"{name}={xtext_safe(xforward[name])}"
        if current and len(current) + len(item) > 400:
            lines.append(current)
            current = ""
        current = f"{current} {item}".strip()
    if current:
        lines.append(current)
    return lines


def send_sync(address: str, msg: Outgoing, *, timeout: float = 120.0) -> str:
    """One reinjection over a new connection (the pipe filter: one message per process)."""
    target = parse_hostport(address)
    host, port = target.host, target.port
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
        if (
            _utf8(msg.sender, *msg.recipients)
            and smtp.has_extn("smtputf8")
            and "SMTPUTF8" not in options
        ):
            options.append("SMTPUTF8")
        code, text = _command(smtp, _mail_command(msg.sender, options))
        if code != 250:
            raise _fail("MAIL FROM", code, text.decode("utf-8", "replace"))
        refused = []
        for rcpt in msg.recipients:
            code, text = _command(smtp, _rcpt_command(rcpt))
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


def _utf8(*addresses: str) -> bool:
    """Whether any address is UTF-8 beyond ASCII (pipe(8) does not say whether the client
    asked for SMTPUTF8). Bytes that are no UTF-8 at all go on raw, never claimed as UTF-8."""
    text = "".join(addresses)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _command(smtp: smtplib.SMTP, command: bytes) -> tuple[int, bytes]:
    """A command as bytes: smtplib's mail() and rcpt() encode as ASCII (or UTF-8 with
    SMTPUTF8), which 8-bit without SMTPUTF8 or undecodable bytes cannot pass."""
    smtp.send(command + b"\r\n")
    return smtp.getreply()
