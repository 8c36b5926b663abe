"""Running the archiver as a service: ``install`` (user, directories, config, systemd
units) and ``backup`` (a consistent copy while ``serve`` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import config_option, err, human, load, out
from .postfix_cmds import config_dir_option

if TYPE_CHECKING:
    from ..install import Install


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
@click.option(
    "--no-postfix",
    is_flag=True,
    help="With --apply: leave Postfix's main.cf and master.cf alone (no postfix-config, doctor).",
)
@config_dir_option
def install(
    user: str, home: str, apply_: bool, root: str, no_postfix: bool, config_dir: Path
) -> None:
    """Print (or --apply, idempotently) a production install: the system user, directories,
    a config file with the defaults commented (never overwritten), the systemd units, then
    Postfix's side (postfix-config --apply, proxy mode) and doctor's checks."""
    from ..install import Install, check, default_exe

    exe = default_exe()
    check(user, home, exe)
    plan = Install(user=user, home=Path(home), exe=exe, root=Path(root).absolute())
    if not apply_:
        out.print(plan.plan(), markup=False)
        return
    for line in plan.apply():
        out.print(line, markup=False)
    done = not no_postfix and _postfix_side(plan, config_dir)
    out.print("\n".join(["", *plan.next_steps(postfix=not done)]), markup=False)


def _postfix_side(plan: Install, config_dir: Path) -> bool:
    """``postfix-config --apply`` (proxy mode) with the installed config, then ``doctor``;
    its failures are printed, not fatal: the archiver is not started yet, so doctor says
    what is left (starting it, for one)."""
    from .. import postfix
    from ..config import load_config
    from ..doctor import run_checks

    if not (config_dir / "main.cf").is_file():
        out.print(
            f"no Postfix configuration in {config_dir} (is postfix installed? --config-dir "
            "names another): postfix-config --apply and doctor skipped",
            markup=False,
        )
        return False
    config = load_config(plan.staged(plan.config_path))
    p = postfix.plan(config, "proxy", config_file=str(plan.config_path), executable=plan.exe)
    for line in postfix.apply(config_dir, p):
        out.print(line, markup=False)
    out.print("doctor:", markup=False)
    for check in run_checks(config, config_dir, "proxy"):
        out.print(f"  {'ok  ' if check.ok else 'FAIL'} {check.what}", markup=False)
        if not check.ok:
            out.print(f"       fix: {check.fix}", markup=False)
    return True


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
