"""Encryption at rest end to end: mail through a real Postfix and the proxy, archived sealed.

The key file is made by ``keys init`` outside the archive directory; the message must come
back whole from ``show --raw`` and ``verify``, and its text and SHA-256 appear in no file of
the blob store.
"""

from __future__ import annotations

import hashlib
from email.utils import make_msgid
from pathlib import Path

import pytest
from archiver_process import Archiver, wait_archived
from postfix_harness import PostfixInstance, SmtpSink

pytestmark = [pytest.mark.integration]

UNIQUE = "quokka-sealed-7781"


def test_proxy_archives_sealed_blobs(base: Path, mta: tuple[PostfixInstance, SmtpSink]) -> None:
    postfix, sink = mta
    arch = Archiver(base)
    key_file = base / "etc" / "archive.keys"
    text = arch.config_path.read_text()
    arch.config_path.write_text(
        text.replace(
            f'home = "{arch.home}"\n',
            f'home = "{arch.home}"\nencryption = "aes-256-gcm"\nkey_file = "{key_file}"\n',
        )
        # keys init makes the checkpoint signing key too: here, never in /etc
        + f'[integrity]\nsigning_key = "{base / "etc" / "signing.key"}"\n'
    )
    arch.cli("keys", "init")
    assert key_file.stat().st_mode & 0o777 == 0o600
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        msgid = make_msgid(domain="example.com")
        raw = (
            f"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: sealed\r\n"
            f"Message-ID: {msgid}\r\n\r\nThe word is {UNIQUE}.\r\n"
        ).encode()
        postfix.send(raw, "alice@example.com", ["bob@example.org"])
        [delivery] = sink.wait_for_deliveries(1, timeout=30)
        assert UNIQUE.encode() in delivery.content
        page = wait_archived(arch, 1)
        assert page["total"] == 1
        [hit] = page["results"]
        archived = arch.raw(int(hit["id"]))
        assert archived.endswith(raw.split(b"\r\n\r\n", 1)[1])
        assert hashlib.sha256(archived).hexdigest() == hit["sha256"]
        assert arch.verify().returncode == 0
        postfix.wait_queue_empty(10)
    finally:
        arch.stop()
    store = [p for p in (arch.home / "blobs").rglob("*") if p.is_file()]
    assert store
    everything = b"".join(p.read_bytes() for p in store)
    assert UNIQUE.encode() not in everything
    assert hit["sha256"].encode() not in everything
    assert not any(hit["sha256"] in str(p) for p in store)
