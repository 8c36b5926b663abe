"""The reinjection client's rules, without I/O: one SMTP transaction as bytes out, replies in.

Both transports drive it, so the pipe filter and the proxy send the same commands and read
the same replies the same way: ``outgoing.send_sync`` (a blocking socket, a connection per
message: the pipe filter starts fast, without asyncio) and ``reinject.Reinjector`` (the
proxy's pooled asyncio client). What a transport does with it::

    tx = Transaction(msg, extensions)         # extensions: keywords of the EHLO reply
    write all of tx.commands at once if tx.pipelining, else one before each reply;
    tx.envelope_reply(code, text) for each    # raises if XFORWARD or MAIL FROM is refused
    if (refusal := tx.refusal()) is not None: # a recipient refused: nothing is sent
        write RSET and read its reply if tx.rset_first; raise refusal
    write DATA_COMMAND; tx.data_reply(code, text)      # raises unless 354
    write data_block(msg.content) (in pieces, as it likes)
    return tx.final_reply(code, text)                  # raises unless 250

The rules: recipients are decided before DATA (if any is refused, nothing is sent, so a
retry never delivers twice); XFORWARD attributes are passed on when the listener offers
XFORWARD, so Postfix logs keep the real client; a 5xx to MAIL FROM or DATA, or to every
recipient, is the listener's permanent verdict and passed on; anything else is temporary.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from ..errors import PermanentFailure, TemporaryFailure
from ..hostport import parse_hostport

XFORWARD_ATTRS = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
DATA_COMMAND = b"DATA\r\n"
RSET_COMMAND = b"RSET\r\n"
QUIT_COMMAND = b"QUIT\r\n"
# Postfix's smtpd takes lines of 2048 bytes; XFORWARD lines are kept well below
_XFORWARD_LINE = 400


class Outgoing(NamedTuple):
    """One message to reinject. (A named tuple, not a dataclass: the pipe filter imports
    this module, and ``dataclasses`` brings ``inspect`` with it, a start-up cost per
    message.)"""

    sender: str
    recipients: Sequence[str]
    content: bytes
    mail_options: Sequence[str] = ()
    xforward: Mapping[str, str] = MappingProxyType({})  # attribute -> xtext value


def host_and_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` as the two parts a socket wants (the parsing is config's, done once)."""
    target = parse_hostport(value)
    return target.host, target.port


# -- XFORWARD values --------------------------------------------------------------------------


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


def xforward_lines(xforward: Mapping[str, str]) -> list[str]:
    """XFORWARD arguments, split so no line grows past Postfix's limit."""
    lines: list[str] = []
    current = ""
    for name in XFORWARD_ATTRS:
        if name not in xforward:
            continue
        item = f"{name}={xtext_safe(xforward[name])}"
        if current and len(current) + len(item) > _XFORWARD_LINE:
            lines.append(current)
            current = ""
        current = f"{current} {item}".strip()
    if current:
        lines.append(current)
    return lines


# -- the envelope -----------------------------------------------------------------------------


def _address(address: str) -> bytes:
    """An address as it came: the proxy and argv hold undecodable bytes surrogate-escaped.
    8-bit without SMTPUTF8 goes on as raw bytes, as Postfix itself passes it."""
    return address.encode("utf-8", "surrogateescape")


def _utf8(*addresses: str) -> bool:
    """Whether any address is UTF-8 beyond ASCII. Bytes that are no UTF-8 at all go on raw,
    never claimed as UTF-8."""
    text = "".join(addresses)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def mail_options(msg: Outgoing, extensions: Collection[str]) -> list[str]:
    """MAIL FROM's parameters: the message's own, and SMTPUTF8 when the addresses need it
    and the listener offers it (pipe(8) does not say whether the client asked for it; the
    proxy's client may have sent UTF-8 without asking)."""
    options = list(msg.mail_options)
    if (
        "SMTPUTF8" in extensions
        and _utf8(msg.sender, *msg.recipients)
        and not any(o.upper() == "SMTPUTF8" for o in options)
    ):
        options.append("SMTPUTF8")
    return options


def envelope_commands(msg: Outgoing, extensions: Collection[str]) -> tuple[list[bytes], int]:
    """XFORWARD (when offered), MAIL FROM and RCPT TO, each ending CR LF; and how many of
    them are XFORWARD."""
    commands = (
        [b"XFORWARD " + line.encode("ascii") + b"\r\n" for line in xforward_lines(msg.xforward)]
        if msg.xforward and "XFORWARD" in extensions
        else []
    )
    xforwards = len(commands)
    options = mail_options(msg, extensions)
    commands.append(
        b" ".join([b"MAIL FROM:<" + _address(msg.sender) + b">", *map(_address, options)]) + b"\r\n"
    )
    commands += [b"RCPT TO:<" + _address(r) + b">\r\n" for r in msg.recipients]
    return commands, xforwards


# -- replies ----------------------------------------------------------------------------------


def failure(stage: str, code: int, text: str) -> Exception:
    """A refusal of ``stage``: a 5xx is the listener's verdict on the message, passed on."""
    if 500 <= code < 600:
        return PermanentFailure(code, text)
    return TemporaryFailure(f"reinjection listener answered {code} {text} to {stage}")


def refusal(refused: Sequence[tuple[str, int, str]], total: int) -> Exception:
    """All recipients refused permanently: pass it on. Any other mix: try again later."""
    if len(refused) == total and all(500 <= code < 600 for _, code, _ in refused):
        _, code, text = refused[0]
        return PermanentFailure(code, text)
    detail = "; ".join(f"<{r}>: {c} {t}" for r, c, t in refused)
    return TemporaryFailure(f"reinjection listener refused recipients: {detail}")


def greeting(code: int, text: str) -> None:
    if code != 220:
        raise TemporaryFailure(f"greeting {code} {text}")


def ehlo_command(helo: str) -> bytes:
    return f"EHLO {helo}\r\n".encode()


def extensions(code: int, lines: Sequence[str]) -> set[str]:
    """The keywords of an EHLO reply ("250-host greeting", "250-PIPELINING", ...,
    "250 XFORWARD NAME ADDR ...")."""
    if code != 250:
        raise TemporaryFailure(f"EHLO answered {code} {' '.join(lines)}")
    return {line.split()[0].upper() for line in lines[1:] if line.strip()}


class NotAReply(ConnectionResetError):
    """The listener closed the connection mid-reply or sent something else."""


def reply_line(line: bytes) -> tuple[int | None, str]:
    """One line of a reply: its code if it is the last line (``None`` if more follow), and
    its text."""
    if not line.endswith(b"\n"):
        raise NotAReply("the reinjection listener closed the connection")
    text = line[4:].rstrip(b"\r\n").decode("utf-8", "replace")
    if line[3:4] == b"-":
        return None, text
    try:
        return int(line[:3]), text
    except ValueError:
        raise NotAReply(f"not an SMTP reply: {line[:60]!r}") from None


class Transaction:
    """One message's transaction on an open, greeted connection (see the module docstring
    for the order a transport drives it in)."""

    __slots__ = ("_recipients", "_refused", "_replies", "_xforwards", "commands", "pipelining")

    def __init__(self, msg: Outgoing, extensions: Collection[str]) -> None:
        self.commands, self._xforwards = envelope_commands(msg, extensions)
        # XFORWARD, MAIL and RCPT in one write, their replies read after (Postfix offers it)
        self.pipelining = "PIPELINING" in extensions
        self._recipients = msg.recipients
        self._replies: int = 0
        self._refused: list[tuple[str, int, str]] = []

    @property
    def first_verb(self) -> str:
        """The first command's verb, to name in a message about its reply."""
        return self.commands[0].split(b" ", 1)[0].decode("ascii", "replace")

    def envelope_reply(self, code: int, text: str) -> None:
        """The reply to the next envelope command. A refused XFORWARD or MAIL FROM raises (the
        connection is not to be used further); a refused recipient is counted."""
        index = self._replies - self._xforwards - 1  # of the recipient replied to
        self._replies += 1
        if index >= 0:
            if code != 250 and code != 251:
                self._refused.append((self._recipients[index], code, text))
        elif index < -1:
            if code != 250:
                # not a verdict on the message: never pass it on as permanent
                raise TemporaryFailure(f"XFORWARD refused: {code} {text}")
        elif code != 250:
            raise failure("MAIL FROM", code, text)

    def refusal(self) -> Exception | None:
        """After every envelope reply: the failure to raise if a recipient was refused."""
        if not self._refused:
            return None
        return refusal(self._refused, len(self._recipients))

    @property
    def rset_first(self) -> bool:
        """Whether to send RSET before giving up on a refusal: not when the listener said
        421, since it is closing the connection."""
        return all(code != 421 for _, code, _ in self._refused)

    def data_reply(self, code: int, text: str) -> None:
        if code != 354:
            raise failure("DATA", code, text)

    def final_reply(self, code: int, text: str) -> str:
        """The reply after the data: the listener's acceptance, as the result."""
        if code != 250:
            raise failure("DATA", code, text)
        return f"{code} {text}"


# -- the data ---------------------------------------------------------------------------------

_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")

# a bigger message is written this much at a time (``data_chunks``)
DATA_CHUNK = 1 << 20


def data_block(content: bytes) -> bytes:
    """The DATA payload: CR LF line endings, dot-stuffed, terminated by ``.`` CR LF."""
    content = _stuffed(content)
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _stuffed(content: bytes) -> bytes:
    """Lines of ``content`` with CR LF endings, dot-stuffed; ``content`` starts a line. pipe(8)
    hands over LF lines; a bare CR or LF is not SMTP."""
    crlf = content.count(b"\r\n")
    if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
        content = _LINE_ENDINGS.sub(b"\r\n", content)
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
