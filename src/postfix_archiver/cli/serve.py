"""The long-running commands and the pipe filter: serve, run, web, filter. Each builds the
``app.Application`` from its config and starts what it asks for."""

from __future__ import annotations

import sys

import click

from ..app import Application, filter_main
from ..config import MAX_PROCESSES
from ..config import HostPort as Address
from .common import NO_USERS, HostPort, config_option, err, load


def _setup_logging(verbose: bool = False, format: str = "text") -> None:
    from ..logs import setup

    setup(format, verbose=verbose)


@click.command()
@config_option
@click.option("--sink", is_flag=True, help="Archive without reinjection (BCC/journal sink).")
@click.option(
    "--listen", default=None, type=HostPort(), metavar="HOST:PORT", help="Override [smtp] listen."
)
@click.option(
    "--reinject",
    default=None,
    type=HostPort(),
    metavar="HOST:PORT",
    help="Override [smtp] reinject.",
)
@click.option(
    "--processes",
    default=None,
    type=click.IntRange(1, MAX_PROCESSES),
    help="Override [smtp] processes: listening processes on the one port.",
)
# a child of a supervised serve (capture.processes): never typed by hand
@click.option("--worker", default=None, hidden=True)
@click.option("-v", "--verbose", is_flag=True)
def serve(
    config_path: str | None,
    sink: bool,
    listen: Address | None,
    reinject: Address | None,
    processes: int | None,
    worker: str | None,
    verbose: bool,
) -> None:
    """Run the after-queue SMTP proxy (default 127.0.0.1:10025 -> 127.0.0.1:10026)."""
    import asyncio

    from ..capture.processes import Worker

    child = None
    if worker is not None:
        try:
            child = Worker.parse(worker)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    with Application.load(config_path) as app:
        _setup_logging(verbose, app.config.log.format)
        count = processes or app.config.smtp.processes
        if child is None and count > 1:

            def argv(w: Worker) -> list[str]:
                args = [sys.executable, "-m", "postfix_archiver.cli", "serve", "--worker", w.spec()]
                if config_path is not None:
                    args += ["--config", config_path]
                if sink:
                    args.append("--sink")
                if reinject is not None:
                    args += ["--reinject", str(reinject)]
                if verbose:
                    args.append("--verbose")
                return args

            code = app.serve_processes(count, argv, listen)
            if code:
                sys.exit(code)
            return
        asyncio.run(app.serve(sink=sink, listen=listen, reinject=reinject, worker=child))


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def filter(args: tuple[str, ...]) -> None:
    """Pipe mode: [--config F] [--reinject HOST:PORT] -f SENDER -- RCPT... (message on stdin).

    Exit codes per sysexits: 0, 75 for every temporary failure, 69 only when the
    reinjection listener rejected permanently. Also accepts HOST PORT SENDER RCPT...
    """
    sys.exit(filter_main(args))


@click.command()
@config_option
@click.option("--web-listen", default=None, metavar="HOST:PORT", help="Override [web] listen.")
def run(config_path: str | None, web_listen: str | None) -> None:
    """Start the archiver (SMTP proxy and web UI) and print the lines to paste into Postfix."""
    import asyncio

    from .. import postfix

    config = load(config_path)
    _setup_logging(format=config.log.format)
    err.print(
        "Paste into Postfix (or run: postfix-archiver postfix-config --apply):\n", markup=False
    )
    err.print(postfix.plan(config, "proxy").render(), markup=False)
    err.print(f"Archive data: {config.archive.home.absolute()}", markup=False)
    with Application(config, config_path=config_path) as app:
        if not app.has_users():
            err.print(NO_USERS, markup=False)
        asyncio.run(
            app.serve(
                web_listen=web_listen or config.web.listen,
                on_web=lambda url: err.print(f"Web UI and API: {url}", markup=False),
            )
        )


@click.command()
@config_option
@click.option("--listen", default=None, metavar="HOST:PORT", help="Override [web] listen.")
@click.option("-v", "--verbose", is_flag=True)
def web(config_path: str | None, listen: str | None, verbose: bool) -> None:
    """Serve the web UI and the REST API (default 127.0.0.1:8025)."""
    import asyncio

    with Application.load(config_path) as app:
        _setup_logging(verbose, app.config.log.format)
        if not app.has_users():
            err.print(NO_USERS, markup=False)
        server = app.web_server(listen)
        err.print(f"Web UI and API: {server.url} (API under /api/v1)", markup=False)
        asyncio.run(server.serve())


COMMANDS = (serve, filter, run, web)
