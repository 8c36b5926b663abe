"""``keys init|rotate|rewrap``: the encryption keys of the archive (``archive.encryption``)."""

from __future__ import annotations

import sys

import click

from ..archive import Archive
from ..archive.encryption import init_keys, rewrap_archive, rotate_keys, stored_names
from .common import config_option, err, load, out, progress


@click.group("keys")
def keys() -> None:
    """Encryption keys: create the key file, rotate, re-encrypt old blobs."""


@keys.command("init")
@config_option
def init(config_path: str | None) -> None:
    """Create the key file named by [archive] key_file (when encryption is configured)."""
    config = load(config_path)
    ring = init_keys(config)
    if ring is None:
        out.print(
            'encryption is off ([archive] encryption = "none"): no encryption key file created'
        )
        return
    out.print(
        f"created key file {ring.path} (mode 0600) with key {ring.current}; "
        "back it up apart from the archive: without it the archive cannot be read"
    )


@keys.command("rotate")
@config_option
def rotate(config_path: str | None) -> None:
    """Add a new key; new blobs are sealed with it, old ones stay readable."""
    config = load(config_path)
    ring, previous = rotate_keys(config)
    out.print(
        f"key {ring.current} is current (was {previous}); blobs sealed with older keys stay "
        "readable; `postfix-archiver keys rewrap` re-encrypts them under the new key"
    )


@keys.command("rewrap")
@config_option
def rewrap(config_path: str | None) -> None:
    """Re-encrypt every blob not yet under the current key (and plain ones from before
    encryption); resumable, safe to interrupt."""
    config = load(config_path)
    with Archive(config) as archive:
        names = stored_names(archive)
        with progress(len(names), "blobs", "rewrapping") as advance:
            report = rewrap_archive(archive, names, advance)
    out.print(
        f"re-encrypted {report.resealed} blob(s), encrypted {report.encrypted} plain one(s), "
        f"{report.current} already under the current key"
    )
    if report.damaged:
        err.print(
            f"{len(report.damaged)} damaged blob(s) left alone (run `postfix-archiver verify`): "
            + ", ".join(report.damaged[:10]),
            markup=False,
        )
        sys.exit(1)


COMMANDS = (keys,)
