"""The ``postfix-archiver`` command: a thin layer over the library, no logic of its own.

A module per area holds its commands (``archive_cmds``: import, search, show, export, stats,
verify; ``serve``: serve, run, web, filter; ``postfix_cmds``: postfix-config, doctor;
``users``: user ..., audit; ``rules``: rules test|check; ``keys``: keys init|rotate|rewrap;
``checkpoint``: checkpoint; ``compliance``: retention set, hold ...; ``lifecycle``: purge,
erase; ``index_cmds``: index, reindex; ``restore``: restore; ``ops``: install, backup;
``migrate``: migrate); ``common`` what they share, ``imap_login`` what the IMAP commands
share. The long-running commands build ``app.Application`` and start it.
"""

from __future__ import annotations

import click

from . import (
    archive_cmds,
    checkpoint,
    compliance,
    index_cmds,
    keys,
    lifecycle,
    migrate,
    ops,
    postfix_cmds,
    restore,
    rules,
    serve,
    users,
)
from .common import Cli

__all__ = ["main"]


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="postfix-archiver")
def main() -> None:
    """Selective, tamper-evident mail archive for Postfix."""


for _module in (
    archive_cmds,
    serve,
    postfix_cmds,
    users,
    rules,
    keys,
    checkpoint,
    compliance,
    lifecycle,
    index_cmds,
    restore,
    ops,
    migrate,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)
