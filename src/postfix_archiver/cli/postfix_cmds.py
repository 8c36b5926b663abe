"""Postfix's side: the main.cf and master.cf lines (postfix-config) and the checks (doctor)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..config import HostPort as Address
from .common import HostPort, config_option, load, out

# Postfix's configuration directory, for postfix-config and doctor alike
config_dir_option = click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/etc/postfix"),
    show_default=True,
)


@click.command("postfix-config")
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
@config_dir_option
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
    amavis_address: Address,
    amavis_return: Address,
) -> None:
    """Print (or --apply) the main.cf and master.cf lines for the archiver."""
    from .. import postfix

    config = load(config_path)
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


@click.command()
@config_option
@click.option(
    "--mode",
    type=click.Choice(["proxy", "pipe", "sink"]),
    default=None,
    help="The mode to check for (default: what main.cf shows).",
)
@config_dir_option
def doctor(config_path: str | None, mode: str | None, config_dir: Path) -> None:
    """Check that Postfix and the archiver are set up to work together; say what to fix."""
    from ..doctor import run_checks

    config = load(config_path)
    ok = True
    for check in run_checks(config, config_dir, mode):
        mark = "[green]ok[/]  " if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.what}", markup=True)
        if not check.ok:
            ok = False
            out.print(f"      fix: {check.fix}", markup=False)
    sys.exit(0 if ok else 1)


COMMANDS = (postfix_config, doctor)
