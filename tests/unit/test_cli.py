"""The ``postfix-archiver`` command, run for real as a subprocess against a temporary home."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import make_config

from postfix_archiver.archive import Archive
from postfix_archiver.cli import main
from postfix_archiver.envelope import Envelope
from postfix_archiver.importers.mbox import MboxSource

CLI = Path(sys.executable).parent / "postfix-archiver"


class Cli:
    """Runs the installed command with its home (and nothing else) set up in tmp."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.home = tmp_path / "home"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("POSTFIX_ARCHIVER_") and k not in ("FORCE_COLOR", "NO_COLOR")
        }
        self.env["POSTFIX_ARCHIVER_HOME"] = str(self.home)
        self.env["COLUMNS"] = "80"

    def __call__(
        self, *args: str | Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(CLI), *map(str, args)],
            env={**self.env, **(env or {})},
            cwd=self.cwd,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
        result = self(*args)
        assert result.returncode == 0, result.stderr.decode()
        return result

    def json(self, *args: str | Path) -> dict[str, object]:
        doc = json.loads(self.ok(*args).stdout)
        assert isinstance(doc, dict)
        return doc

    def archive(self) -> Archive:
        return Archive(make_config(self.home))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def eml(n: int, *, to: str = "bob@example.org", extra: bytes = b"", eol: bytes = b"\n") -> bytes:
    text = (
        b"From: Alice Smith <alice@example.com>\n"
        b"To: %s\n"
        b"Subject: message number %d\n"
        b"Date: Mon, 01 Jan 2024 10:%02d:00 +0000\n"
        b"Message-ID: <m%d@example.com>\n"
        b"%s"
        b"\n"
        b"body of %d\n" % (to.encode(), n, n, n, extra, n)
    )
    return text.replace(b"\n", eol)


Sources = dict[str, tuple[Path, list[bytes]]]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    """One of each kind of import source, with the bytes each holds."""
    src = tmp_path_factory.mktemp("src")
    mbox_msgs = [eml(1), eml(2, extra=b"X-Original-To: hidden@example.org\n")]
    mbox = src / "inbox.mbox"
    mbox.write_bytes(
        b"".join(
            b"From alice@example.com Mon Jan  1 10:00:00 2024\n" + m + b"\n" for m in mbox_msgs
        )
    )
    maildir = src / "Maildir"
    for folder in (maildir, maildir / ".Sent"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    maildir_msgs = [eml(3), eml(4, eol=b"\r\n")]
    (maildir / "new" / "1.M1.host").write_bytes(maildir_msgs[0])
    (maildir / ".Sent" / "cur" / "2.M2.host:2,S").write_bytes(maildir_msgs[1])
    single = src / "single.eml"
    single_msgs = [eml(5, to="carol@example.net") + b"caf\xe9 in latin-1, no final newline"]
    single.write_bytes(single_msgs[0])
    folder = src / "folder"
    (folder / "nested" / "deeper").mkdir(parents=True)
    folder_msgs = [eml(6), eml(7)]
    (folder / "a.eml").write_bytes(folder_msgs[0])
    (folder / "nested" / "deeper" / "b.eml").write_bytes(folder_msgs[1])
    return {
        "mbox": (mbox, mbox_msgs),
        "maildir": (maildir, maildir_msgs),
        "eml": (single, single_msgs),
        "folder": (folder, folder_msgs),
    }


def import_all(cli: Cli, sources: Sources) -> list[bytes]:
    everything: list[bytes] = []
    for path, msgs in sources.values():
        result = cli.ok("import", path)
        summary = result.stderr.decode()
        assert f"{len(msgs)} messages read, {len(msgs)} new" in summary
        everything += msgs
    return everything


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, sources: Sources) -> Path:
    """A home with every source imported through the command, made once per module."""
    cli = Cli(tmp_path_factory.mktemp("seeded"))
    import_all(cli, sources)
    return cli.home


@pytest.fixture
def loaded(tmp_path: Path, seeded: Path) -> Cli:
    """A private copy of the seeded home."""
    cli = Cli(tmp_path)
    shutil.copytree(seeded, cli.home)
    return cli


def everything(sources: Sources) -> list[bytes]:
    return [m for _, msgs in sources.values() for m in msgs]


SUMMARY_KEYS = {"id", "date", "from", "to", "subject", "size"}


def test_import_then_search_json(cli: Cli, sources: Sources) -> None:
    everything = import_all(cli, sources)
    doc = cli.json("search", "--json")
    assert set(doc) == {"total", "results", "not_indexed"}
    assert doc["not_indexed"] == 0  # import indexes what it imported
    assert doc["total"] == len(everything) == 7
    results = doc["results"]
    assert isinstance(results, list)
    assert len(results) == 7
    for r in results:
        assert set(r) >= SUMMARY_KEYS
        assert r["from"] == "Alice Smith <alice@example.com>"
    # newest first
    assert [r["subject"] for r in results] == [f"message number {n}" for n in range(7, 0, -1)]
    assert sorted(r["size"] for r in results) == sorted(len(m) for m in everything)


def test_search_json_queries(loaded: Cli) -> None:
    page = loaded.json("search", "--json", "--limit", "2", "subject:number")
    assert page["total"] == 7
    assert isinstance(page["results"], list)
    assert [r["subject"] for r in page["results"]] == ["message number 7", "message number 6"]
    assert loaded.json("search", "--json", "to:carol@example.net")["total"] == 1
    # only the envelope (X-Original-To of the mbox message) names this recipient
    assert loaded.json("search", "--json", "to:hidden@example.org")["total"] == 1


def test_search_json_and_table_show_snippets(loaded: Cli) -> None:
    results = loaded.json("search", "--json", "body", "3")["results"]
    assert isinstance(results, list)
    (found,) = results
    assert found["snippet"] == {"text": "body of 3", "marks": [[0, 4], [8, 9]], "source": "body"}
    table = loaded("search", "body", "3", env={"COLUMNS": "200", "FORCE_COLOR": "1"})
    assert table.returncode == 0
    lines = table.stdout.decode().splitlines()
    (result,) = [i for i, line in enumerate(lines) if "message number 3" in line]
    snippet = lines[result + 1]  # dimmed, the terms bold, under the subject
    assert "\x1b[1;2mbody\x1b[0m\x1b[2m of \x1b[0m\x1b[1;2m3\x1b[0m" in snippet


def test_import_twice_reports_nothing_new(loaded: Cli, sources: Sources) -> None:
    for path, msgs in sources.values():
        summary = loaded.ok("import", path).stderr.decode()
        assert f"{len(msgs)} messages read, 0 new" in summary
        assert f"{len(msgs)} already imported (nothing added)" in summary
    stats = loaded.json("stats", "--json")
    assert (stats["messages"], stats["envelopes"]) == (7, 7)


def test_json_is_plain_even_when_color_is_forced(loaded: Cli) -> None:
    for args in (("search", "--json"), ("stats", "--json"), ("show", "--json", "1")):
        result = loaded(*args, env={"FORCE_COLOR": "1"})
        assert result.returncode == 0
        assert b"\x1b[" not in result.stdout
        json.loads(result.stdout)


def test_search_table(loaded: Cli) -> None:
    # a query word starting with "-" must come after "--", or click takes it for an option
    result = loaded("search", "--", "subject:number", "-to:carol", env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert b"message number 7" in result.stdout
    assert b"message number 5" not in result.stdout
    assert "1-6 of 6 messages" in result.stderr.decode()


def test_show_raw_writes_the_original_bytes(loaded: Cli, sources: Sources) -> None:
    expected = {
        b"CRLF": sources["maildir"][1][1],
        b"latin-1, no final newline": sources["eml"][1][0],
        b"mbox": sources["mbox"][1][1],
    }
    with loaded.archive() as archive:
        rows = archive.search("", limit=100).results
        ids = {
            raw: next(r.id for r in rows if archive.raw(r.id) == raw) for raw in expected.values()
        }
        sha = rows[0].sha256
        first = archive.raw(rows[0].id)
    for raw in expected.values():
        assert loaded.ok("show", str(ids[raw]), "--raw").stdout == raw
    assert loaded.ok("show", sha, "--raw").stdout == first  # by SHA-256 too


def test_show_prints_headers_and_envelope_with_bcc(cli: Cli) -> None:
    raw = eml(1, extra=b"Cc: Carol <carol@example.net>\n")
    with cli.archive() as archive:
        ident = archive.ingest(
            raw,
            Envelope(
                sender="alice@example.com",
                recipients=("bob@example.org", "carol@example.net", "secret.bcc@example.org"),
                queue_id="4XyZ1abc",
                client_address="192.0.2.10",
            ),
        ).id
    text = cli.ok("show", str(ident)).stdout.decode()
    assert "From: Alice Smith <alice@example.com>" in text
    assert "To: bob@example.org" in text
    assert "Cc: Carol <carol@example.net>" in text
    assert "Subject: message number 1" in text
    assert "Message-ID: m1@example.com" in text
    envelope = next(line for line in text.splitlines() if line.startswith("Envelope:"))
    assert "from <alice@example.com>" in envelope
    assert "<secret.bcc@example.org>" in envelope
    assert "queue 4XyZ1abc" in envelope
    assert "body of 1" in text

    doc = cli.json("show", "--json", str(ident))
    envelopes = doc["envelopes"]
    assert isinstance(envelopes, list)
    assert envelopes[0]["recipients"][-1] == "secret.bcc@example.org"
    assert (envelopes[0]["retention"], envelopes[0]["tags"]) == (None, [])


def test_show_gives_the_retention_and_tags_of_the_keeping_rules(cli: Cli) -> None:
    from postfix_archiver.config import parse_config
    from postfix_archiver.rules import compile_policy

    policy = compile_policy(
        parse_config(
            '[[rules]]\nname = "finance"\nrecipient = "bob@example.org"\naction = "archive"\n'
            'retention = "10y"\ntags = ["finance", "sox"]\n',
            "rules.toml",
        )
    )
    with cli.archive() as archive:
        outcome = archive.ingester.ingest(
            eml(2), Envelope("alice@example.com", ("bob@example.org",)), policy=policy
        )
    assert outcome.archive_id is not None
    text = cli.ok("show", str(outcome.archive_id)).stdout.decode()
    envelope = next(line for line in text.splitlines() if line.startswith("Envelope:"))
    assert "retention 10y" in envelope
    assert "tags finance, sox" in envelope
    doc = cli.json("show", "--json", str(outcome.archive_id))
    envelopes = doc["envelopes"]
    assert isinstance(envelopes, list)
    assert (envelopes[0]["retention"], envelopes[0]["tags"]) == ("10y", ["finance", "sox"])


def test_show_unknown_id(cli: Cli) -> None:
    cli.archive().close()  # an empty archive (a command that only reads creates none)
    for ident in ("999", "not-an-id"):
        result = cli("show", ident)
        assert result.returncode == 1
        assert "no archived message with id" in one_line(result)


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "eml-zip"])
def test_export_formats(loaded: Cli, sources: Sources, fmt: str) -> None:
    msgs = everything(sources)
    target = loaded.cwd / f"out.{fmt}"
    result = loaded.ok("export", "subject:number", "--format", fmt, "-o", target)
    assert f"exported 7 messages to {target}" in result.stderr.decode()
    if fmt == "mbox":
        back = [item.raw for item in MboxSource(target)]
        newline = [m if m.endswith(b"\n") else m + b"\n" for m in msgs]
        assert sorted(back) == sorted(newline)
    elif fmt == "maildir":
        assert sorted(p.read_bytes() for p in (target / "new").iterdir()) == sorted(msgs)
    else:
        with zipfile.ZipFile(target) as zf:
            assert sorted(zf.read(n) for n in zf.namelist()) == sorted(msgs)

    again = loaded("export", "--format", fmt, "-o", target)
    assert again.returncode == 1
    line = one_line(again)
    assert "already exists" in line
    assert "--force" in line
    loaded.ok("export", "from:nobody", "--format", fmt, "-o", target, "--force")
    if fmt == "mbox":
        assert target.read_bytes() == b""


def test_export_query_subset(loaded: Cli, sources: Sources) -> None:
    target = loaded.cwd / "carol.zip"
    loaded.ok("export", "to:carol", "--format", "eml-zip", "-o", target)
    with zipfile.ZipFile(target) as zf:
        (name,) = zf.namelist()
        assert zf.read(name) == sources["eml"][1][0]


def test_stats_json(loaded: Cli, sources: Sources) -> None:
    raw_bytes = sum(len(m) for m in everything(sources))
    doc = loaded.json("stats", "--json")
    assert {"messages", "envelopes", "raw_bytes", "stored_bytes", "ratio"} <= set(doc)
    assert doc["messages"] == 7
    assert doc["envelopes"] == 7
    assert doc["raw_bytes"] == raw_bytes
    stored = doc["stored_bytes"]
    assert isinstance(stored, int)
    assert stored > 0
    assert doc["ratio"] == round(stored / raw_bytes, 4)
    text = loaded.ok("stats").stdout.decode()
    assert "messages:      7" in text


def _overwrite_blob(home: Path, sha: str, data: bytes) -> None:
    """Overwrite a message blob where the default store keeps it: the pack."""
    with sqlite3.connect(home / "blobs" / "packed.sqlite") as conn:
        changed = conn.execute("UPDATE blobs SET data = ? WHERE key = ?", (data, f"m/{sha}"))
        assert changed.rowcount == 1
    conn.close()


@pytest.mark.parametrize("tamper", ["blob", "catalog"])
def test_verify_clean_then_tampered(loaded: Cli, tamper: str) -> None:
    cli = loaded
    result = cli.ok("verify")
    assert result.stdout.decode().startswith("OK: 7 messages, 7 chain events")
    assert cli.json("verify", "--json")["ok"] is True

    doc = cli.json("search", "--json", "subject:number", "--limit", "1")
    results = doc["results"]
    assert isinstance(results, list)
    victim = results[0]
    if tamper == "blob":
        _overwrite_blob(cli.home, victim["sha256"], b"not what was stored")
    else:
        conn = sqlite3.connect(cli.home / "catalog.sqlite")
        with conn:
            conn.execute("UPDATE envelopes SET sender = 'forged@example.com' WHERE id = 1")
        conn.close()
    result = cli("verify")
    assert result.returncode != 0
    assert "FAILED" in result.stderr.decode()
    bad = cli("verify", "--json")
    assert bad.returncode != 0
    report = json.loads(bad.stdout)
    assert report["ok"] is False
    assert report["problems"]


def test_bad_import_paths_give_one_line(cli: Cli, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    long_missing = tmp_path / "Mail [old]" / ("very-long-folder-name-" * 4) / "inbox.mbox"
    cases: list[tuple[Path, str]] = [
        (long_missing, "no such file or directory"),
        (fifo, "not a regular file"),
        (binary, "not an mbox file or a message"),
        (empty_dir, "no messages found"),
    ]
    for path, reason in cases:
        result = cli("import", path)
        assert result.returncode != 0
        line = one_line(result)
        assert str(path) in line  # the whole path, brackets and all
        assert reason in line
        assert "Traceback" not in result.stderr.decode()


def test_export_to_a_missing_directory(cli: Cli) -> None:
    cli.archive().close()
    result = cli("export", "--format", "mbox", "-o", cli.cwd / "missing" / "out.mbox")
    assert result.returncode != 0
    assert "no such directory" in one_line(result)


def test_bad_query(cli: Cli) -> None:
    cli.archive().close()
    result = cli("search", "after:someday")
    assert result.returncode == 1
    assert "bad query at position 1" in one_line(result)


CONFIG_ERRORS = [
    ('[archive]\nhome = "h"\n\nbogus = 1\n', 4, "archive.bogus: unknown key"),
    ('[archive]\nhome = "h"\n[smtp]\ntimeout = "soon"\n', 4, "smtp.timeout: must be a number"),
    ('[archive]\ncompression_level = "3"\n', 2, "archive.compression_level: must be a int"),
    ('[web]\nlisten = "localhost"\n', 2, "web.listen: must be HOST:PORT"),
    ('[archive]\nhome = "h"\nstore = = 1\n[smtp]\n', 3, "not valid TOML"),
    ('[archive]\nhome = "h"\n[nonsense]\nx = 1\n', 3, "nonsense: unknown section"),
]


@pytest.mark.parametrize(("text", "line", "message"), CONFIG_ERRORS)
def test_broken_config_exits_78(cli: Cli, text: str, line: int, message: str) -> None:
    config = cli.cwd / "archiver.toml"
    config.write_text(text)
    for args in (("stats", "--config", config), ("search", "--config", config, "x")):
        result = cli(*args)
        assert result.returncode == 78
        error = one_line(result)
        assert error.startswith(f"config error: {config}:{line}: ")
        assert message in error


def test_broken_config_from_the_environment(cli: Cli) -> None:
    config = cli.cwd / "env.toml"
    config.write_text('[archive]\nhome = "h"\nhoem = "typo"\n')
    result = cli("stats", env={"POSTFIX_ARCHIVER_CONFIG": str(config)})
    assert result.returncode == 78
    assert f"{config}:3: archive.hoem: unknown key" in one_line(result)


def test_missing_config_file(cli: Cli) -> None:
    result = cli("stats", "--config", cli.cwd / "nope.toml")
    assert result.returncode == 78
    assert "no such file" in one_line(result)


def test_config_file_chooses_the_home(cli: Cli, sources: Sources) -> None:
    confdir = cli.cwd / "etc"
    confdir.mkdir()
    config = confdir / "archiver.toml"
    config.write_text('[archive]\nhome = "spool"\n')
    cli.ok("import", "--config", config, sources["eml"][0])
    assert (confdir / "spool" / "catalog.sqlite").is_file()
    assert not cli.home.exists()
    doc = cli.json("search", "--json", "--config", config)
    assert doc["total"] == 1
    via_env = cli("search", "--json", env={"POSTFIX_ARCHIVER_CONFIG": str(config)})
    assert json.loads(via_env.stdout)["total"] == 1


def test_cli_runner_search_and_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The click entry point in-process, for what needs no exact stdout bytes."""
    monkeypatch.setenv("POSTFIX_ARCHIVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("POSTFIX_ARCHIVER_CONFIG", raising=False)
    box = tmp_path / "in.mbox"
    att = base64.encodebytes(b"x" * 5000)
    box.write_bytes(
        b"From a@example.com Mon Jan  1 10:00:00 2024\n"
        b"From: a@example.com\nSubject: hello world\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nhi\n"
        b'--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="r.pdf"\n'
        b"Content-Transfer-Encoding: base64\n\n" + att + b"--b--\n"
    )
    runner = CliRunner()
    result = runner.invoke(main, ["import", str(box)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["search", "--json", "filename:*.pdf"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["total"] == 1
    assert doc["results"][0]["attachments"] == 1
    result = runner.invoke(main, ["search", "hello", "OR"])
    assert result.exit_code == 1
    assert "OR must be followed by a term" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--password-stdin"], "are for imaps:// and imap:// sources"),
        (["--all-folders"], "are for imaps:// and imap:// sources"),
    ],
)
def test_imap_options_on_a_file_source_are_refused(
    cli: Cli, sources: Sources, args: list[str], message: str
) -> None:
    result = cli("import", sources["mbox"][0], *args)
    assert result.returncode == 2
    assert message in result.stderr.decode()


def test_imap_import_needs_a_password_source(cli: Cli) -> None:
    both = cli("import", "imaps://a@127.0.0.1:1/INBOX", "--password-stdin", "--password-file", "x")
    assert both.returncode == 2
    assert "not both" in both.stderr.decode()
    empty = subprocess.run(
        [str(CLI), "import", "imaps://a@127.0.0.1:1/INBOX", "--password-stdin"],
        env=cli.env,
        input=b"\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 2
    assert "the password is empty" in empty.stderr.decode()
    # nothing was created for a command that could not start
    assert not cli.home.exists() or not any(cli.home.iterdir())
