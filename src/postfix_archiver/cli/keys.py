"""``keys init|rotate|rewrap``: the archive's keys. The Ed25519 key that signs checkpoints
(``integrity.keys``) and the encryption key file (``archive.encryption``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..archive import Archive
from ..archive.encryption import init_keys, rewrap_archive, rotate_keys, stored_names
from ..integrity.keys import create_signing_key
from .common import config_option, err, load, out, progress


@click.group("keys")
def keys() -> None:
    """The checkpoint signing key and the encryption keys: create, rotate, re-encrypt."""


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


@keys.command("init")
@config_option
def init(config_path: str | None) -> None:
    """Create the keys the config names that are not there yet: the key that signs
    checkpoints ([integrity] signing_key, its public key beside it) and, when encryption is
    on, the encryption key file ([archive] key_file). Never overwrites a key."""
    config = load(config_path)
    signing = config.integrity.signing_key
    encrypted = config.archive.encrypted
    have_signing = _exists(signing)
    have_key_file = encrypted and _exists(config.archive.key_file)
    if have_signing and (have_key_file or not encrypted):
        create_signing_key(signing)  # refuses, saying the key exists and is never overwritten
    if have_signing:
        out.print(f"signing key:  {signing} exists already; kept", markup=False)
    else:
        made = create_signing_key(signing)
        out.print(
            f"signing key:  {made.private} (keep it secret, outside the archive)", markup=False
        )
        out.print(f"public key:   {made.public} (give it to your auditors)", markup=False)
        out.print(f"key id:       {made.id}", markup=False)
        err.print(
            "Make a checkpoint with `postfix-archiver checkpoint`; `serve` makes them as "
            "[integrity] says.",
            markup=False,
        )
    if not encrypted:
        out.print(
            'encryption is off ([archive] encryption = "none"): no encryption key file created'
        )
    elif have_key_file:
        out.print(f"key file:     {config.archive.key_file} exists already; kept", markup=False)
    else:
        ring = init_keys(config)
        assert ring is not None
        out.print(
            f"created key file {ring.path} (mode 0600) with key {ring.current}; "
            "back it up apart from the archive: without it the archive cannot be read",
            markup=False,
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
