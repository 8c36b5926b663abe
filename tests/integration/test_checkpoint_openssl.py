"""A checkpoint checked with standard tools only, as the README tells an auditor: the
``openssl`` binary verifies its signature and computes the key id."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from requirements import require_binary

from postfix_archiver.archive import Archive
from postfix_archiver.archive.checkpoint import make_checkpoint
from postfix_archiver.config import Config, IntegritySettings
from postfix_archiver.envelope import Envelope
from postfix_archiver.integrity import checkpoint as fmt
from postfix_archiver.integrity.keys import create_signing_key

pytestmark = [pytest.mark.integration]


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(require_binary("openssl", "OpenSSL")), *map(str, args)],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_openssl_verifies_the_signature_and_computes_the_key_id(
    config: Config, tmp_path: Path
) -> None:
    made = create_signing_key(tmp_path / "keys" / "signing.key")
    with Archive(config) as archive:
        archive.ingest(b"Subject: hello\r\n\r\nbody\r\n", Envelope("a@example.com", ("b@x.org",)))
        settings = IntegritySettings(signing_key=made.private, signing_key_configured=True)
        path = make_checkpoint(archive.catalog, settings, tmp_path / "cps").path
    sig = fmt.signature_path(path)
    verify: list[str | Path] = ["pkeyutl", "-verify", "-pubin", "-inkey", made.public, "-rawin"]
    good = openssl(*verify, "-in", path, "-sigfile", sig)
    assert good.returncode == 0, good.stderr
    assert b"Signature Verified Successfully" in good.stdout
    # one changed byte, and openssl says no
    altered = tmp_path / "altered.json"
    altered.write_bytes(path.read_bytes().replace(b'"events":1', b'"events":2'))
    bad = openssl(*verify, "-in", altered, "-sigfile", sig)
    assert bad.returncode != 0
    assert b"Signature Verification Failure" in bad.stdout
    # the key id in the checkpoint is the SHA-256 of the public key's DER
    der = openssl("pkey", "-pubin", "-in", made.public, "-outform", "DER")
    assert der.returncode == 0, der.stderr
    assert (
        fmt.parse(path.read_bytes(), "").key == "sha256:" + hashlib.sha256(der.stdout).hexdigest()
    )
