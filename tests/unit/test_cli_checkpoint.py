"""``keys init``, ``checkpoint`` and ``verify --checkpoint --public-key``: what an operator and
an auditor type, and the one-line errors they get (in-process through click's runner: the
machine is shared, and a process start costs seconds under load)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from postfix_archiver.cli import main


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


class Run:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.config = tmp_path / "archiver.toml"
        self.config.write_text(
            '[archive]\nhome = "data"\n[integrity]\nsigning_key = "keys/signing.key"\n'
        )

    def __call__(self, *args: str | Path) -> Done:
        result = CliRunner().invoke(
            main,
            [str(a) for a in args],
            env={"POSTFIX_ARCHIVER_HOME": None, "POSTFIX_ARCHIVER_CONFIG": None},
            prog_name="postfix-archiver",
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{args[:3]} raised {result.exception!r}") from result.exception
        return Done(result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str | Path) -> Done:
        done = self(*args, "--config", self.config)
        assert done.returncode == 0, done.stderr
        return done

    def sql(self, statement: str) -> None:
        conn = sqlite3.connect(self.tmp / "data" / "catalog.sqlite")
        with conn:
            conn.execute(statement)
        conn.close()


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.chdir(tmp_path)
    r = Run(tmp_path)
    for n in range(1, 4):
        (tmp_path / f"m{n}.eml").write_bytes(
            f"From: a@example.com\r\nTo: b@example.com\r\nSubject: m{n}\r\n"
            f"Message-ID: <m{n}@example.com>\r\n\r\nbody {n}\r\n".encode()
        )
    return r


def only_checkpoint(run: Run) -> Path:
    [path] = sorted((run.tmp / "data" / "checkpoints").glob("*.json"))
    return path


def test_an_operator_signs_and_an_auditor_verifies(run: Run) -> None:
    made = run.ok("keys", "init")
    key = run.tmp / "keys" / "signing.key"
    assert f"signing key:  {key}" in made.stdout
    assert f"public key:   {key}.pub" in made.stdout
    assert "key id:       sha256:" in made.stdout
    run.ok("import", run.tmp / "m1.eml")
    run.ok("import", run.tmp / "m2.eml")
    signed = run.ok("checkpoint")
    path = only_checkpoint(run)
    assert signed.stdout.startswith("checkpoint of 2 events, head ")
    assert f"written to {path} (signature: {path.name}.sig)" in signed.stdout
    run.ok("import", run.tmp / "m3.eml")
    checked = run.ok("verify", "--checkpoint", path, "--public-key", f"{key}.pub")
    assert f"checkpoint {path.name}: signature good (key sha256:" in checked.stdout
    assert "the archive descends from its 2 events" in checked.stdout
    assert "timestamp: no timestamp stored beside it" in checked.stdout
    assert "OK: 3 messages, 3 chain events" in checked.stdout
    doc = json.loads(
        run.ok("verify", "--json", "--checkpoint", path, "--public-key", f"{key}.pub").stdout
    )
    assert doc["ok"] is True
    assert doc["checkpoint"]["ok"] is True
    assert doc["checkpoint"]["checkpoint"]["events"] == 2
    assert doc["checkpoint"]["events_now"] == 3
    as_json = json.loads(run.ok("checkpoint", "--json").stdout)
    assert as_json["checkpoint"]["events"] == 3
    assert as_json["timestamp"] is None
    assert as_json["timestamp_error"] is None


def test_a_rewritten_history_fails_verify_naming_the_event(run: Run) -> None:
    run.ok("keys", "init")
    for n in (1, 2, 3):
        run.ok("import", run.tmp / f"m{n}.eml")
    run.ok("checkpoint")
    path = only_checkpoint(run)
    run.sql("UPDATE events SET hash = '" + "ab" * 32 + "' WHERE seq = 3")
    done = run(
        "verify", "--config", run.config, "--checkpoint", path,
        "--public-key", run.tmp / "keys" / "signing.key.pub",
    )  # fmt: skip
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"FAILED: 2 problem(s); the first: checkpoint {path.name}: the ")
    assert "event 3 has hash" in first
    assert "history up to event 3 was rewritten" in first
    assert "event 3: hash does not match the catalog rows" in done.stderr


def test_the_wrong_public_key_fails_verify(run: Run, tmp_path: Path) -> None:
    run.ok("keys", "init")
    run.ok("import", run.tmp / "m1.eml")
    run.ok("checkpoint")
    other = tmp_path / "other.toml"
    other.write_text('[integrity]\nsigning_key = "other/signing.key"\n')
    assert run("keys", "init", "--config", other).returncode == 0
    done = run(
        "verify", "--config", run.config, "--checkpoint", only_checkpoint(run),
        "--public-key", tmp_path / "other" / "signing.key.pub",
    )  # fmt: skip
    assert done.returncode == 1
    assert "the wrong public key, or the checkpoint was altered" in done.stderr


def test_operator_errors_are_one_line(run: Run) -> None:
    run.ok("import", run.tmp / "m1.eml")
    done = run("checkpoint", "--config", run.config)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: signing key {run.tmp}/keys/signing.key: no such file (create it with "
        "`postfix-archiver keys init`)"
    )
    run.ok("keys", "init")
    again = run("keys", "init", "--config", run.config)
    assert again.returncode == 1
    assert again.stderr.startswith(f"error: {run.tmp}/keys/signing.key exists already")
    assert len(again.stderr.strip().splitlines()) == 1
    missing = run(
        "verify", "--config", run.config, "--checkpoint", "nope.json",
        "--public-key", run.tmp / "keys" / "signing.key.pub",
    )  # fmt: skip
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "error: checkpoint nope.json: no such file",
    )
    alone = run("verify", "--config", run.config, "--checkpoint", "nope.json")
    assert alone.returncode == 2
    assert "--checkpoint and --public-key go together" in alone.stderr


def test_a_key_inside_the_archive_is_refused_before_anything_is_made(run: Run) -> None:
    run.config.write_text('[archive]\nhome = "data"\n[integrity]\nsigning_key = "data/s.key"\n')
    done = run("keys", "init", "--config", run.config)
    assert done.returncode == 78
    assert done.stderr.startswith(f"config error: {run.config}:4: integrity.signing_key: ")
    assert not (run.tmp / "data").exists()
