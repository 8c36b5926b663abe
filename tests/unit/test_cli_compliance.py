"""``retention set`` and ``hold add|list|show|release`` on the command line: what they change,
what they print, the audit entries they leave, and one clear line for every mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import make_config, refuse_audit

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.cli import main
from postfix_archiver.envelope import Envelope

CLI = Path(sys.executable).parent / "postfix-archiver"
T0 = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)


class Home:
    def __init__(self, home: Path) -> None:
        self.home = home
        with Archive(make_config(home)) as archive:
            self.alice, self.bob = (
                archive.ingest(
                    f"From: {s}\r\nSubject: s{n}\r\n\r\nb{n}\r\n".encode(),
                    Envelope(s, ("x@example.com",), received=T0),
                ).id
                for n, s in enumerate(("alice@example.com", "bob@example.com"))
            )

    def run(self, *args: str, code: int = 0) -> tuple[str, str]:
        env = {"POSTFIX_ARCHIVER_HOME": str(self.home), "POSTFIX_ARCHIVER_CONFIG": None}
        result = CliRunner().invoke(main, list(args), env=env, prog_name="postfix-archiver")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{args} raised {result.exception!r}") from result.exception
        assert result.exit_code == code, (result.exit_code, result.stderr)
        assert "Traceback" not in result.stderr
        return result.stdout, result.stderr

    def error(self, *args: str) -> str:
        """The one line a refused command prints."""
        _, stderr = self.run(*args, code=1)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert len(lines[0]) < 300
        return lines[0]

    def audit(self) -> list[tuple[str, str, dict[str, object]]]:
        with open_accounts(home_url(self.home)) as accounts:
            _, entries = accounts.audit(limit=100)
        return [(e.user, e.action, e.detail) for e in reversed(entries)]

    def doc(self, ident: int) -> dict[str, object]:
        return json.loads(self.run("show", "--json", str(ident))[0])  # type: ignore[no-any-return]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def test_retention_set_changes_the_matches_and_is_audited(home: Home) -> None:
    _, err = home.run(
        "retention", "set", "from:alice@example.com", "7y", "--reason", "schedule 4.2"
    )
    assert err.strip() == "kept 1 messages 7y from their arrival"
    assert home.doc(home.alice)["retain_until"] == "2031-01-31T09:30:00+00:00"
    assert home.doc(home.bob)["retain_until"] is None
    [intent, (who, action, detail)] = home.audit()
    assert who.startswith("cli")
    change = {"query": "from:alice@example.com", "period": "7y", "reason": "schedule 4.2"}
    assert intent == (who, "retention.set.intent", change)
    assert (action, detail) == ("retention.set", {**change, "count": 1})


def test_retention_set_dry_run_changes_and_audits_nothing(home: Home) -> None:
    _, err = home.run("retention", "set", "", "90d", "--reason", "r", "--dry-run")
    assert err.strip() == "would keep 2 messages 90d from their arrival (dry run)"
    assert home.doc(home.alice)["retain_until"] is None
    assert home.audit() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["", "10 years"], "error: bad period: must be a period such as"),
        (["", "١٠y"], "error: bad period: must be a period such as"),
        (["", "99999y"], "error: bad period: must be a period such as"),
        (["after:99999-01-01", "1y"], "error: bad query at position 1: after: needs a date"),
        (["retained-until:<２０３０", "1y"], "error: bad query at position 1: retained-until:"),
    ],
)
def test_retention_set_mistakes_are_one_line(home: Home, args: list[str], expected: str) -> None:
    assert home.error("retention", "set", *args, "--reason", "r").startswith(expected)
    assert home.doc(home.alice)["retain_until"] is None
    assert home.audit() == []


def test_retention_set_needs_a_reason(home: Home) -> None:
    _, err = home.run("retention", "set", "", "1y", code=2)
    assert "Missing option '--reason'" in err


def test_hold_add_list_show_release(home: Home) -> None:
    _, err = home.run("hold", "add", "case-17", "from:alice@example.com", "--reason", "subpoena 17")
    assert err.strip() == "hold case-17 placed: 1 messages held"
    listed = json.loads(home.run("hold", "list", "--json")[0])["holds"]
    assert len(listed) == 1
    h = listed[0]
    assert (h["name"], h["query"], h["reason"], h["messages"], h["active"]) == (
        "case-17", "from:alice@example.com", "subpoena 17", 1, True,
    )  # fmt: skip
    assert h["created_by"].startswith("cli")
    assert h["released_at"] is None
    table = home.run("hold", "list")[0]
    assert "case-17" in table
    assert "active" in table
    assert " 1 " in table
    shown = home.run("hold", "show", "case-17")[0]
    assert "Query: from:alice@example.com" in shown
    assert "Messages: 1" in shown
    assert json.loads(home.run("hold", "show", "--json", "CASE-17")[0]) == h
    _, err = home.run("hold", "release", "case-17")
    assert err.strip() == "hold case-17 released (1 messages)"
    shown = json.loads(home.run("hold", "show", "--json", "case-17")[0])
    assert shown["active"] is False
    assert shown["released_by"].startswith("cli")
    _, err = home.run("hold", "release", "case-17")
    assert "already released" in err
    placed = {"name": "case-17", "query": "from:alice@example.com", "reason": "subpoena 17"}
    assert [(a, d) for _, a, d in home.audit()] == [
        ("hold.add.intent", placed),
        ("hold.add", {**placed, "count": 1}),
        ("hold.release.intent", {"name": "case-17"}),
        ("hold.release", {"name": "case-17", "count": 1}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "bad name", "x"], "error: bad hold name 'bad name': 1-64 ASCII letters"),
        (["add", "x" * 5000, "x"], "error: bad hold name 'xxxxxxxx"),
        (["add", "ok", "after:2024-13-45"], "error: bad query at position 1: after:"),
        (["add", "ok", "x", "--reason", "two\nlines"], "error: bad reason: at most 1000"),
        (["show", "nope"], "error: no hold named 'nope' (hold list shows them)"),
        (["release", "nope"], "error: no hold named 'nope' (hold list shows them)"),
        (["show", "é" * 3000], "error: no hold named"),
    ],
)
def test_hold_mistakes_are_one_line(home: Home, args: list[str], expected: str) -> None:
    assert home.error("hold", *args).startswith(expected)
    assert json.loads(home.run("hold", "list", "--json")[0]) == {"holds": []}
    assert home.audit() == []


def test_a_duplicate_hold_name_is_refused(home: Home) -> None:
    home.run("hold", "add", "case", "x")
    line = home.error("hold", "add", "Case", "from:bob@example.com")
    assert line.startswith("error: a hold named 'Case' exists already")
    assert [h["query"] for h in json.loads(home.run("hold", "list", "--json")[0])["holds"]] == ["x"]


def cli(home: Home, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    """The installed command, as an operator's shell runs it: 8-bit argv bytes reach Python
    as surrogate escapes only this way (CliRunner takes str)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home.home)
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )


def test_8_bit_arguments_are_read_as_text_not_a_traceback(home: Home) -> None:
    placed = cli(home, "hold", "add", "case-8", b"subject:\xff", "--reason", b"\xe9t\xe9 r\xff")
    assert (placed.returncode, placed.stderr.strip()) == (
        0, "hold case-8 placed: 0 messages held"
    )  # fmt: skip
    [h] = json.loads(home.run("hold", "list", "--json")[0])["holds"]
    # bytes that are not UTF-8 read as Latin-1, as erase reads them: nothing is lost
    assert (h["query"], h["reason"]) == ("subject:ÿ", "été rÿ")
    kept = cli(home, "retention", "set", b"subject:\xff", "10y", "--reason", b"r\xff")
    assert (kept.returncode, kept.stderr.strip()) == (0, "kept 0 messages 10y from their arrival")
    assert [(a, d.get("query"), d.get("reason")) for _, a, d in home.audit()][-1] == (
        "retention.set", "subject:ÿ", "rÿ"
    )  # fmt: skip
    for args, expected in [
        (("hold", "add", b"case-\xff", "x"), "error: bad hold name"),
        (("hold", "show", b"\xff"), "error: no hold named"),
        (("retention", "set", "x", b"10y\xff", "--reason", "r"), "error: bad period"),
    ]:
        refused = cli(home, *args)
        assert refused.returncode == 1, refused.stderr
        assert "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(expected), line


def test_no_change_is_made_that_the_audit_log_cannot_record(home: Home) -> None:
    home.run("hold", "add", "case-1", "from:bob@example.com")
    refuse_audit(home.home)
    line = home.error("retention", "set", "from:alice@example.com", "7y", "--reason", "r")
    assert line.startswith("error: accounts database")
    assert "audit log full" in line
    assert home.doc(home.alice)["retain_until"] is None
    assert "audit log full" in home.error("hold", "add", "case-2", "from:alice@example.com")
    assert "audit log full" in home.error("hold", "release", "case-1")
    holds = json.loads(home.run("hold", "list", "--json")[0])["holds"]
    assert [(h["name"], h["active"]) for h in holds] == [("case-1", True)]
