"""The checkpoint file: a signed statement of the chain head, checkable with standard tools.

A checkpoint is three files side by side, named for its time and event count::

    20261130T130714Z-1042.json      the statement; its exact bytes are what is signed
    20261130T130714Z-1042.json.sig  the Ed25519 signature of those bytes (64 raw bytes)
    20261130T130714Z-1042.json.tsr  optional: an RFC 3161 time-stamp response for them

The statement is one line of canonical JSON (``chain.canonical_json``: sorted keys, no
spaces, ASCII) and a newline::

    {"archive":"<hash of event 1>","events":1042,"format":"postfix-archiver-checkpoint/1",
     "head":"<hash of event 1042>","key":"sha256:<key id>","time":"2026-11-30T13:07:14Z"}

``events`` is the number of chain events (the seq of the head; 0 and ``chain.GENESIS`` for
an empty archive), ``archive`` the hash of the first event (null when empty), which names
the archive and never changes, and ``key`` the id of the signing key
(``integrity.keys.key_id``). ``openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin -in
FILE.json -sigfile FILE.json.sig`` checks the signature.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..chain import GENESIS, canonical_json
from ..errors import CheckpointError
from .keys import key_id

FORMAT = "postfix-archiver-checkpoint/1"
SIGNATURE_SUFFIX = ".sig"
TIMESTAMP_SUFFIX = ".tsr"
SIGNATURE_SIZE = 64
# a statement is about 300 bytes; a larger file is not one, and is not read whole
MAX_FILE = 64 * 1024
# SQLite's seq is a signed 64-bit integer
MAX_EVENTS = (1 << 63) - 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_HASH = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"sha256:[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    events: int
    head: str
    archive: str | None
    time: datetime
    key: str

    def statement(self) -> bytes:
        """The bytes that are signed and stored."""
        return canonical_json(self.to_json()) + b"\n"

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "events": self.events,
            "head": self.head,
            "archive": self.archive,
            "time": self.time.astimezone(UTC).strftime(TIME_FORMAT),
            "key": self.key,
        }


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def timestamp_path(path: Path) -> Path:
    return path.with_name(path.name + TIMESTAMP_SUFFIX)


def new_checkpoint(
    events: int, head: str, archive: str | None, key: Ed25519PrivateKey, now: datetime
) -> Checkpoint:
    return Checkpoint(events, head, archive, now.replace(microsecond=0), key_id(key.public_key()))


def sign(statement: bytes, key: Ed25519PrivateKey) -> bytes:
    return key.sign(statement)


def signature_holds(statement: bytes, signature: bytes, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(signature, statement)
    except InvalidSignature:
        return False
    return True


def parse(statement: bytes, where: str) -> Checkpoint:
    """The checkpoint in ``statement``; ``CheckpointError`` naming ``where`` and the field
    when it is not one of ours (checked field by field: it comes from outside)."""

    def bad(reason: str) -> CheckpointError:
        return CheckpointError(f"{where} is not a postfix-archiver checkpoint: {reason}")

    try:
        doc: Any = json.loads(statement.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("not ASCII JSON") from None
    if not isinstance(doc, dict):
        raise bad("not a JSON object")
    if doc.get("format") != FORMAT:
        shown = str(doc.get("format"))[:60]
        raise bad(f"format {shown!r}, this version reads {FORMAT!r}")
    events, head, archive = doc.get("events"), doc.get("head"), doc.get("archive")
    if type(events) is not int or not 0 <= events <= MAX_EVENTS:
        raise bad("events is not a count from 0 to 2**63-1")
    if not (isinstance(head, str) and _HASH.fullmatch(head)):
        raise bad("head is not a SHA-256 in lowercase hex")
    if not (archive is None or (isinstance(archive, str) and _HASH.fullmatch(archive))):
        raise bad("archive is neither null nor a SHA-256 in lowercase hex")
    if (events == 0) != (archive is None) or (events == 0 and head != GENESIS):
        raise bad("an empty chain has no archive hash and the genesis head, and only it")
    key = doc.get("key")
    if not (isinstance(key, str) and _KEY_ID.fullmatch(key)):
        raise bad('key is not "sha256:" and a lowercase hex SHA-256')
    text = doc.get("time")
    try:
        if not (isinstance(text, str) and _TIME.fullmatch(text)):
            raise ValueError
        time = datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise bad("time is not a UTC time such as 2026-11-30T13:07:14Z") from None
    return Checkpoint(events, head, archive, time, key)
