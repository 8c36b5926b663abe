"""Helpers for the capture tests: real sockets and real servers.

The reinjection listener is a second aiosmtpd server running on its own event loop in a
thread, with a recording handler whose replies the test sets. It is aiosmtpd's stock ``SMTP``
(its own DATA reader, not our ``ArchiverSMTP``'s, so a dot-stuffing bug of ours cannot cancel
itself out), taught only XFORWARD and PIPELINING, as Postfix's smtpd offers them. The proxy
under test runs the same way in-process (``ProxyServer`` on port 0), or as a
``postfix-archiver serve`` subprocess. Clients are plain ``smtplib`` and raw sockets, as
Postfix would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP

from postfix_archiver.archive import Archive
from postfix_archiver.capture.pipeline import CapturePipeline
from postfix_archiver.capture.smtp import ProxyServer
from postfix_archiver.catalog import EnvelopeRow, MessageRow
from postfix_archiver.config import Config, parse_config
from postfix_archiver.errors import StoreError
from postfix_archiver.rules import compile_policy

T = TypeVar("T")

CLI = Path(sys.executable).parent / "postfix-archiver"
XFORWARD_ADVERTISED = "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"


def free_port() -> int:
    """A port nothing listens on (bound and released; nobody else grabs it in a test run)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def home_config(home: Path, extra: str = "", name: str = "config.toml") -> Config:
    """A config keeping everything under ``home`` (like the top-level ``make_config``)."""
    return parse_config(f'[archive]\nhome = "{home}"\n{extra}', str(home.parent / name))


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def make_message(
    subject: str = "Quarterly numbers",
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.com",
    cc: str | None = "carol@example.com",
    extra_headers: str = "",
    body: str = "Hello Bob,\n\nthe numbers are in.\n",
) -> bytes:
    """A CRLF message as Postfix hands it over (no Bcc header: Postfix dropped it)."""
    headers = [
        "Received: from client.example.net (client.example.net [192.0.2.7])\n"
        "\tby mx.example.com (Postfix) with ESMTP id 4XyzAB1cD2;\n"
        "\tMon,  4 Mar 2024 10:00:00 +0100 (CET)",
        f"From: Alice <{sender}>",
        f"To: {to}",
    ]
    if cc:
        headers.append(f"Cc: {cc}")
    headers += [
        f"Subject: {subject}",
        "Date: Mon, 4 Mar 2024 10:00:00 +0100",
        f"Message-ID: <{abs(hash((subject, body)))}@example.com>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    text = "\n".join(headers) + "\n" + extra_headers + "\n" + body
    return crlf(text)


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 2]


# -- an event loop in a thread ----------------------------------------------------------------


class LoopThread:
    """An asyncio loop on its own thread; ``run`` waits for a coroutine's result."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _drain(self) -> None:
        """Let the tasks left (sessions ending) finish, cancel what does not."""
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self._drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        assert not self._thread.is_alive()


# -- the reinjection listener -----------------------------------------------------------------


@dataclass
class Got:
    """One DATA transaction the listener saw."""

    sender: str
    recipients: list[str]
    content: bytes
    xforward: dict[str, str]
    mail_options: list[str]


@dataclass
class Recorder:
    """aiosmtpd handler playing Postfix's reinjection listener; the test sets its replies."""

    data_reply: str = "250 2.0.0 Ok: queued as 4ReInJ{n}"
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> refusal
    data_delay: float = 0.0
    advertise_xforward: bool = True
    advertise_pipelining: bool = True
    messages: list[Got] = field(default_factory=list)  # accepted (250)
    data_calls: list[Got] = field(default_factory=list)  # every DATA, accepted or not
    connections: int = 0
    ehlos: int = 0
    data_started: threading.Event = field(default_factory=threading.Event)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlos += 1
        extra = ["250-PIPELINING"] if self.advertise_pipelining else []
        if self.advertise_xforward:
            extra.append(f"250-{XFORWARD_ADVERTISED}")
        return [*responses[:-1], *extra, responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refusal = self.rcpt_replies.get(address.lower())
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        got = Got(
            # aiosmtpd keeps the null sender as "<>"
            sender="" if envelope.mail_from == "<>" else envelope.mail_from,
            recipients=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content),
            xforward=dict(getattr(envelope, "xforward", {})),
            mail_options=list(envelope.mail_options),
        )
        self.data_calls.append(got)
        self.data_started.set()
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_reply.startswith("250"):
            self.messages.append(got)
        return self.data_reply.format(n=len(self.data_calls))


class StockSMTP(SMTP):
    """aiosmtpd's ``SMTP`` as it comes, plus the XFORWARD command (its attributes kept on the
    transaction's envelope, which aiosmtpd replaces after DATA and RSET)."""

    # Postfix's smtpd takes data lines of any length (it splits them); aiosmtpd's default of
    # 1001 would answer 500 to mail the proxy rightly passes on
    line_length_limit = 1 << 20
    on_lost: Callable[[StockSMTP], None] | None = None

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        if not arg:
            await self.push("501 5.5.4 Syntax: XFORWARD attribute=value...")
            return
        assert self.envelope is not None
        xforward = getattr(self.envelope, "xforward", {})
        for item in arg.split():
            name, _, value = item.partition("=")
            xforward[name.upper()] = value
        self.envelope.xforward = xforward  # type: ignore[attr-defined]
        await self.push("250 2.0.0 Ok")

    def connection_lost(self, error: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost(self)
        super().connection_lost(error)


class Listener:
    """A real SMTP server on 127.0.0.1 recording what it is given; restartable on its port."""

    def __init__(self, handler: Recorder | None = None, port: int = 0) -> None:
        self.handler = handler or Recorder()
        self.port = port
        self._thread: LoopThread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[StockSMTP] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _factory(self) -> StockSMTP:
        proto = StockSMTP(
            self.handler,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="listener.test",
            ident="reinjection listener",
        )
        self.handler.connections += 1
        self._sessions.add(proto)
        proto.on_lost = self._sessions.discard
        return proto

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for proto in list(self._sessions):
            if proto.transport is not None:
                proto.transport.close()
        await self._server.wait_closed()
        self._server = None

    def start(self) -> Listener:
        assert self._thread is None
        self._thread = LoopThread("listener")
        try:
            self._thread.run(self._start())
        except BaseException:
            self._thread.close()
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        try:
            self._thread.run(self._stop())
        finally:
            self._thread.close()
            self._thread = None

    def restart(self) -> None:
        """Stop (closing every open session, pooled ones too) and listen again, same port."""
        self.stop()
        self.start()


# -- the proxy under test, in-process ---------------------------------------------------------


class Proxy:
    """``ProxyServer`` on port 0, its loop on a thread, over a given archive."""

    def __init__(
        self,
        archive: Archive,
        config: Config,
        reinject: str | None,
        *,
        max_size: int = 10 * 1024 * 1024,
    ) -> None:
        self.archive = archive
        self.pipeline = CapturePipeline(
            archive, compile_policy(config), reinject=reinject, timeout=10.0
        )
        self.server = ProxyServer(
            self.pipeline, "127.0.0.1", 0, max_size=max_size, timeout=10.0, hostname="proxy.test"
        )
        self._closed = False
        self._thread = LoopThread("proxy")
        try:
            self._thread.run(self.server.start())
        except BaseException:
            self._thread.close()
            raise
        self.port = self.server.port

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._thread.run(self.server.stop(grace=5))
        finally:
            self._thread.close()

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=15)

    def send(
        self,
        content: bytes,
        sender: str = "alice@example.com",
        recipients: Sequence[str] = ("bob@example.com",),
        *,
        xforward: str | Sequence[str] = (),
    ) -> tuple[int, str]:
        with contextlib.closing(self.client()) as smtp:
            reply = transaction(smtp, content, sender, recipients, xforward=xforward)
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        return reply


def transaction(
    smtp: smtplib.SMTP,
    content: bytes,
    sender: str,
    recipients: Sequence[str],
    *,
    xforward: str | Sequence[str] = (),
) -> tuple[int, str]:
    """One transaction; the first reply that is not a success, else the DATA reply."""
    smtp.ehlo_or_helo_if_needed()
    for line in [xforward] if isinstance(xforward, str) else xforward:
        code, text = smtp.docmd("XFORWARD", line)
        assert code == 250, (code, text)
    code, text = smtp.mail(sender)
    if code != 250:
        return code, text.decode()
    accepted = 0
    last = (0, b"")
    for rcpt in recipients:
        last = smtp.rcpt(rcpt)
        accepted += last[0] in (250, 251)
    if not accepted:
        smtp.rset()
        return last[0], last[1].decode()
    try:
        code, text = smtp.data(content)
    except smtplib.SMTPDataError as exc:
        error = exc.smtp_error
        return exc.smtp_code, error.decode() if isinstance(error, bytes) else error
    return code, text.decode()


# -- reading the archive ----------------------------------------------------------------------


@dataclass
class Stored:
    row: MessageRow
    envelopes: list[EnvelopeRow]
    raw: bytes


def archived(archive: Archive) -> list[Stored]:
    """Everything in the archive, oldest first."""
    page = archive.search("", limit=1000, order="date")
    return [
        Stored(row, archive.catalog.envelopes(row.id), archive.raw(row.id))
        for row in sorted(page.results, key=lambda r: r.id)
    ]


def archived_at(home: Path) -> list[Stored]:
    """What a server process with data directory ``home`` archived so far."""
    with Archive(home_config(home), workers=1) as archive:
        return archived(archive)


class FailingStore:
    """A blob store whose disk is gone: every write fails (a real ``BlobStore``)."""

    url = "file:///nonexistent/failing-store"

    def put(self, key: str, data: bytes) -> None:
        raise StoreError(f"cannot write {key}: No space left on device")

    def put_many(self, items: Sequence[tuple[str, bytes]], retain_until: object = None) -> None:
        raise StoreError(f"cannot write {len(items)} blobs: No space left on device")

    def get(self, key: str) -> bytes:
        raise KeyError(key)

    def exists(self, key: str) -> bool:
        return False

    def delete(self, key: str) -> None:
        pass

    def delete_many(self, keys: Sequence[str]) -> None:
        pass

    def truncate_logs(self) -> list[str]:
        return []

    def keys(self, prefix: str = "") -> Iterator[str]:
        return iter(())

    def size(self, key: str) -> int:
        raise KeyError(key)

    def close(self) -> None:
        pass


# -- the command line as Postfix runs it ------------------------------------------------------


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home)
    return env


def run_filter(
    args: Sequence[str], content: bytes, home: Path, timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(CLI), "filter", *args],
        input=content,
        capture_output=True,
        env=cli_env(home),
        timeout=timeout,
        check=False,
    )


class ServeProcess:
    """``postfix-archiver serve`` as a child process, its log in a file."""

    def __init__(self, home: Path, args: Sequence[str]) -> None:
        self.home = home
        self.port = free_port()
        self.log_path = home.parent / f"serve-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(CLI), "serve", "--listen", f"127.0.0.1:{self.port}", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=cli_env(home),
            )
        try:
            self.wait_log("listening on", timeout=20)
        except BaseException:
            self.kill()
            raise

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.log.count(text) < count:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the serve log:\n{self.log}")
            time.sleep(0.02)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=15)

    def send(
        self,
        content: bytes,
        sender: str = "alice@example.com",
        recipients: Sequence[str] = ("bob@example.com",),
    ) -> tuple[int, str]:
        with contextlib.closing(self.client()) as smtp:
            reply = transaction(smtp, content, sender, recipients)
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        return reply

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
