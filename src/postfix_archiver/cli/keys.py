"""``keys``: the archive's keys. ``keys init`` creates the Ed25519 key that signs checkpoints
(``integrity.keys``)."""

from __future__ import annotations

import click

from ..integrity.keys import create_signing_key
from .common import config_option, err, load, out


@click.group()
def keys() -> None:
    """Create the keys that sign checkpoints."""


@keys.command("init")
@config_option
def init(config_path: str | None) -> None:
    """Create the checkpoint signing key ([integrity] signing_key) and its public key beside
    it; never overwrites an existing key."""
    config = load(config_path)
    made = create_signing_key(config.integrity.signing_key)
    out.print(f"signing key:  {made.private} (keep it secret, outside the archive)", markup=False)
    out.print(f"public key:   {made.public} (give it to your auditors)", markup=False)
    out.print(f"key id:       {made.id}", markup=False)
    err.print(
        "Make a checkpoint with `postfix-archiver checkpoint`; `serve` makes them as "
        "[integrity] says.",
        markup=False,
    )


COMMANDS = (keys,)
