"""Bad numbers, ids and queries on the command line: a non-zero exit and one clear line,
never a traceback (issue 9 items 5 and 8). The issue's own examples run for real, as an
operator would; their relatives run in-process (a second each is too slow for dozens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from tests.conftest import make_config

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.cli import main
from postfix_archiver.envelope import Envelope
from postfix_archiver.search import MAX_INT, MAX_TERMS

CLI = Path(sys.executable).parent / "postfix-archiver"
TOO_DEEP = ["-a"] * 1333  # the query: 3999 characters, too deep for SQLite
MESSAGES = [
    b"From: Zed <zed@example.com>\r\nTo: bob@example.org\r\nSubject: one\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nfirst\r\n",
    b"From: Amy <amy@example.com>\r\nTo: bob@example.org\r\nSubject: two\r\n"
    b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nsecond\r\n",
]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive with two messages and a web user with one token."""
    home = tmp_path_factory.mktemp("cli-bad-input") / "home"
    with Archive(make_config(home)) as archive:
        for raw in MESSAGES:
            archive.ingest(raw, Envelope("a@example.com", ("bob@example.org",)))
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with open_accounts(home_url(home), hasher=cheap) as accounts:
        accounts.add_user("bob", "user", "long enough", ["bob@example.org"])
        accounts.create_token("bob")
    return home


def run(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home)
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Ran:
    """What a command did, run in-process; an exception that escaped it fails the test."""

    def __init__(self, home: Path, args: tuple[str, ...]) -> None:
        env = {"POSTFIX_ARCHIVER_HOME": str(home), "POSTFIX_ARCHIVER_CONFIG": None}
        result = CliRunner().invoke(main, list(args), env=env, prog_name="postfix-archiver")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{args[:3]} raised {result.exception!r}") from result.exception
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def invoke(home: Path, *args: str) -> Ran:
    return Ran(home, args)


def error_line(result: subprocess.CompletedProcess[str] | Ran, code: int) -> str:
    """The one line that says what is wrong (click's usage errors come after a usage hint)."""
    assert result.returncode == code, (result.returncode, result.stderr[-500:])
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    if code == 2:
        assert lines[0].startswith("Usage: postfix-archiver ")
        lines = lines[3:]  # Usage, Try '--help', a blank line
    assert len(lines) == 1, lines
    assert len(lines[0]) < 300, lines[0]
    return lines[0]


def test_show_id_that_isdigit_but_not_int(home: Path) -> None:
    line = error_line(run(home, "show", "²"), 1)
    assert line == (
        "error: no archived message with id '²' "
        "(give the number shown by search, or the full SHA-256)"
    )


@pytest.mark.parametrize(
    "ident",
    ["²", "١", "9" * 5000, "99999999999999999999", str(MAX_INT + 1), "0", "1.0", "a" * 64],
)
@pytest.mark.parametrize("flag", [[], ["--raw"], ["--json"]])
def test_show_bad_ids(home: Path, ident: str, flag: list[str]) -> None:
    result = invoke(home, "show", ident, *flag)
    line = error_line(result, 1)
    assert line.startswith("error: no archived message with id ")
    assert result.stdout == ""


def test_search_query_too_deep_for_sqlite(home: Path) -> None:
    line = error_line(run(home, "search", *TOO_DEEP), 1)
    assert line == (
        f"error: bad query at position {3 * MAX_TERMS + 2}: "
        f"too many terms: at most {MAX_TERMS} words, phrases and field:value terms"
    )


def test_export_query_too_deep_for_sqlite(home: Path) -> None:
    out = home.parent / "out.mbox"
    line = error_line(invoke(home, "export", "--format", "mbox", "-o", str(out), *TOO_DEEP), 1)
    assert "too many terms" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "query", ["after:99999-01-01", "before:0000-00-00", "after:2024-13-45", "after:２０２４-01-01"]
)
def test_search_hostile_dates(home: Path, query: str) -> None:
    line = error_line(invoke(home, "search", "x", query), 1)
    assert line.startswith("error: bad query at position 3: ")
    assert "needs a date like 2024-01-31" in line


def test_search_offset_past_64_bits(home: Path) -> None:
    line = error_line(run(home, "search", "--offset", "99999999999999999999"), 2)
    assert line == (
        "Error: Invalid value for '--offset': "
        f"'99999999999999999999' is not a whole number from 0 to {MAX_INT}"
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--offset", "99999999999999999999"),
        ("--offset", str(MAX_INT + 1)),
        ("--offset", "9" * 5000),
        ("--offset", "-1"),
        ("--offset", "١"),  # int() reads it as 1
        ("--limit", "²"),
        ("--limit", "0"),
        ("--limit", "1_000"),
        ("--order", "sideways"),
    ],
)
def test_search_bad_numbers_are_usage_errors(home: Path, option: str, value: str) -> None:
    line = error_line(invoke(home, "search", option, value), 2)
    assert line.startswith(f"Error: Invalid value for '{option}': ")


def test_search_largest_offset_is_an_empty_page(home: Path) -> None:
    result = invoke(home, "search", "--json", "--offset", str(MAX_INT), "--limit", "100000")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"total": 2, "results": [], "not_indexed": 2}


@pytest.mark.parametrize(
    ("order", "subjects"), [("from", ["two", "one"]), ("-from", ["one", "two"])]
)
def test_search_orders_by_sender(home: Path, order: str, subjects: list[str]) -> None:
    result = invoke(home, "search", "--json", "--order", order)
    assert result.returncode == 0, result.stderr
    assert [r["subject"] for r in json.loads(result.stdout)["results"]] == subjects


def test_user_revoke_token_id_past_64_bits(home: Path) -> None:
    line = error_line(run(home, "user", "revoke", "bob", "99999999999999999999"), 2)
    assert line == (
        "Error: Invalid value for '[TOKEN_ID]': "
        f"'99999999999999999999' is not a whole number from 1 to {MAX_INT}"
    )


@pytest.mark.parametrize("token", ["99999999999999999999", "9" * 5000, "²", "١", "0", "1_0"])
def test_user_revoke_bad_token_ids(home: Path, token: str) -> None:
    line = error_line(invoke(home, "user", "revoke", "bob", token), 2)
    assert line.startswith("Error: Invalid value for '[TOKEN_ID]': ")


def test_user_revoke_largest_token_id_is_no_such_token(home: Path) -> None:
    line = error_line(invoke(home, "user", "revoke", "bob", str(MAX_INT)), 1)
    assert line == f"error: bob has no token {MAX_INT} (see: user tokens bob)"


@pytest.mark.parametrize("value", ["99999999999999999999", "²", "0"])
def test_audit_bad_limit(home: Path, value: str) -> None:
    line = error_line(invoke(home, "audit", "--limit", value), 2)
    assert line.startswith("Error: Invalid value for '--limit': ")


@pytest.mark.parametrize(
    "args",
    [
        ["--listen", "127.0.0.1:²"],
        ["--listen", "127.0.0.1:99999999999999999999"],
        # unchecked, these used to start a proxy that deferred every message
        ["--reinject", "127.0.0.1:²"],
        ["--reinject", "127.0.0.1"],
    ],
)
def test_serve_bad_host_port_is_a_usage_error(home: Path, args: list[str]) -> None:
    try:
        result = run(home, "serve", *args, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve {' '.join(args)} started instead of refusing")
    line = error_line(result, 2)
    assert line.startswith(f"Error: Invalid value for '{args[0]}': ")
    assert "HOST:PORT" in line


@pytest.mark.parametrize(
    "args", [["--amavis-address", "127.0.0.1:²"], ["--amavis-return", "localhost:0"]]
)
def test_postfix_config_bad_host_port_is_a_usage_error(home: Path, args: list[str]) -> None:
    line = error_line(invoke(home, "postfix-config", "--amavis", *args), 2)
    assert line.startswith(f"Error: Invalid value for '{args[0]}': ")
    assert "HOST:PORT" in line


@pytest.mark.parametrize("value", ["127.0.0.1:²", "127.0.0.1:" + "9" * 5000])
def test_web_bad_listen_is_one_line(home: Path, value: str) -> None:
    result = run(home, "web", "--listen", value)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: bad listen address ")


@pytest.mark.parametrize("value", ["127.0.0.1:²", "127.0.0.1:" + "9" * 5000])
def test_config_bad_listen_is_a_config_error(home: Path, value: str) -> None:
    config = home.parent / "bad-listen.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n[web]\nlisten = "{value}"\n', "utf-8")
    result = invoke(home, "stats", "--config", str(config))
    assert result.returncode == 78
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"config error: {config}:4: web.listen: must be HOST:PORT")


@pytest.mark.parametrize("value", ["0", "65", "²", "99999999999999999999"])
def test_serve_bad_processes_is_a_usage_error(home: Path, value: str) -> None:
    line = error_line(invoke(home, "serve", "--processes", value), 2)
    assert line.startswith("Error: Invalid value for '--processes': ")


@pytest.mark.parametrize("value", ["1,2", "3,4,5,2", "a,b,c,d", "3,4,5,-1", "3,4,5,１", "9" * 40])
def test_serve_bad_worker_is_a_usage_error(home: Path, value: str) -> None:
    line = error_line(invoke(home, "serve", "--worker", value), 2)
    assert line.startswith("Error: Invalid value: --worker takes LISTEN,READY,PARENT,PRIMARY")


def test_serve_processes_with_a_metrics_listener_refuses_in_one_line(home: Path) -> None:
    config = home.parent / "metrics.toml"
    config.write_text('[metrics]\nlisten = "127.0.0.1:1"\n')
    result = run(home, "serve", "--config", str(config), "--processes", "2", timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: [metrics] listen works with one serve process only")
