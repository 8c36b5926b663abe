"""``checkpoint``: sign the chain head now (``archive.checkpoint``)."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from ..archive import Archive
from ..archive.checkpoint import checkpoint_directory, make_checkpoint
from .common import config_option, err, load, out, print_json


@click.command("checkpoint")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def checkpoint(config_path: str | None, as_json: bool) -> None:
    """Sign the chain head (event count, head hash, time) and store it under
    <home>/checkpoints; timestamp it when [integrity] tsa_url is set. Exit 1 when the
    checkpoint was written but the time-stamping authority gave no timestamp."""
    config = load(config_path)
    with Archive(config, readonly=True) as archive:
        written = make_checkpoint(archive.catalog, config.integrity, checkpoint_directory(config))
    if as_json:
        print_json(written.to_json())
    else:
        c = written.checkpoint
        out.print(f"checkpoint of {c.events} events, head {c.head}", markup=False)
        out.print(f"written to {written.path} (signature: {written.path.name}.sig)", markup=False)
        if written.timestamp is not None:
            out.print(
                f"timestamped by {config.integrity.tsa_url} at "
                f"{written.timestamp:%Y-%m-%d %H:%M:%S} UTC ({written.path.name}.tsr)",
                markup=False,
            )
    if written.timestamp_error is not None:
        err.print(
            f"[red]NOT timestamped:[/] {escape(written.timestamp_error)} (the checkpoint is "
            "signed and stored without a timestamp)",
            markup=True,
        )
        sys.exit(1)


COMMANDS = (checkpoint,)
