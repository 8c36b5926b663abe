"""What every command shares: the consoles, ``--config``, the checked parameter types, the
progress bar, one JSON document on stdout, and the group that turns errors into one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

from ..config import Config, load_config, parse_hostport
from ..config import HostPort as Address
from ..errors import ArchiverError, ConfigError
from ..search import MAX_INT, parse_int

F = TypeVar("F", bound=Callable[..., Any])
# `search invoice -draft`: a word starting with "-" is a negated query term, not an option
QUERY_ARGS = {"ignore_unknown_options": True}

out = Console(highlight=False, soft_wrap=True)
# soft_wrap: an error stays one line however long its path (rich wraps at 80 columns)
err = Console(stderr=True, highlight=False, soft_wrap=True)

NO_USERS = (
    "No web users yet. Create the first admin (it asks for a password):\n"
    "    postfix-archiver user add admin --role admin"
)


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
    listens or connects (a bad --reinject would otherwise defer every message); the value
    is ``config.HostPort``, parsed by the one parser config uses too."""

    name = "host:port"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Address:
        text = str(value)
        try:
            return parse_hostport(text)
        except ValueError:
            shown = text if len(text) <= 60 else text[:40] + "..."
            self.fail(
                f"{shown!r} is not HOST:PORT (port 1-65535), e.g. 127.0.0.1:10025", param, ctx
            )


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


def print_json(doc: object) -> None:
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


def load(path: str | None) -> Config:
    return load_config(path)


@contextmanager
def progress(total: int | None, unit: str, description: str) -> Iterator[Callable[[int], None]]:
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    columns += [TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def cli_who() -> str:
    """Who ran a command, as the audit log names them: ``cli:`` and the system user."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def safe(text: str) -> str:
    """Text from mail without rich markup or terminal control characters."""
    text = text.replace("\r\n", "\n")
    return escape("".join(c if c.isprintable() or c in "\n\t" else "?" for c in text))
