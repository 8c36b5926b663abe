"""``restore``: archived mail back into a mailbox, byte for byte (the work is the library's:
``postfix_archiver.restore``; this reads the command line).

``--to imaps://USER@HOST/FOLDER`` appends each message with its original arrival time as
INTERNALDATE, skipping those already in the folder (a re-run after an interruption adds
nothing twice); ``--to smtp:ADDRESS`` re-delivers the original bytes to ADDRESS through
the local MTA. Audited like every change: the intent before, the outcome after.
"""

from __future__ import annotations

import click

from ..archive import Archive
from ..config import parse_hostport
from ..envelope import clean_text
from ..errors import ConfigError
from ..importers.imap_url import is_imap_url, parse_imap_url
from ..restore import ImapTarget, SmtpTarget, Target, selected
from ..restore import restore as restore_messages
from ..search import parse_query
from .common import QUERY_ARGS, config_option, err, load, progress
from .compliance import record_audit
from .imap_login import imap_login_options, imap_password


def _smtp_target(target: str) -> str:
    address = target.removeprefix("smtp:").strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c in address for c in " <>\r\n\t,"):
        raise click.UsageError(f"--to {target!r}: give one address, smtp:user@example.com")
    return address


@click.command("restore", context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1, required=True)
@click.option(
    "--to",
    "target",
    required=True,
    help="imaps://USER@HOST[:PORT]/FOLDER (imap:// with STARTTLS) or smtp:ADDRESS.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be restored; send nothing.")
@imap_login_options
@click.option(
    "--master-user",
    help="IMAP: sign in as this master user (its password) on USER's behalf.",
)
@click.option(
    "--smtp",
    "smtp_server",
    default="127.0.0.1:25",
    show_default=True,
    help="smtp: restores: the MTA that delivers them (HOST:PORT).",
)
def restore(
    config_path: str | None,
    query: tuple[str, ...],
    target: str,
    dry_run: bool,
    password_stdin: bool,
    password_file: str | None,
    master_user: str | None,
    ca_file: str | None,
    smtp_server: str,
) -> None:
    """Restore the messages matching QUERY (id:42 for one) to a mailbox: IMAP APPEND with
    their original date, or re-delivery by SMTP. Quote QUERY."""
    config = load(config_path)
    text = clean_text(" ".join(query))
    parse_query(text)  # a mistake is one line, not an intent the audit log keeps
    imap = is_imap_url(target)
    if imap:
        url = parse_imap_url(target)
    elif target.startswith("smtp:"):
        address = _smtp_target(target)
        try:
            parse_hostport(smtp_server)
        except (ConfigError, ValueError) as exc:
            raise click.UsageError(f"--smtp: {exc}") from None
    else:
        raise click.UsageError(
            f"--to {target!r}: give imaps://USER@HOST/FOLDER, imap://… or smtp:ADDRESS"
        )
    if not imap and (password_stdin or password_file or master_user or ca_file):
        raise click.UsageError(
            "--password-stdin, --password-file, --master-user and --ca-file are for IMAP"
        )
    with Archive(config, readonly=True) as archive:
        total, rows = selected(archive, text)
        chosen: Target
        if dry_run:
            where = f"{url.account}/{url.folder or 'INBOX'}" if imap else f"smtp:{address}"
            err.print(f"would restore {total} messages to {where} (dry run)", markup=False)
            return
        if imap:
            password = imap_password(password_stdin, password_file)
            chosen = ImapTarget(url, password, ca_file=ca_file, master=master_user)
        else:
            chosen = SmtpTarget(address, smtp_server)
        with progress(total, "messages", "restoring") as advance:
            outcome = restore_messages(
                archive,
                rows,
                chosen,
                count=total,
                audit=lambda action, detail: record_audit(config, action, detail),
                detail={"query": text},
                advance=advance,
            )
    err.print(outcome.summary(chosen.where), markup=False)


COMMANDS = (restore,)
