"""The ``postfix-archiver`` command: a thin layer over the library, no logic of its own."""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .archive import Archive, verify
from .config import Config, load_config
from .dates import display, header_note
from .errors import ArchiverError, ConfigError
from .export import FORMATS, export
from .importers import open_source, worker_processes
from .search import MAX_INT, ORDERS, parse_int

F = TypeVar("F", bound=Callable[..., Any])
# `search invoice -draft`: a word starting with "-" is a negated query term, not an option
QUERY_ARGS = {"ignore_unknown_options": True}

out = Console(highlight=False, soft_wrap=True)
# soft_wrap: an error stays one line however long its path (rich wraps at 80 columns)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Whole(click.IntRange):
    """A whole number in ASCII digits from ``low`` to ``high``: an id, an offset, a limit.

    Not plain ``IntRange``: its ``int()`` reads ``١٢`` and ``1_000``, and without a ``high``
    a number past SQLite's 64 bits fails deep in the query with a traceback."""

    def __init__(self, low: int = 0, high: int = MAX_INT) -> None:
        super().__init__(low, high)
        self.low = low
        self.high = high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = value if isinstance(value, int) else parse_int(str(value))
        if number is None or not self.low <= number <= self.high:
            text = str(value)
            shown = text if len(text) <= 40 else text[:20] + "..."
            self.fail(f"{shown!r} is not a whole number from {self.low} to {self.high}", param, ctx)
        return number


class HostPort(click.types.StringParamType):
    """``HOST:PORT`` with a port from 1 to 65535 in ASCII digits, checked before anything
    listens or connects (a bad --reinject would otherwise defer every message)."""

    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        host, sep, port = text.rpartition(":")
        number = parse_int(port)
        if not sep or not host or number is None or not 0 < number < 65536:
            shown = text if len(text) <= 60 else text[:40] + "..."
            self.fail(
                f"{shown!r} is not HOST:PORT (port 1-65535), e.g. 127.0.0.1:10025", param, ctx
            )
        return text


class Cli(click.Group):
    """Turns the archiver's own errors into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            err.print(f"[red]config error:[/] {escape(str(exc))}", markup=True)
            sys.exit(78)  # EX_CONFIG
        except ArchiverError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", markup=True)
            sys.exit(1)
        except BrokenPipeError:
            sys.exit(0)  # `... | head` is not an error


def _print_json(doc: object) -> None:
    """One JSON document on stdout, never colored (FORCE_COLOR would break parsers)."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="TOML config file (default: $POSTFIX_ARCHIVER_CONFIG, else built-in defaults).",
    )(fn)


def _config(path: str | None) -> Config:
    return load_config(path)


@contextmanager
def _progress(total: int | None, unit: str, description: str) -> Iterator[Callable[[int], None]]:
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    columns += [TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="postfix-archiver")
def main() -> None:
    """Selective, tamper-evident mail archive for Postfix."""


@main.command("import")
@config_option
@click.argument("source")
@click.option(
    "--workers",
    default=0,
    type=click.IntRange(0, 64),
    help="Parsing processes (default: two per CPU for a large import).",
)
def import_(config_path: str | None, source: str, workers: int) -> None:
    """Import an mbox, a Maildir, an .eml file or a folder of .eml files."""
    config = _config(config_path)
    src = open_source(source)
    new = dup = retried = 0
    with Archive(config) as archive, _progress(src.total, src.unit, "importing") as advance:
        advances: deque[int] = deque()

        def items() -> Iterator[tuple[bytes, Any]]:
            for item in src:
                advances.append(item.advance)
                yield item.raw, item.envelope

        processes = workers or worker_processes(src)
        for result in archive.ingest_many(items(), processes=processes):
            advance(advances.popleft())
            if result.new_message:
                new += 1
            elif result.new_envelope:
                dup += 1
            else:
                retried += 1
    total = new + dup + retried
    err.print(
        f"{src.description}: {total} messages read, {new} new, "
        f"{dup} already archived (new arrival recorded), "
        f"{retried} already imported (nothing added)"
    )


@main.command(context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--limit", default=50, show_default=True, type=Whole(1, 100000))
@click.option("--offset", default=0, type=Whole())
@click.option("--order", default=ORDERS[0], show_default=True, type=click.Choice(ORDERS))
def search(
    config_path: str | None,
    query: tuple[str, ...],
    as_json: bool,
    limit: int,
    offset: int,
    order: str,
) -> None:
    """Search the archive (empty query: everything), newest first."""
    config = _config(config_path)
    with Archive(config, readonly=True) as archive:
        page = archive.search(" ".join(query), limit=limit, offset=offset, order=order)
    if as_json:
        _print_json(page.to_json())
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for name in ("id", "date", "from", "to", "subject", "size", "att"):
        table.add_column(
            name,
            overflow="ellipsis",
            no_wrap=True,
            justify="right" if name in ("id", "size", "att") else "left",
        )
    for r in page.results:
        table.add_row(
            str(r.id),
            display(r.date, zone=False),
            r.from_[:40],
            r.to[:40],
            r.subject[:70],
            _human(r.size),
            str(r.attachment_count or ""),
        )
    out.print(table)
    shown = f"{offset + 1}-{offset + len(page.results)}" if page.results else "0"
    err.print(f"{shown} of {page.total} messages")


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


@main.command()
@config_option
@click.argument("ident")
@click.option("--raw", is_flag=True, help="Write the original message bytes to stdout.")
@click.option("--json", "as_json", is_flag=True, help="Metadata as one JSON document.")
def show(config_path: str | None, ident: str, raw: bool, as_json: bool) -> None:
    """Show one archived message (ID from search, or its SHA-256)."""
    config = _config(config_path)
    with Archive(config, readonly=True) as archive:
        message = archive.resolve(ident)
        if raw:
            data = archive.raw(message)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        view = archive.view(message)
        from .message import parse_message

        parsed = parse_message(archive.raw(message))
    envelopes = [
        {"id": e.id, **e.envelope.canonical(), "retention": e.retention, "tags": list(e.tags)}
        for e in view.envelopes
    ]
    attachments = [
        {
            "index": a.index,
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
        }
        for a in view.attachments
    ]
    if as_json:
        doc = {
            **view.row.summary(),
            "envelopes": envelopes,
            "attachments": attachments,
            "defects": view.row.defects,
            "headers": parsed.headers,
            "body": parsed.body_text,
        }
        _print_json(doc)
        return
    row = view.row
    for name, value in (
        ("Id", str(row.id)),
        ("Date", row.date.isoformat()),
        ("Date header", header_note(parsed.header("Date")) or ""),
        ("From", row.from_),
        ("To", row.to),
        ("Cc", row.cc),
        ("Subject", row.subject),
        ("Message-ID", row.message_id),
        ("Size", f"{row.size} bytes"),
        ("SHA-256", row.sha256),
    ):
        if value:
            out.print(f"[bold]{name}:[/] {_safe(value)}", markup=True)
    for e in view.envelopes:
        env = e.envelope
        out.print(
            f"[bold]Envelope:[/] {env.source} {env.received.isoformat()} "
            f"from <{_safe(env.sender)}> to "
            f"{', '.join('<' + _safe(r) + '>' for r in env.recipients) or '(none)'}"
            + (f" queue {env.queue_id}" if env.queue_id else "")
            + (f" retention {e.retention}" if e.retention else "")
            + (f" tags {_safe(', '.join(e.tags))}" if e.tags else ""),
            markup=True,
        )
    for a in view.attachments:
        out.print(
            f"[bold]Attachment {a.index}:[/] {_safe(a.filename) or '(no name)'} "
            f"{a.content_type} {_human(a.size)}",
            markup=True,
        )
    if row.defects:
        out.print(f"[bold]Defects:[/] {_safe('; '.join(row.defects))}", markup=True)
    out.print()
    out.print(_safe(parsed.body_text), markup=False)


def _safe(text: str) -> str:
    """Text from mail without rich markup or terminal control characters."""
    text = text.replace("\r\n", "\n")
    return escape("".join(c if c.isprintable() or c in "\n\t" else "?" for c in text))


@main.command("export", context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def export_(
    config_path: str | None, query: tuple[str, ...], fmt: str, output: Path, force: bool
) -> None:
    """Export the messages matching QUERY (empty: all), byte for byte."""
    config = _config(config_path)
    with Archive(config, readonly=True) as archive:
        total = archive.search(" ".join(query), limit=1).total
        rows = archive.iter_search(" ".join(query))
        with _progress(total, "messages", "exporting") as advance:
            count = export(archive, rows, fmt, output, force=force, progress=advance)
    err.print(f"exported {count} messages to {output} ({fmt})")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
def stats(config_path: str | None, as_json: bool) -> None:
    """Messages, envelopes, raw and stored bytes."""
    config = _config(config_path)
    with Archive(config, readonly=True) as archive:
        s = archive.stats()
    if as_json:
        _print_json(s.to_json())
        return
    out.print(f"messages:      {s.messages}")
    out.print(f"envelopes:     {s.envelopes}")
    out.print(f"raw bytes:     {s.raw_bytes} ({_human(s.raw_bytes)})")
    out.print(
        f"stored bytes:  {s.stored_bytes} ({_human(s.stored_bytes)}), "
        f"ratio {s.ratio:.3f}, {s.parts} distinct attachments"
    )
    out.print(f"catalog bytes: {s.catalog_bytes} ({_human(s.catalog_bytes)})")
    if s.first_date and s.last_date:
        out.print(f"dates:         {s.first_date:%Y-%m-%d} .. {s.last_date:%Y-%m-%d}")


@main.command("verify")
@config_option
@click.option("--json", "as_json", is_flag=True)
def verify_(config_path: str | None, as_json: bool) -> None:
    """Re-read every blob and re-walk the integrity chain; exit 1 on any problem."""
    config = _config(config_path)
    with Archive(config, readonly=True) as archive:
        s = archive.stats()
        with _progress(s.messages + s.envelopes, "messages", "verifying") as advance:
            report = verify(archive, advance)
    if as_json:
        _print_json(report.to_json())
    elif report.ok:
        out.print(
            f"OK: {report.messages} messages, {report.events} chain events; "
            f"chain head {report.head}"
        )
    else:
        err.print(
            f"[red]FAILED:[/] {len(report.problems)} problem(s); "
            f"the first: {escape(str(report.problems[0]))}",
            markup=True,
        )
        for p in report.problems[1:50]:
            err.print(f"  {p}", markup=False)
    sys.exit(0 if report.ok else 1)


# -- capture: serve, filter, Postfix configuration ------------------------------------------


def _setup_logging(verbose: bool = False) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO: far too much for a mail server's log
    logging.getLogger("mail.log").setLevel(logging.WARNING)


@main.command()
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
@click.option("-v", "--verbose", is_flag=True)
def serve(
    config_path: str | None, sink: bool, listen: str | None, reinject: str | None, verbose: bool
) -> None:
    """Run the after-queue SMTP proxy (default 127.0.0.1:10025 -> 127.0.0.1:10026)."""
    import asyncio

    _setup_logging(verbose)
    config = _config(config_path)
    asyncio.run(_serve(config, config_path, sink=sink, listen=listen, reinject=reinject))


async def _serve(
    config: Config,
    config_path: str | None,
    *,
    sink: bool,
    listen: str | None,
    reinject: str | None,
    web_listen: str | None = None,
) -> None:
    """The SMTP proxy until SIGTERM/SIGINT; with ``web_listen``, the web UI beside it."""
    import asyncio
    import logging

    from .capture.pipeline import CapturePipeline
    from .capture.reinject import parse_hostport
    from .capture.smtp import ProxyServer, run_proxy
    from .rules import compile_policy

    log = logging.getLogger("postfix_archiver.smtp")
    policy = compile_policy(config)
    sink = sink or config.smtp.sink
    host, port = parse_hostport(listen or config.smtp.listen)
    with Archive(config) as archive:
        pipeline = CapturePipeline(
            archive,
            policy,
            reinject=None if sink else (reinject or config.smtp.reinject),
            timeout=config.smtp.timeout,
        )
        server = ProxyServer(
            pipeline, host, port, max_size=config.smtp.max_message_size, timeout=config.smtp.timeout
        )

        def reload() -> None:
            try:
                fresh = load_config(config_path)
                pipeline.set_policy(compile_policy(fresh))
            except ArchiverError as exc:
                log.error("reload refused, the rules in force stay: %s", exc)
                return
            log.info("reloaded rules from %s", config_path or "defaults")

        try:
            if web_listen is None:
                await run_proxy(server, on_reload=reload)
                return
            from .web.server import WebServer, serve_beside

            web = WebServer(config, archive, web_listen, own_signals=False)
            err.print(f"Web UI and API: {web.url}", markup=False)
            proxy = asyncio.create_task(run_proxy(server, on_reload=reload))
            await serve_beside(web, proxy)
        except OSError as exc:
            raise ArchiverError(
                f"cannot listen on {host}:{port}: {exc.strerror} (is another "
                "archiver or Postfix service on that port?)"
            ) from exc


@main.command(
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
    from .capture.pipe import main as pipe_main

    sys.exit(pipe_main(args))


@main.command("postfix-config")
@config_option
@click.option(
    "--mode", type=click.Choice(["proxy", "pipe", "sink"]), default="proxy", show_default=True
)
@click.option("--amavis", is_flag=True, help="Chain behind amavisd-new.")
@click.option(
    "--apply",
    "do_apply",
    is_flag=True,
    help="Apply through postconf (backs up main.cf and master.cf first).",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/postfix"),
    show_default=True,
)
@click.option("--maxproc", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--user", default=None, help="Pipe mode: the user the filter runs as.")
@click.option("--no-reload", is_flag=True, help="With --apply: do not reload Postfix.")
@click.option(
    "--amavis-address",
    default="127.0.0.1:10024",
    show_default=True,
    type=HostPort(),
    metavar="HOST:PORT",
    help="Where amavisd-new listens.",
)
@click.option(
    "--amavis-return",
    default="127.0.0.1:10025",
    show_default=True,
    type=HostPort(),
    metavar="HOST:PORT",
    help="Where amavisd-new hands mail back to Postfix.",
)
def postfix_config(
    config_path: str | None,
    mode: str,
    amavis: bool,
    do_apply: bool,
    config_dir: Path,
    maxproc: int,
    user: str | None,
    no_reload: bool,
    amavis_address: str,
    amavis_return: str,
) -> None:
    """Print (or --apply) the main.cf and master.cf lines for the archiver."""
    from . import postfix

    config = _config(config_path)
    cfg_file = str(Path(config_path).absolute()) if config_path else None
    p = postfix.plan(
        config,
        mode,
        amavis=amavis,
        maxproc=maxproc,
        config_file=cfg_file,
        user=user,
        executable=_executable(),
        amavis_address=amavis_address,
        amavis_return=amavis_return,
    )
    if not do_apply:
        out.print(p.render(), markup=False, end="")
        return
    for line in postfix.apply(config_dir, p, reload=not no_reload):
        out.print(line, markup=False)


def _executable() -> str:
    """This very command, so the pipe entry runs the same installation."""
    import shutil

    candidate = Path(sys.argv[0])
    if candidate.name == "postfix-archiver" and candidate.exists():
        return str(candidate.absolute())
    return shutil.which("postfix-archiver") or "postfix-archiver"


@main.command()
@config_option
@click.option(
    "--mode",
    type=click.Choice(["proxy", "pipe", "sink"]),
    default=None,
    help="The mode to check for (default: what main.cf shows).",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/postfix"),
    show_default=True,
)
def doctor(config_path: str | None, mode: str | None, config_dir: Path) -> None:
    """Check that Postfix and the archiver are set up to work together; say what to fix."""
    from .doctor import run_checks

    config = _config(config_path)
    ok = True
    for check in run_checks(config, config_dir, mode):
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.what}", markup=True)
        if not check.ok:
            ok = False
            out.print(f"      fix: {check.fix}", markup=False)
    sys.exit(0 if ok else 1)


@main.command()
@config_option
@click.option("--web-listen", default=None, metavar="HOST:PORT", help="Override [web] listen.")
def run(config_path: str | None, web_listen: str | None) -> None:
    """Start the archiver (SMTP proxy and web UI) and print the lines to paste into Postfix."""
    import asyncio

    from . import postfix
    from .web.server import has_users

    config = _config(config_path)
    _setup_logging()
    err.print(
        "Paste into Postfix (or run: postfix-archiver postfix-config --apply):\n", markup=False
    )
    err.print(postfix.plan(config, "proxy").render(), markup=False)
    err.print(f"Archive data: {config.archive.home.absolute()}", markup=False)
    if not has_users(config):
        err.print(_NO_USERS, markup=False)
    asyncio.run(
        _serve(
            config,
            config_path,
            sink=False,
            listen=None,
            reinject=None,
            web_listen=web_listen or config.web.listen,
        )
    )


_NO_USERS = (
    "No web users yet. Create the first admin (it asks for a password):\n"
    "    postfix-archiver user add admin --role admin"
)


@main.command()
@config_option
@click.option("--listen", default=None, metavar="HOST:PORT", help="Override [web] listen.")
@click.option("-v", "--verbose", is_flag=True)
def web(config_path: str | None, listen: str | None, verbose: bool) -> None:
    """Serve the web UI and the REST API (default 127.0.0.1:8025)."""
    import asyncio

    from .web.server import WebServer, has_users

    _setup_logging(verbose)
    config = _config(config_path)
    if not has_users(config):
        err.print(_NO_USERS, markup=False)
    with Archive(config) as archive:
        server = WebServer(config, archive, listen or config.web.listen)
        err.print(f"Web UI and API: {server.url} (API under /api/v1)", markup=False)
        asyncio.run(server.serve())


# -- web users and the audit log -----------------------------------------------------------


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
    )
    return value


@main.group()
def user() -> None:
    """Web users (admin, auditor, user) and their API tokens."""


@user.command("add")
@config_option
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["admin", "auditor", "user"]), required=True, help="What they see."
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    help="A mail address of theirs (repeat); a user sees mail to or from these.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(
    config_path: str | None,
    name: str,
    role: str,
    addresses: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Add a web user; the password is asked for (or read with --password-stdin)."""
    from .web.accounts import Accounts, check_name

    config = _config(config_path)
    check_name(name)
    with Accounts.open(config) as accounts:
        if accounts.get_user(name) is not None:
            raise ArchiverError(f"user {name!r} exists already (user passwd to reset it)")
        password = _read_password(password_stdin)
        created = accounts.add_user(name, role, password, addresses)
        accounts.record(
            _cli_who(), "local", "user.add",
            {"name": created.name, "role": created.role, "addresses": list(created.addresses)},
        )  # fmt: skip
    err.print(
        f"added {created.name} ({created.role}"
        + (f"; {', '.join(created.addresses)}" if created.addresses else "")
        + ")",
        markup=False,
    )


@user.command("passwd")
@config_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_passwd(config_path: str | None, name: str, password_stdin: bool) -> None:
    """Set a new password (ends the user's web sessions)."""
    from .web.accounts import Accounts

    config = _config(config_path)
    with Accounts.open(config, create=False) as accounts:
        accounts.require_user(name)
        accounts.set_password(name, _read_password(password_stdin))
        accounts.record(_cli_who(), "local", "user.password", {"name": name})
    err.print(f"new password set for {name}", markup=False)


@user.command("token")
@config_option
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown by user tokens).")
def user_token(config_path: str | None, name: str, label: str) -> None:
    """Print a new API token for NAME (its last line; shown once, stored only hashed)."""
    from .web.accounts import Accounts

    config = _config(config_path)
    with Accounts.open(config, create=False) as accounts:
        info, secret = accounts.create_token(name, label)
        accounts.record(
            _cli_who(),
            "local",
            "token.create",
            {"name": name, "token": info.id, "label": info.label},
        )
    err.print(
        f"API token {info.id} for {name} ({info.label}); use it as 'Authorization: Bearer TOKEN'. "
        "It is shown only now:",
        markup=False,
    )
    click.echo(secret)


@user.command("tokens")
@config_option
@click.argument("name")
def user_tokens(config_path: str | None, name: str) -> None:
    """List the API tokens of NAME (ids and labels; the secrets are not kept)."""
    from .web.accounts import Accounts

    with Accounts.open(_config(config_path), create=False) as accounts:
        tokens = accounts.tokens(name)
    for t in tokens:
        click.echo(f"{t.id}\t{t.created[:19]}\t{t.label}")
    if not tokens:
        err.print(f"{name} has no API tokens", markup=False)


@user.command("revoke")
@config_option
@click.argument("name")
@click.argument("token_id", required=False, type=Whole(1))
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every token of NAME.")
def user_revoke(config_path: str | None, name: str, token_id: int | None, revoke_all: bool) -> None:
    """Revoke API token TOKEN_ID of NAME (ids from user tokens), or --all."""
    from .web.accounts import Accounts

    if (token_id is None) == (not revoke_all):
        raise click.UsageError("give a TOKEN_ID or --all")
    with Accounts.open(_config(config_path), create=False) as accounts:
        count = accounts.revoke_token(name, None if revoke_all else token_id)
        if count == 0:
            raise ArchiverError(f"{name} has no token {token_id} (see: user tokens {name})")
        accounts.record(
            _cli_who(), "local", "token.revoke", {"name": name, "token": token_id or "all"}
        )
    err.print(f"revoked {count} token{'s' if count != 1 else ''} of {name}", markup=False)


@user.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
def user_list(config_path: str | None, as_json: bool) -> None:
    """The web users, their roles and addresses."""
    from .web.accounts import DB_NAME, Accounts

    config = _config(config_path)
    users = []
    if (config.archive.home / DB_NAME).exists():  # listing creates nothing
        with Accounts.open(config, create=False) as accounts:
            users = accounts.users()
    if as_json:
        _print_json({"users": [u.to_json() for u in users]})
        return
    for u in users:
        click.echo(f"{u.name}\t{u.role}\t{' '.join(u.addresses)}")
    if not users:
        err.print(_NO_USERS, markup=False)


@user.command("remove")
@config_option
@click.argument("name")
def user_remove(config_path: str | None, name: str) -> None:
    """Remove a web user with their sessions and tokens (audit entries stay)."""
    from .web.accounts import Accounts

    with Accounts.open(_config(config_path), create=False) as accounts:
        accounts.remove_user(name)
        accounts.record(_cli_who(), "local", "user.remove", {"name": name})
    err.print(f"removed {name}", markup=False)


def _cli_who() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--limit", default=50, show_default=True, type=Whole(1, 1_000_000))
@click.option("--user", "user_name", default=None, help="Only this user's entries.")
@click.option("--action", default=None, help="Only this action (login, search, view, ...).")
@click.option("--verify", is_flag=True, help="Check the audit log's hash chain; exit 1 if broken.")
def audit(
    config_path: str | None,
    as_json: bool,
    limit: int,
    user_name: str | None,
    action: str | None,
    verify: bool,
) -> None:
    """The web audit log: the last entries, oldest first (logins, searches, views, ...)."""
    from .web.accounts import Accounts

    with Accounts.open(_config(config_path), create=False) as accounts:
        if verify:
            check = accounts.verify_audit()
            if as_json:
                _print_json(
                    {"ok": check.ok, "entries": check.entries, "head": check.head,
                     "problem": check.problem}
                )  # fmt: skip
            elif check.ok:
                out.print(f"OK: {check.entries} audit entries, chain head {check.head}")
            else:
                err.print(f"[red]FAILED:[/] {escape(str(check.problem))}", markup=True)
            sys.exit(0 if check.ok else 1)
        total, entries = accounts.audit(limit=limit, user=user_name, action=action)
    entries.reverse()
    if as_json:
        _print_json({"total": total, "entries": [e.to_json() for e in entries]})
        return
    for e in entries:
        detail = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in e.detail.items())
        out.print(
            _safe(f"{e.time[:19].replace('T', ' ')} {e.user} {e.client} {e.action} {detail}"),
            markup=True,
        )
    if total > len(entries):
        err.print(f"(the last {len(entries)} of {total} entries; --limit for more)", markup=False)


@main.group()
def rules() -> None:
    """Test and check the selective archiving rules."""


@rules.command("test")
@config_option
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-f", "--sender", required=True, help="Envelope sender ('' for the null sender).")
@click.option(
    "-r",
    "--recipient",
    "recipients",
    multiple=True,
    required=True,
    help="Envelope recipient (repeat for several).",
)
@click.option("--client", default=None, help="Client address, as XFORWARD would give it.")
@click.option("--json", "as_json", is_flag=True)
def rules_test(
    config_path: str | None,
    message: Path,
    sender: str,
    recipients: tuple[str, ...],
    client: str | None,
    as_json: bool,
) -> None:
    """Show each recipient's decision for MESSAGE and the rule that made it."""
    from .rules import compile_policy
    from .rules.report import evaluate_raw, format_verdict, verdict_json

    policy = compile_policy(_config(config_path))
    verdict = evaluate_raw(policy, message.read_bytes(), sender, recipients, client)
    out.print(verdict_json(verdict) if as_json else format_verdict(verdict), markup=False)


@rules.command("check")
@config_option
@click.option("--presets", is_flag=True, help="Also list the shipped presets.")
def rules_check(config_path: str | None, presets: bool) -> None:
    """Validate the config and list the rules in the order they are tried."""
    from .rules.report import check_rules, format_policy, format_presets

    config = _config(config_path)
    policy = check_rules(config)
    out.print(f"{config.source.path or 'built-in defaults'}: OK", markup=False)
    out.print(format_policy(policy), markup=False)
    if presets:
        out.print(format_presets(), markup=False)


if __name__ == "__main__":  # pragma: no cover
    main()
