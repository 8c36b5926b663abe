"""Running the archiver as a service: ``install`` (user, directories, config, systemd
units) and ``backup`` (a consistent copy while ``serve`` runs)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import config_option, err, human, load, out


@click.command()
@click.option("--user", default="archiver", show_default=True, help="The system user to run as.")
@click.option(
    "--home",
    default="/var/lib/postfix-archiver",
    show_default=True,
    help="The archive's data directory.",
)
@click.option("--apply", "apply_", is_flag=True, help="Do it (as root); else print the plan.")
@click.option(
    "--root",
    default="/",
    type=click.Path(file_okay=False),
    help="Stage the files under this directory (packaging, tests); the user is the system's.",
)
def install(user: str, home: str, apply_: bool, root: str) -> None:
    """Print (or --apply, idempotently) a production install: the system user, directories,
    a config file with the defaults commented (never overwritten), the systemd units."""
    from ..install import Install, check, default_exe

    exe = default_exe()
    check(user, home, exe)
    plan = Install(user=user, home=Path(home), exe=exe, root=Path(root).absolute())
    if not apply_:
        out.print(plan.plan(), markup=False)
        return
    for line in plan.apply():
        out.print(line, markup=False)
    out.print("\n".join(["", *plan.next_steps()]), markup=False)


@click.command()
@config_option
@click.argument("dest", type=click.Path(file_okay=False))
def backup(config_path: str | None, dest: str) -> None:
    """Copy the catalog, the web accounts and the blobs into the new directory DEST, while
    the archiver runs (SQLite's online backup API); check it with
    POSTFIX_ARCHIVER_HOME=DEST postfix-archiver verify."""
    from ..backup import backup as run_backup

    copied = run_backup(load(config_path), Path(dest))
    err.print(
        f"backed up {', '.join(copied.databases)} and {copied.blob_files} blob files "
        f"({human(copied.bytes)}) to {dest}",
        markup=False,
    )


COMMANDS = (install, backup)
