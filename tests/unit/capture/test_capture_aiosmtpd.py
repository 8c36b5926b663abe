"""What ``capture/smtp.py`` relies on in aiosmtpd beyond its public handler API.

``ArchiverSMTP`` reads DATA itself (in blocks, for speed and against smuggling) and so reaches
into aiosmtpd's ``SMTP``: the stream it reads from, how it ends a transaction and calls the
DATA hook, how it parses paths and makes envelopes, its idle timer. pyproject.toml pins
aiosmtpd below the next minor version; before that pin is raised, this test must pass
against the new version (and the capture tests with it), so a change in these internals fails
here rather than in production.
"""

from __future__ import annotations

import asyncio
import inspect

import aiosmtpd
import pytest
from aiosmtpd.smtp import MISSING, SMTP, Envelope, syntax

from postfix_archiver.capture.smtp import ArchiverEnvelope, ArchiverHandler, ArchiverSMTP

# name -> the parameters it is called with (self excluded)
PRIVATE = {
    "_set_post_data_state": [],
    "_call_handler_hook": ["command", "args"],
    "_getaddr": ["arg"],
    "_create_envelope": [],
    "_reset_timeout": ["duration"],
}


def test_the_pinned_version() -> None:
    major, minor, *_ = (int(p) for p in aiosmtpd.__version__.split(".")[:2])
    assert (major, minor) == (1, 4), "check the internals below, then raise the pin"


@pytest.mark.parametrize("name", sorted(PRIVATE))
def test_the_private_methods_used(name: str) -> None:
    method = getattr(SMTP, name)
    params = list(inspect.signature(method).parameters)[1:]
    assert params == PRIVATE[name]
    assert inspect.iscoroutinefunction(method) == (name == "_call_handler_hook")


def test_the_public_members_used() -> None:
    assert SMTP.line_length_limit == 1001  # ours raises it; aiosmtpd sizes its reader by it
    for name in ("push", "check_helo_needed", "check_auth_needed", "smtp_DATA"):
        assert inspect.iscoroutinefunction(getattr(SMTP, name)), name
    assert callable(syntax)
    assert MISSING is not None


def test_the_reader_the_data_is_read_from() -> None:
    """``_reader`` is the StreamReader of the connection, the one aiosmtpd reads lines from
    (set when the client connects)."""

    async def scenario() -> None:
        server = ArchiverSMTP(object())
        reader = asyncio.StreamReader()
        writer = object()
        server._cb_client_connected(reader, writer)  # type: ignore[arg-type]
        assert server._reader is reader

    asyncio.run(scenario())


def test_the_envelope_and_the_data_hook() -> None:
    """``_set_post_data_state`` starts a new envelope from ``_create_envelope``, and
    ``_call_handler_hook("DATA")`` calls ``handle_DATA(server, session, envelope)``."""
    calls: list[tuple[object, object, object]] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            calls.append((server, session, envelope))
            return "250 OK"

    async def scenario() -> None:
        server = ArchiverSMTP(Handler())
        server._set_post_data_state()  # type: ignore[no-untyped-call]
        assert isinstance(server.envelope, ArchiverEnvelope)
        assert isinstance(server.envelope, Envelope)
        assert await server._call_handler_hook("DATA") == "250 OK"
        assert calls == [(server, server.session, server.envelope)]
        assert await server._call_handler_hook("NOSUCH") is MISSING

    asyncio.run(scenario())


class _FullIntrospection(ArchiverSMTP):
    """``ArchiverSMTP`` as aiosmtpd sees it without the short ``__dir__``."""

    def __dir__(self) -> list[str]:
        return list(object.__dir__(self))


class _Handler(ArchiverHandler):
    async def handle_RCPT(self, *args: object) -> str:
        return "250 OK"

    async def auth_CRAM__MD5(self, *args: object) -> None:
        return None


def test_a_session_finds_every_command_hook_and_mechanism_aiosmtpd_would() -> None:
    """aiosmtpd builds a session's command, hook and AUTH tables from ``dir()``: the short
    list ``ArchiverSMTP`` and ``ArchiverHandler`` give (a connection costs a quarter of the
    time) must find exactly what the full listing finds, for a subclass's names too."""
    handler = _Handler(None)  # type: ignore[arg-type]
    # a loop of the test's own, closed after: without one aiosmtpd makes one whose
    # self-pipe sockets stay open until the garbage collector finds them in a later test
    loop = asyncio.new_event_loop()
    try:
        ours, full = ArchiverSMTP(handler, loop=loop), _FullIntrospection(handler, loop=loop)
    finally:
        loop.close()
    for table in ("_smtp_methods", "_handle_hooks", "_auth_methods"):
        assert sorted(getattr(ours, table)) == sorted(getattr(full, table)), table
    assert {"DATA", "XFORWARD", "EHLO", "AUTH"} <= set(ours._smtp_methods)
    assert {"DATA", "EHLO", "RCPT", "exception"} <= set(ours._handle_hooks)
    assert {"LOGIN", "PLAIN", "CRAM-MD5"} <= set(ours._auth_methods)
    assert ours._ehlo_hook_ver == "new"
