"""The one application object: the archiver as built from one config.

``Application`` owns the archive, the rules policy, the web accounts (each opened on first
use, closed together) and builds the listeners: the SMTP proxy or sink, the web server, and
the pipe filter's single message. ``serve``, ``run``, ``web`` and ``filter`` are thin calls
into it, so a new backend or listener is wired here once instead of in every command.

Imports of the heavy parts (aiosmtpd, FastAPI, uvicorn, the archive itself) stay inside
the methods: ``filter`` runs once per message, and ``entry.py`` reaches ``filter_main``
without loading any of them up front; an import that fails then fails inside the pipe's
catch-all, as a temporary failure rather than a bounce.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING

from .capture import pipe
from .config import Config, HostPort, load_config
from .errors import ArchiverError

if TYPE_CHECKING:
    from .accounts import Accounts
    from .archive import Archive
    from .archive.checkpointer import Checkpointer
    from .capture.pipeline import CapturePipeline, Incoming
    from .capture.processes import Worker
    from .capture.smtp import ProxyServer
    from .rules import Policy
    from .web.health import Health
    from .web.server import WebServer

log = logging.getLogger("postfix_archiver.smtp")


class Application:
    """The archive, rules, accounts and listeners of one config; a context manager that
    closes what it opened. ``config_path`` is where SIGHUP re-reads the rules from."""

    def __init__(
        self, config: Config, *, config_path: str | None = None, workers: int | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.workers = workers
        self._archive: Archive | None = None
        self._accounts: Accounts | None = None
        self._policy: Policy | None = None
        self._pipelines: list[CapturePipeline] = []

    @classmethod
    def load(cls, config_path: str | None, *, workers: int | None = None) -> Application:
        """From ``config_path``, else ``$POSTFIX_ARCHIVER_CONFIG``, else the defaults."""
        return cls(load_config(config_path), config_path=config_path, workers=workers)

    def __enter__(self) -> Application:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        accounts, self._accounts = self._accounts, None
        archive, self._archive = self._archive, None
        try:
            if accounts is not None:
                accounts.close()
        finally:
            if archive is not None:
                archive.close()

    # -- the parts, each opened on first use ------------------------------------------

    @property
    def archive(self) -> Archive:
        if self._archive is None:
            from .archive import Archive

            self._archive = Archive(self.config, workers=self.workers)
        return self._archive

    @property
    def accounts(self) -> Accounts:
        if self._accounts is None:
            from .accounts import open_accounts

            self._accounts = open_accounts(self.config.archive.accounts_url)
        return self._accounts

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            from .rules import compile_policy

            self._policy = compile_policy(self.config)
        return self._policy

    def has_users(self) -> bool:
        return self.accounts.count_users() > 0

    def reload(self) -> None:
        """SIGHUP: the rules from the config file again; a broken file leaves them as they
        are (the proxy keeps archiving by the rules it had)."""
        from . import sd_notify
        from .rules import compile_policy

        sd_notify.reloading()
        try:
            fresh = load_config(self.config_path)
            policy = compile_policy(fresh)
        except ArchiverError as exc:
            log.error("reload refused, the rules in force stay: %s", exc)
            sd_notify.ready("reload refused: the rules in force stay")
            return
        self._policy = policy
        for pipeline in self._pipelines:
            pipeline.set_policy(policy)
        log.info("reloaded rules from %s", self.config_path or "defaults")
        sd_notify.ready()

    # -- the listeners ------------------------------------------------------------------

    def pipeline(self, *, sink: bool = False, reinject: str | None = None) -> CapturePipeline:
        """Decide, archive, reinject: to ``reinject`` (else [smtp] reinject), or, for a
        sink, nowhere."""
        from .capture.pipeline import CapturePipeline

        policy = self.policy  # bad rules refuse to start before the archive is opened
        made = CapturePipeline(
            self.archive,
            policy,
            reinject=None if sink else (reinject or self.config.smtp.reinject),
            timeout=self.config.smtp.timeout,
        )
        self._pipelines.append(made)
        return made

    def smtp_server(
        self,
        pipeline: CapturePipeline,
        listen: HostPort | None = None,
        worker: Worker | None = None,
    ) -> ProxyServer:
        """The proxy (or sink) on ``listen``, else [smtp] listen; it listens once started.
        A ``worker`` accepts on the socket its supervisor bound instead."""
        import socket

        from .capture.smtp import ProxyServer

        address = listen or self.config.smtp.listen
        host, port, sock = address.host, address.port, None
        if worker is not None:
            sock = socket.socket(fileno=worker.listen_fd)
            host, port = sock.getsockname()[:2]
        return ProxyServer(
            pipeline,
            host,
            port,
            max_size=self.config.smtp.max_message_size,
            timeout=self.config.smtp.timeout,
            sock=sock,
        )

    def web_server(
        self, listen: str | None = None, *, own_signals: bool = True, health: Health | None = None
    ) -> WebServer:
        """The web UI and API, its socket bound now, on ``listen`` else [web] listen;
        ``health``: what its /metrics and /readyz report (the proxy's, beside it)."""
        from .web.server import WebServer

        # the index is made in the background wherever the catalog is written
        self.archive.start_indexer()
        return WebServer(
            self.config,
            self.archive,
            listen or self.config.web.listen,
            own_signals=own_signals,
            accounts=self.accounts,
            health=health,
        )

    async def serve(
        self,
        *,
        sink: bool = False,
        listen: HostPort | None = None,
        reinject: str | None = None,
        web_listen: str | None = None,
        on_web: Callable[[str], None] | None = None,
        worker: Worker | None = None,
    ) -> None:
        """The SMTP proxy, or the sink with ``sink`` or [smtp] sink, until SIGTERM/SIGINT
        (SIGHUP reloads the rules); with ``web_listen``, the web server beside it, stopped
        with it, its URL given to ``on_web`` once it is bound. A ``worker`` is one of
        several processes under a supervisor (``serve_processes``): it tells its
        supervisor, not systemd, when it accepts, and only the primary one indexes and
        makes checkpoints."""
        import asyncio

        from . import sd_notify
        from .capture.smtp import run_proxy

        pipeline = self.pipeline(sink=sink or self.config.smtp.sink, reinject=reinject)
        server = self.smtp_server(pipeline, listen, worker)
        checkpointer = None
        if worker is None or worker.primary:
            # entries are made after the answer, from the queue, woken by each commit
            self.archive.start_indexer()
            checkpointer = self.checkpointer()

        # READY=1 once the proxy listens (a web socket beside it is bound and listening by
        # then too); STOPPING=1 when a signal stops it
        def ready() -> None:
            if worker is not None:
                import os

                from .capture.processes import READY

                os.write(worker.ready_fd, READY)
                os.close(worker.ready_fd)
                return
            sd_notify.ready(f"listening on {server.host}:{server.port}")

        def proxy_run() -> Coroutine[None, None, None]:
            return run_proxy(
                server,
                on_reload=self.reload,
                ready=ready,
                stopping=sd_notify.stopping,
                parent_fd=None if worker is None else worker.parent_fd,
            )

        try:
            metrics_listen = None if worker is not None else self.config.metrics.listen
            if web_listen is None and metrics_listen is None:
                await proxy_run()
                return
            from .web.health import Health
            from .web.server import WebServer, serve_beside

            health = Health(self.archive, reinject=pipeline.reinject_address)
            # each bound before anything is served: a busy port stops the start
            beside = None
            if metrics_listen is not None:
                beside = WebServer.for_metrics(health, metrics_listen)
            try:
                web = (
                    None
                    if web_listen is None
                    else self.web_server(web_listen, own_signals=False, health=health)
                )
            except BaseException:
                if beside is not None:
                    beside.sock.close()
                raise
            if web is not None and on_web is not None:
                on_web(web.url)
            main = asyncio.create_task(proxy_run())
            if beside is not None:
                main = asyncio.create_task(serve_beside(beside, main))
            if web is not None:
                await serve_beside(web, main)
            else:
                await main
        except OSError as exc:
            raise ArchiverError(
                f"cannot listen on {server.host}:{server.port}: {exc.strerror} (is another "
                "archiver or Postfix service on that port?)"
            ) from exc
        finally:
            if checkpointer is not None:
                checkpointer.stop()

    def serve_processes(
        self, count: int, argv: Callable[[Worker], Sequence[str]], listen: HostPort | None = None
    ) -> int:
        """``serve`` as ``count`` processes on one socket (``capture.processes``): binds
        ``listen`` (else [smtp] listen), supervises the children ``argv`` starts until
        SIGTERM/SIGINT; the exit code."""
        from .capture.processes import Supervisor, bind

        if self.config.metrics.listen is not None:
            raise ArchiverError(
                f"[metrics] listen works with one serve process only (its counters are that "
                f"process's), not with {count}: set [smtp] processes = 1, or remove [metrics] "
                "listen"
            )
        # checked, and the catalog and pack created or upgraded, once, before the children
        # open them all at once
        self.policy  # noqa: B018
        self.archive  # noqa: B018
        self.close()
        address = listen or self.config.smtp.listen
        try:
            sock = bind(address.host, address.port)
        except OSError as exc:
            raise ArchiverError(
                f"cannot listen on {address.host}:{address.port}: {exc.strerror} (is another "
                "archiver or Postfix service on that port?)"
            ) from exc
        with sock:
            return Supervisor(sock, count, argv).run()

    def checkpointer(self) -> Checkpointer | None:
        """The started thread that makes ``serve``'s signed checkpoints, when [integrity]
        asks for them (``archive.checkpointer``); ``None`` when it does not."""
        from .archive.checkpoint import checkpoint_directory
        from .archive.checkpointer import Checkpointer, enabled

        if not enabled(self.config.integrity):
            return None
        made = Checkpointer(
            self.archive.catalog, self.config.integrity, checkpoint_directory(self.config)
        )
        made.start()
        return made

    def filter(self, incoming: Incoming, *, sink: bool = False, reinject: str | None = None) -> int:
        """One message of the pipe filter, archived and reinjected: its exit code. ([smtp]
        sink is for the listener: a pipe is a sink only by its own ``--sink``.)"""
        return self.pipeline(sink=sink, reinject=reinject).run_once(incoming)


def run_filter(args: pipe.PipeArgs, content: bytes) -> int:
    """The pipe filter's work for one message (one process per message: one worker)."""
    with Application.load(args.config, workers=1) as app:
        code = app.filter(pipe.incoming(args, content), sink=args.sink, reinject=args.reinject)
        textfile = app.config.metrics.textfile
    if textfile is not None:
        from .metrics import write_textfile

        try:
            write_textfile(textfile)
        except Exception as exc:  # the message's fate is decided: counting must not change it
            log.warning("cannot write the metrics textfile %s: %s", textfile, exc)
    return code


def filter_main(argv: Sequence[str]) -> int:
    """``postfix-archiver filter``: never raises, never exits with a code Postfix bounces."""
    return pipe.main(argv, run_filter)
