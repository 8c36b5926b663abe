"""IMAP sign-in: the mail server (Dovecot) checks the login and password.

Over TLS only (``imaps://``, or ``imap://`` with STARTTLS required), with AUTHENTICATE PLAIN
when offered (it carries UTF-8: a login or password with "ö" in it), else LOGIN for ASCII.
The connection is closed right after: nothing is read from the mailbox. The user's addresses
come from ``[auth.imap] map`` or the ``addresses`` patterns; the role is ``[auth.imap]
role``. (The IMAP importer in ``importers`` speaks the same way, for a long session.)
"""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from ...auth_config import ImapAuth
from .common import Refused, Unavailable, Verified, tls_context


def addresses_for(settings: ImapAuth, login: str) -> tuple[str, ...]:
    """The addresses of ``login``: its entry in the map, else the patterns filled in.
    Plain replacement, not ``str.format``: a login is not a format string."""
    mapped = settings.map.get(login.lower())
    if mapped is not None:
        return mapped
    local, at, domain = login.rpartition("@")
    if not at:
        local, domain = login, ""
    return tuple(
        p.replace("{login}", login).replace("{local}", local).replace("{domain}", domain)
        for p in settings.addresses
    )


def _failure(server: str, exc: BaseException, timeout: float) -> Unavailable:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Unavailable(
            f"{server}: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "set [auth.imap] ca_file"
        )
    if isinstance(exc, ssl.SSLError):
        return Unavailable(f"{server}: TLS failed ({exc.reason or exc})")
    if isinstance(exc, socket.timeout | TimeoutError):
        return Unavailable(f"{server}: no answer in {timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return Unavailable(f"{server}: connection refused (is the IMAP server listening?)")
    if isinstance(exc, socket.gaierror):
        return Unavailable(f"{server}: unknown host ({exc.strerror})")
    return Unavailable(f"{server}: {exc or type(exc).__name__}")


def _login(client: IMAPClient, server: str, login: str, password: str) -> None:
    if b"AUTH=PLAIN" in client.capabilities():
        client.plain_login(login, password)
    elif login.isascii() and password.isascii():
        client.login(login, password)
    else:
        raise Unavailable(
            f"{server}: the server offers only LOGIN, which cannot carry a non-ASCII login "
            "or password: enable AUTHENTICATE PLAIN there"
        )


def check_imap(settings: ImapAuth, login: str, password: str) -> Verified:
    server = str(settings.server)
    context = tls_context(settings.ca_file, "auth.imap")
    client: IMAPClient | None = None
    try:
        client = IMAPClient(
            settings.server.host,
            port=settings.server.port,
            ssl=settings.server.tls,
            ssl_context=context,
            timeout=settings.timeout,
        )
        if not settings.server.tls:
            if b"STARTTLS" not in client.capabilities():
                raise Unavailable(
                    f"{server}: no STARTTLS, and a password never crosses the network in "
                    "clear: use imaps://"
                )
            client.starttls(context)
        _login(client, server, login, password)
    except LoginError:
        raise Refused("wrong password or unknown user") from None
    except (OSError, EOFError, imaplib.IMAP4.error, IMAPClientError) as exc:
        raise _failure(server, exc, settings.timeout) from None
    finally:
        if client is not None:
            _close(client)
    return Verified(login, settings.role, addresses_for(settings, login))


def _close(client: IMAPClient) -> None:
    """LOGOUT if the connection still stands; the socket closed in any case."""
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()
