"""What the IMAP commands (``import imaps://…``, ``restore --to imaps://…``) share: where the
password comes from (never the command line) and which CA to trust."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click

from ..errors import SourceError

F = TypeVar("F", bound=Callable[..., object])


def imap_login_options(command: F) -> F:
    """``--password-stdin``, ``--password-file`` and ``--ca-file``."""
    for option in reversed(
        [
            click.option(
                "--password-stdin", is_flag=True, help="IMAP: read the password from stdin."
            ),
            click.option(
                "--password-file",
                type=click.Path(dir_okay=False),
                help="IMAP: read the password from the first line of this file.",
            ),
            click.option(
                "--ca-file",
                type=click.Path(dir_okay=False),
                help="IMAP: trust the server's certificate if this CA (PEM) signed it.",
            ),
        ]
    ):
        command = option(command)
    return command


def imap_password(password_stdin: bool, password_file: str | None) -> str:
    """The IMAP password from stdin or a file: never from the command line, where ``ps``
    and the shell's history would show it."""
    if password_stdin and password_file:
        raise click.UsageError("give --password-stdin or --password-file, not both")
    if password_stdin:
        line = sys.stdin.readline()
    elif password_file:
        try:
            with open(password_file, encoding="utf-8") as f:
                line = f.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{password_file}: cannot read the password file ({exc})") from None
    else:
        raise click.UsageError(
            "an IMAP import needs the password: --password-stdin or --password-file "
            "(never on the command line)"
        )
    password = line.rstrip("\r\n")
    if not password:
        raise click.UsageError("the password is empty")
    return password
