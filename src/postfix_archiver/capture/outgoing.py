"""The pipe filter's reinjection: one message over a new connection, on a blocking socket.

A thin transport over the transaction of ``smtp_client`` (the rules live there, shared with
the proxy's pooled client in ``reinject``). It stays free of asyncio so the pipe filter (a
process per message) starts fast.
"""

from __future__ import annotations

import contextlib
import socket

from ..errors import TemporaryFailure
from .smtp_client import (
    DATA_COMMAND,
    QUIT_COMMAND,
    RSET_COMMAND,
    XFORWARD_ATTRS,
    Outgoing,
    Transaction,
    data_block,
    ehlo_command,
    extensions,
    greeting,
    host_and_port,
    reply_line,
    xtext,
    xtext_safe,
)

__all__ = [
    "XFORWARD_ATTRS",
    "NothingSent",
    "Outgoing",
    "send_over",
    "send_sync",
    "xtext",
    "xtext_safe",
]

# longer than any reply line; a line that does not end within it is no SMTP
_MAX_LINE = 1 << 16


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        code, lines = self.reply_lines()
        return code, " ".join(lines)

    def reply_lines(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        while True:
            code, text = reply_line(self.file.readline(_MAX_LINE))
            lines.append(text)
            if code is not None:
                return code, lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def send_sync(
    address: str, msg: Outgoing, *, timeout: float = 120.0, helo: str | None = None
) -> str:
    """One reinjection over a new connection (the pipe filter: one message per process);
    returns the listener's final reply."""
    host, port = host_and_port(address)
    try:
        sock = socket.create_connection((host, port), timeout)
    except OSError as exc:
        raise TemporaryFailure(f"reinjection listener {host}:{port} unavailable: {exc}") from exc
    return send_over(sock, f"{host}:{port}", msg, helo=helo)


class NothingSent(TemporaryFailure):
    """No transaction began: the server did not greet or answer EHLO, or its greeting did
    not name the server expected there. Nothing of the message was sent."""


def send_over(
    sock: socket.socket,
    where: str,
    msg: Outgoing,
    *,
    helo: str | None = None,
    greeted_by: str | None = None,
    timeout: float | None = None,
) -> str:
    """One transaction over the connected ``sock`` (closed on return); the final reply.
    ``greeted_by``: a word the greeting must hold. ``NothingSent`` when no transaction began.
    ``timeout``: each wait once the transaction begins (before it, the socket's own)."""
    conn = _Connection(sock)
    try:
        try:
            code, text = conn.reply()
            greeting(code, text)
            if greeted_by is not None and greeted_by not in text.split():
                with contextlib.suppress(OSError):
                    conn.write(QUIT_COMMAND)
                raise NothingSent(f"{where} greets as {text[:80]!r}, not as {greeted_by}")
            conn.write(ehlo_command(helo or socket.getfqdn()))
            offered = extensions(*conn.reply_lines())
            if timeout is not None:
                sock.settimeout(timeout)
        except NothingSent:
            raise
        except (OSError, TemporaryFailure) as exc:
            raise NothingSent(f"reinjection listener {where} unavailable: {exc}") from exc
        reply = _transaction(conn, Transaction(msg, offered), msg.content)
        with contextlib.suppress(OSError):
            conn.write(QUIT_COMMAND)  # the message is accepted; a lost QUIT changes nothing
            conn.reply()
        return reply
    except OSError as exc:
        raise TemporaryFailure(f"reinjection failed: {exc}") from exc
    finally:
        conn.close()


def _transaction(conn: _Connection, tx: Transaction, content: bytes) -> str:
    if tx.pipelining:
        conn.write(b"".join(tx.commands))
        for _ in tx.commands:
            tx.envelope_reply(*conn.reply())
    else:
        for command in tx.commands:
            conn.write(command)
            tx.envelope_reply(*conn.reply())
    refusal = tx.refusal()
    if refusal is not None:
        if tx.rset_first:
            with contextlib.suppress(OSError):
                conn.write(RSET_COMMAND)
                conn.reply()
        raise refusal
    conn.write(DATA_COMMAND)
    tx.data_reply(*conn.reply())
    conn.write(data_block(content))
    return tx.final_reply(*conn.reply())
