"""Serving the web application with uvicorn: alone (``web``) or next to the SMTP proxy (``run``).

The listening socket is bound here, before uvicorn starts, so a busy port is a clear
``ArchiverError`` instead of uvicorn's ``sys.exit``. Next to the proxy, the proxy owns the
signals (SIGTERM/SIGINT stop both, SIGHUP reloads the rules) and uvicorn installs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator

import uvicorn

from .. import sd_notify
from ..accounts import Accounts
from ..archive import Archive
from ..config import Config, parse_hostport
from ..errors import ArchiverError
from .app import create_app
from .health import Health, metrics_app

log = logging.getLogger("postfix_archiver.web")


def bind(listen: str) -> socket.socket:
    try:
        # port 0: any free port (tests, and a second instance beside the first)
        address = parse_hostport(listen, any_port=True)
    except ValueError:
        raise ArchiverError(
            f"bad listen address {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8025"
        ) from None
    host, port = address.host, address.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when the
    # socket says it is TCP; without it every response waits ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ArchiverError(
            f"cannot listen on {listen} for the web UI: {exc.strerror} (another process on "
            "that port? choose another with --listen or [web] listen)"
        ) from exc
    return sock


class _QuietSignals(uvicorn.Server):
    """A uvicorn server that leaves the signals to whoever runs it (uvicorn's own handling
    re-raises SIGTERM after shutting down, so the process would end by the signal)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WebServer:
    """The app over ``archive`` on a socket bound now; ``serve`` runs until ``stop``."""

    def __init__(
        self,
        config: Config,
        archive: Archive,
        listen: str,
        *,
        own_signals: bool = True,
        accounts: Accounts | None = None,
        health: Health | None = None,
    ) -> None:
        """``accounts``: the application's (it closes them); else the app opens its own.
        ``health``: what /metrics and /readyz report (``web.health``)."""
        self.sock = bind(listen)
        host, port = self.sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        try:
            app = create_app(config, archive, accounts=accounts, health=health)
        except BaseException:
            self.sock.close()
            raise
        uv_config = uvicorn.Config(
            app,
            log_config=None,  # the archiver's logging setup applies
            server_header=False,
            proxy_headers=True,  # X-Forwarded-For, from a proxy on 127.0.0.1 only
            timeout_graceful_shutdown=10,
            lifespan="on",
        )
        self.server = _QuietSignals(uv_config)
        self.own_signals = own_signals

    @classmethod
    def for_metrics(cls, health: Health, listen: str) -> WebServer:
        """The ``[metrics] listen`` listener: /metrics, /healthz and /readyz only."""
        self = cls.__new__(cls)
        try:
            self.sock = bind(listen)
        except ArchiverError as exc:
            cause = exc.__cause__
            why = cause.strerror if isinstance(cause, OSError) else None
            raise ArchiverError(
                f"cannot listen on {listen} for metrics: {why or 'bad address'} (another "
                "process on that port? choose another [metrics] listen)"
            ) from None
        host, port = self.sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        uv_config = uvicorn.Config(
            metrics_app(health),
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
            lifespan="off",
            access_log=False,
        )
        self.server = _QuietSignals(uv_config)
        self.own_signals = False
        return self

    async def serve(self) -> None:
        """Serve until ``stop`` (or, with ``own_signals``, SIGTERM/SIGINT): exit status 0.
        Alone (``own_signals``), it tells systemd READY=1 once uvicorn has started."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if self.own_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        told = asyncio.create_task(self._tell_systemd()) if self.own_signals else None
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            if told is not None:
                told.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await told
            for sig in signals:
                loop.remove_signal_handler(sig)
            self.sock.close()

    async def _tell_systemd(self) -> None:
        # uvicorn has no start-up callback: its ``started`` flag is set once it accepts
        while not self.server.started:
            await asyncio.sleep(0.02)
        sd_notify.ready(f"serving {self.url}")

    def stop(self) -> None:
        if self.own_signals and not self.server.should_exit:
            sd_notify.stopping()
        if self.server.should_exit:  # asked twice: stop waiting for open connections
            self.server.force_exit = True
        self.server.should_exit = True


async def serve_beside(web: WebServer, main: asyncio.Task[None]) -> None:
    """Run ``web`` until ``main`` (the proxy) ends; if the web server dies first, say so and
    cancel ``main`` so the process exits instead of running half."""
    task = asyncio.create_task(web.serve())
    done, _ = await asyncio.wait({task, main}, return_when=asyncio.FIRST_COMPLETED)
    if task in done and not main.done():
        log.error("the web server stopped unexpectedly; stopping the SMTP proxy too")
        main.cancel()
    web.stop()
    await asyncio.gather(task, main, return_exceptions=True)
    for finished in (main, task):
        if finished.cancelled():
            continue
        error = finished.exception()
        if error is not None:
            raise error
