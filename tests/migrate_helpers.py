"""What the migration tests share: a source archive with something of everything (mail with
attachments, an import run, a legal hold, a retention change, an erased message and its
tombstone, a compression dictionary, sealed blobs when asked), and its fingerprint: what a
copy must keep the same."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.unit.capture.capture_helpers import CLI

from postfix_archiver.archive import Archive
from postfix_archiver.config import Config, load_config_file
from postfix_archiver.envelope import Envelope
from postfix_archiver.store import open_store
from postfix_archiver.store.keyring import create_key_file

CPYTHON_EMAIL = Path(__file__).parent / "data" / "cpython_email"
QUERIES = ("report", "from:alice@example.com", "subject:report -draft", "has:attachment", "zzz")


def raw(n: int, subject: str = "report") -> bytes:
    return (
        f"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: {subject} {n}\r\n"
        f"Message-ID: <r{n}@example.com>\r\nDate: Mon, 1 Jan 2024 10:00:{n % 60:02d} +0000\r\n"
        f"\r\nquarterly figures {n} \xfcber\r\n"
    ).encode("latin-1")


def write_config(path: Path, home: Path, extra: str = "") -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[archive]\nhome = "{home}"\n{extra}\n')
    return path


def cli(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    environment.update(env or {})
    return subprocess.run(
        [str(CLI), *args, "--config", str(config)],
        env=environment,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
        check=False,
    )


# built once a session for each kind asked for, then copied for each test: building runs
# 60 ingests, a dictionary's training and four CLI commands, a good part of each test's time
_BUILT: dict[bool, Path] = {}


def build_source(base: Path, *, encrypted: bool = False) -> Path:
    """The source archive (SQLite + files), a copy of its own under ``base``; its config
    file's path."""
    if encrypted not in _BUILT:
        built = Path(tempfile.mkdtemp(prefix="pa-migrate-source-"))
        atexit.register(shutil.rmtree, built, ignore_errors=True)
        _build_source(built, encrypted=encrypted)
        _BUILT[encrypted] = built
    built = _BUILT[encrypted]
    for name in ("source", "keys", "eml"):
        if (built / name).exists():
            shutil.copytree(built / name, base / name)
    # the config names the home and the key file by absolute path: this copy's
    config = base / "source.toml"
    config.write_text((built / "source.toml").read_text().replace(str(built), str(base)))
    return config


def _build_source(base: Path, *, encrypted: bool) -> Path:
    keys = ""
    if encrypted:
        create_key_file(base / "keys" / "archive.key")
        keys = f'encryption = "aes-256-gcm"\nkey_file = "{base / "keys" / "archive.key"}"\n'
    path = write_config(base / "source.toml", base / "source", keys)
    config = load_config_file(path)
    samples = sorted(CPYTHON_EMAIL.glob("msg_*.txt"))
    with Archive(config) as archive:
        for n, p in enumerate(samples[:10]):
            archive.ingest(
                p.read_bytes(), Envelope(f"s{n}@example.org", (f"r{n}@example.net",), f"C{n}")
            )
        # a dictionary (a d/ blob) the later blobs are compressed with
        archive.codec.train([p.read_bytes() for p in samples] * 4)
        for n, p in enumerate(samples[10:]):
            archive.ingest(p.read_bytes(), Envelope("", (f"x{n}@example.net",), f"D{n}"))
        for n in range(1, 6):
            archive.ingest(
                raw(n),
                Envelope("alice@example.com", ("bob@example.com", "cc@example.org"), f"R{n}"),
            )
        archive.index_pending()
    imports = base / "eml"
    imports.mkdir()
    for n in (101, 102):
        (imports / f"{n}.eml").write_bytes(raw(n, "imported"))
    for args in (
        ("import", str(imports)),
        ("hold", "add", "case-1", 'subject:"report 1"', "--reason", "litigation"),
        ("retention", "set", "subject:imported", "10y", "--reason", "records schedule"),
        ("erase", 'subject:"report 2"', "--reason", "data subject request"),
    ):
        done = cli(path, *args)
        assert done.returncode == 0, (args, done.stderr)
    return path


def raw_blobs(config: Config) -> dict[str, bytes]:
    """Every blob as stored (sealed ones sealed), by the name it is stored under."""
    store = open_store(config.archive.store_url, readonly=True)
    try:
        names = store.keys()
        return {k: store.get(k) for k in names}
    finally:
        store.close()


def fingerprint(config: Config) -> dict[str, Any]:
    """What a copy keeps: every message's bytes, rows, envelopes, holds; the chain; searches."""
    with Archive(config, readonly=True) as archive:
        c = archive.catalog
        messages = {
            r.id: (
                r,
                archive.raw(r.id),
                c.envelopes(r.id),
                c.attachments(r.id),
                c.holds_of(r.id),
                c.threads([r.id]),
            )
            for r in c.messages()
        }
        return {
            "messages": messages,
            "events": list(c.events()),
            "chain": [(link.seq, link.hash) for link in c.chain()],
            "head": c.last_event(),
            "holds": c.holds(),
            "searches": {q: [r.id for r in archive.iter_search(q)] for q in QUERIES},
            "stats": (c.stats().messages, c.stats().envelopes, c.stats().raw_bytes),
        }
