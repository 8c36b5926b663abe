"""Signed checkpoints of an archive: made, stored, and checked against the archive later.

``make_checkpoint`` signs the chain head (``integrity.checkpoint`` describes the file) and
stores it under ``<home>/checkpoints/``; with ``[integrity] tsa_url`` it is timestamped too,
and a TSA that fails leaves a signed checkpoint without a timestamp, said so. It signs only a
chain that descends from the newest checkpoint it made before: a rewritten history is not
blessed by a fresh signature.

``check_checkpoint`` is what an outsider runs with the public key: the signature, then the
descent. The descent is checked by the links alone (the event numbered like the checkpoint's
count has its head hash, the first event its archive hash, and each event's ``prev_hash`` is
the hash of the one before, up to today's head): erased messages keep their events, and
recomputing events from the rows they cover is ``verify``'s job.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..catalog import Catalog
from ..chain import GENESIS
from ..config import Config, IntegritySettings
from ..errors import CheckpointError
from ..integrity import checkpoint as fmt
from ..integrity.keys import key_id, load_private_key, read_limited
from ..integrity.timestamp import request_timestamp, verify_timestamp
from .verify import Problem

DIRECTORY = "checkpoints"
# a stored time-stamp response is a few KiB
MAX_TIMESTAMP_FILE = 1 << 20


def checkpoint_directory(config: Config) -> Path:
    return config.archive.home / DIRECTORY


# -- descent -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Descent:
    """The chain walked: ``events`` and ``head`` of its last event; ``problem`` names the
    first event that breaks the descent (``seq`` is its number), ``None`` when it holds."""

    events: int
    head: str
    problem: str | None = None
    seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def walk_descent(
    catalog: Catalog, after: int, prev: str | None, pins: Mapping[int, tuple[str, str]]
) -> Descent:
    """Walk the stored events after seq ``after`` to the head: numbered without gaps, each
    linked to the one before (the first to ``prev``, unchecked when ``None``), and each
    pinned seq holding its hash (``pins``: seq -> (hash, who says so))."""
    expected = after + 1
    head = prev if prev is not None else GENESIS
    for event in catalog.events(after):
        if event.seq != expected:
            return Descent(
                expected - 1,
                head,
                f"event {expected} is missing (the next one stored is {event.seq}): "
                "events were removed from the chain",
                expected,
            )
        if prev is not None and event.prev_hash != prev:
            return Descent(
                expected - 1,
                head,
                f"event {event.seq} does not link to event {event.seq - 1} (its prev_hash is "
                f"{event.prev_hash[:64]!r}, event {event.seq - 1} is {prev}): the chain was "
                "rewritten here",
                event.seq,
            )
        pin = pins.get(event.seq)
        if pin is not None and event.hash != pin[0]:
            return Descent(
                expected - 1,
                head,
                f"event {event.seq} has hash {event.hash[:64]!r}, {pin[1]} says {pin[0]}: the "
                f"history up to event {event.seq} was rewritten",
                event.seq,
            )
        prev = head = event.hash
        expected += 1
    count = expected - 1
    beyond = [seq for seq in pins if seq > count]
    if beyond:
        seq = min(beyond)
        return Descent(
            count,
            head,
            f"the archive has {count} events, {pins[seq][1]} has event {seq}: events were "
            "removed (or this is another archive)",
            seq,
        )
    return Descent(count, head)


# -- making ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Written:
    """A checkpoint stored at ``path``; ``timestamp`` is the TSA's time, or, when a TSA is
    configured and gave none, ``timestamp_error`` says why."""

    path: Path
    checkpoint: fmt.Checkpoint
    timestamp: datetime | None = None
    timestamp_error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "signature": str(fmt.signature_path(self.path)),
            "checkpoint": self.checkpoint.to_json(),
            "timestamp": None if self.timestamp is None else _iso(self.timestamp),
            "timestamp_file": None
            if self.timestamp is None
            else str(fmt.timestamp_path(self.path)),
            "timestamp_error": self.timestamp_error,
        }


def _iso(time: datetime) -> str:
    return time.astimezone(UTC).strftime(fmt.TIME_FORMAT)


def stored_checkpoints(directory: Path) -> list[Path]:
    """The checkpoint statements in ``directory``, oldest first (by the UTC time and the
    event count their names start with)."""
    try:
        names = [p for p in directory.iterdir() if p.name.endswith(".json")]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CheckpointError(f"cannot list {directory}: {exc.strerror}") from None
    return sorted((p for p in names if not p.name.startswith(".")), key=_order)


_NAME = re.compile(r"(\d{8}T\d{6}Z)-(\d{1,20})(?:-(\d{1,4}))?\.json", re.ASCII)


def _order(path: Path) -> tuple[str, int, int, str]:
    """Time, event count, then the number of a second checkpoint in the same second; names
    not made here first, by name."""
    m = _NAME.fullmatch(path.name)
    if m is None:
        return ("", 0, 0, path.name)
    return (m.group(1), int(m.group(2)), int(m.group(3) or 1), path.name)


def newest_own(directory: Path, public: Ed25519PublicKey) -> fmt.Checkpoint | None:
    """The newest stored checkpoint that ``public``'s key signed (others are not ours to
    trust: a file that does not verify could have been put there by anyone)."""
    for path in reversed(stored_checkpoints(directory)):
        try:
            statement = read_limited(path, "checkpoint", fmt.MAX_FILE)
            signature = read_limited(fmt.signature_path(path), "signature", fmt.MAX_FILE)
            if fmt.signature_holds(statement, signature, public):
                return fmt.parse(statement, str(path))
        except CheckpointError:
            continue
    return None


def make_checkpoint(
    catalog: Catalog,
    settings: IntegritySettings,
    directory: Path,
    *,
    key: Ed25519PrivateKey | None = None,
    previous: fmt.Checkpoint | None = None,
    now: datetime | None = None,
) -> Written:
    """Sign the chain head now, store it in ``directory`` (fsync'd) and timestamp it when a
    TSA is configured. ``previous``: the newest checkpoint of this key (else found in
    ``directory``), which the chain must still descend from."""
    key = key or load_private_key(settings.signing_key)
    if previous is None:
        previous = newest_own(directory, key.public_key())
    descent = _descent_since(catalog, previous)
    if not descent.ok:
        since = (
            "its first event"
            if previous is None
            else f"the checkpoint of {previous.time:%Y-%m-%d %H:%M:%S} UTC"
        )
        raise CheckpointError(
            f"not signing: the chain does not hold from {since}: {descent.problem}; run "
            "`postfix-archiver verify` and find out who changed the archive"
        )
    first = next(catalog.events(), None) if descent.events else None
    checkpoint = fmt.new_checkpoint(
        descent.events,
        descent.head,
        first.hash if first is not None else None,
        key,
        now or datetime.now(UTC),
    )
    statement = checkpoint.statement()
    path = _store(directory, checkpoint, statement, fmt.sign(statement, key))
    if settings.tsa_url is None or settings.tsa_ca_file is None:
        return Written(path, checkpoint)
    try:
        stamp = request_timestamp(
            statement, settings.tsa_url, settings.tsa_ca_file, settings.tsa_timeout
        )
        _write_new(fmt.timestamp_path(path), stamp.response)
        _fsync_dir(directory)
    except CheckpointError as exc:
        return Written(path, checkpoint, timestamp_error=str(exc))
    return Written(path, checkpoint, timestamp=stamp.time)


def _descent_since(catalog: Catalog, previous: fmt.Checkpoint | None) -> Descent:
    """The chain from ``previous`` (the whole chain without one) to the head, checked."""
    if previous is None or previous.events == 0:
        return walk_descent(catalog, 0, GENESIS, {})
    pins = {previous.events: (previous.head, "the previous checkpoint")}
    return walk_descent(catalog, previous.events - 1, None, pins)


def _store(directory: Path, checkpoint: fmt.Checkpoint, statement: bytes, sig: bytes) -> Path:
    """Both files written whole and fsync'd under a name no other checkpoint has, the
    signature first: a statement is never there without its signature."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create {directory}: {exc.strerror}") from None
    stem = f"{checkpoint.time:%Y%m%dT%H%M%SZ}-{checkpoint.events}"
    for attempt in range(1, 1000):
        path = directory / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
        try:
            _write_new(fmt.signature_path(path), sig)
        except FileExistsError:
            continue
        try:
            _write_new(path, statement)
        except FileExistsError:
            fmt.signature_path(path).unlink()
            continue
        _fsync_dir(directory)
        return path
    raise CheckpointError(f"cannot find a free checkpoint name {stem}-N.json in {directory}")


def _write_new(path: Path, data: bytes) -> None:
    """``data`` at ``path``, complete or not at all: written to a temporary file, fsync'd,
    then linked to ``path`` (which fails with ``FileExistsError`` rather than replace)."""
    tmp = path.with_name(f".tmp-{secrets.token_hex(8)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CheckpointError(f"cannot fsync {directory}: {exc.strerror}") from None


# -- checking --------------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    """What ``verify --checkpoint`` found: the checkpoint (``None`` when its signature does
    not hold: then nothing in it is trusted), the chain walked, the timestamp."""

    path: Path
    checkpoint: fmt.Checkpoint | None = None
    descent: Descent | None = None
    timestamp: datetime | None = None
    timestamp_note: str | None = None  # why there is no checked timestamp, when none
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, detail: str) -> None:
        self.problems.append(Problem("checkpoint", f"checkpoint {self.path.name}", detail))

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "path": str(self.path),
            "checkpoint": None if self.checkpoint is None else self.checkpoint.to_json(),
            "events_now": None if self.descent is None else self.descent.events,
            "head_now": None if self.descent is None else self.descent.head,
            "timestamp": None if self.timestamp is None else _iso(self.timestamp),
            "timestamp_note": self.timestamp_note,
            "problems": [
                {"kind": p.kind, "where": p.where, "detail": p.detail} for p in self.problems
            ],
        }


def check_checkpoint(
    catalog: Catalog, path: Path, public: Ed25519PublicKey, tsa_ca_file: Path | None = None
) -> CheckpointReport:
    """The signature of the checkpoint at ``path`` under ``public``, the archive's descent
    from it, and its timestamp when there is one (checked with ``tsa_ca_file``)."""
    report = CheckpointReport(path)
    statement = read_limited(path, "checkpoint", fmt.MAX_FILE)
    signature = read_limited(fmt.signature_path(path), "signature", fmt.MAX_FILE)
    if len(signature) != fmt.SIGNATURE_SIZE or not fmt.signature_holds(
        statement, signature, public
    ):
        report.fail(_bad_signature(statement, path, public))
        return report
    checkpoint = report.checkpoint = fmt.parse(statement, str(path))
    pins: dict[int, tuple[str, str]] = {}
    if checkpoint.archive is not None:
        pins[1] = (checkpoint.archive, "the checkpoint (its archive's first event)")
    if checkpoint.events:
        pins[checkpoint.events] = (checkpoint.head, "the checkpoint")
    descent = report.descent = walk_descent(catalog, 0, GENESIS, pins)
    if not descent.ok:
        report.fail(f"the archive does not descend from it: {descent.problem}")
    _check_timestamp(report, statement, tsa_ca_file)
    return report


def _bad_signature(statement: bytes, path: Path, public: Ed25519PublicKey) -> str:
    given = key_id(public)
    try:
        signer = fmt.parse(statement, str(path)).key
    except CheckpointError:
        signer = None
    if signer is not None and signer != given:
        return (
            f"the signature does not hold: it says it was signed by key {signer}, the "
            f"public key given is {given} (the wrong public key, or the checkpoint was "
            "altered)"
        )
    return (
        f"the signature does not hold under the public key given ({given}): the checkpoint "
        "or its .sig file was altered, or it was not signed by this key"
    )


def _check_timestamp(report: CheckpointReport, statement: bytes, ca_file: Path | None) -> None:
    stamp_path = fmt.timestamp_path(report.path)
    if not stamp_path.exists():
        report.timestamp_note = "no timestamp stored beside it"
        return
    if ca_file is None:
        report.timestamp_note = (
            f"{stamp_path.name} not checked: give the TSA's CA certificate (--tsa-ca-file, or "
            "[integrity] tsa_ca_file)"
        )
        return
    response = read_limited(stamp_path, "timestamp", MAX_TIMESTAMP_FILE)
    try:
        report.timestamp = verify_timestamp(statement, response, ca_file)
    except CheckpointError as exc:
        report.timestamp_note = str(exc)
        report.fail(f"{stamp_path.name}: {exc}")
