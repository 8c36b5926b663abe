"""The one log line per message of the running ``serve``: Postfix's queue id first, the
reinjected copy's queue id, decision, rule, archive id, size, milliseconds; as text or JSON;
and values from the client (XFORWARD IDENT, the sender) unable to forge a line."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from postfix_archiver.config import parse_config
from postfix_archiver.errors import ConfigError

from .capture_helpers import (
    CLI,
    Listener,
    ServeProcess,
    cli_env,
    crlf,
    make_message,
    transaction,
)

SKIP_CRON = """
[[rules]]
name = "cron mail"
header = { Subject = "^Cron" }
action = "skip"
"""

_LINE = re.compile(
    r"INFO (?P<qid>\S+): (?P<action>archived|skipped)(?: id=(?P<id>\d+))? "
    r'rule="(?P<rule>[^"]*)" from=<(?P<sender>[^>]*)> nrcpt=(?P<nrcpt>\d+) '
    r"size=(?P<size>\d+) ms=(?P<ms>\d+) reinjected=(?P<requeued>\S+) \((?P<reply>[^)]*)\)$"
)


def _serve(
    start_serve: Callable[..., ServeProcess], tmp_path: Path, listener: Listener, extra: str = ""
) -> ServeProcess:
    home = tmp_path / "home"
    config = tmp_path / "archiver.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n{extra}')
    return start_serve("--config", str(config), "--reinject", listener.address, home=home)


def _send(server: ServeProcess, content: bytes, ident: str | None) -> tuple[int, str]:
    with contextlib.closing(server.client()) as smtp:
        xforward = [f"IDENT={ident}"] if ident is not None else []
        return transaction(
            smtp, content, "alice@example.com", ["bob@example.com"], xforward=xforward
        )


def _lines(server: ServeProcess) -> list[re.Match[str]]:
    return [m for line in server.log.splitlines() if (m := _LINE.search(line))]


def test_the_line_carries_both_queue_ids_the_decision_and_rule(
    start_serve: Callable[..., ServeProcess], tmp_path: Path, listener: Listener
) -> None:
    server = _serve(start_serve, tmp_path, listener, SKIP_CRON)
    message = make_message("quarterly report")
    code, text = _send(server, message, "4QJk2x1Zvbz9abc")
    assert code == 250, text
    cron = crlf("From: root@example.com\nTo: bob@example.com\nSubject: Cron daily\n\nok\n")
    code, text = _send(server, cron, "4QJk2x1Zvbz9abd")
    assert code == 250, text
    assert "skipped" in text, text
    server.wait_log("reinjected=", count=2)

    kept, skipped = _lines(server)
    assert kept["qid"] == "4QJk2x1Zvbz9abc"
    assert kept["action"] == "archived"
    assert kept["id"] == "1"
    assert kept["rule"] == "default"
    assert kept["requeued"] == "4ReInJ1"
    assert "queued as 4ReInJ1" in kept["reply"]
    assert int(kept["size"]) == len(message)
    assert kept["nrcpt"] == "1"
    assert 0 <= int(kept["ms"]) < 30_000
    assert skipped["qid"] == "4QJk2x1Zvbz9abd"
    assert skipped["action"] == "skipped"
    assert skipped["id"] is None
    assert skipped["rule"] == "cron mail"
    assert skipped["requeued"] == "4ReInJ2"
    # `grep QUEUEID` finds exactly our line for each
    assert sum("4QJk2x1Zvbz9abc" in line for line in server.log.splitlines()) == 1


@pytest.mark.parametrize(
    "ident",
    [
        "Q1+0D+0A2026-01-01+20serve+20INFO+20FORGED:+20archived",  # CR LF in the value
        "Q2+0AFORGED",  # a bare LF
        "Q3+C3+A9+00+1B[31m",  # 8-bit, NUL and a terminal escape
        "Q4" + "A" * 480,  # as long as a command line may be (aiosmtpd refuses longer)
    ],
)
def test_a_hostile_ident_cannot_forge_a_line(
    start_serve: Callable[..., ServeProcess], tmp_path: Path, listener: Listener, ident: str
) -> None:
    server = _serve(start_serve, tmp_path, listener)
    code, text = _send(server, make_message("hostile"), ident)
    assert code == 250, text
    server.wait_log("reinjected=")
    log = server.log
    assert "FORGED" not in "".join(line[:30] for line in log.splitlines())
    assert not any(line.startswith(("2026-01-01", "FORGED")) for line in log.splitlines())
    (line,) = [line for line in log.splitlines() if "reinjected=" in line]
    assert line.split(" INFO ", 1)[1].startswith(ident[:2])
    assert len(line) < 400  # a long IDENT is cut, not copied whole
    assert all(" " <= c <= "~" for c in line), line
    assert "\x1b" not in log
    assert "\x00" not in log


def test_json_format_one_object_a_line_with_the_fields(
    start_serve: Callable[..., ServeProcess], tmp_path: Path, listener: Listener
) -> None:
    server = _serve(start_serve, tmp_path, listener, '[log]\nformat = "json"\n')
    code, text = _send(server, make_message("json"), "4Jsn+0D+0AX")
    assert code == 250, text
    server.wait_log("reinjected_queue_id")
    records = [json.loads(line) for line in server.log.splitlines() if line.strip()]
    (line,) = [r for r in records if "reinjected_queue_id" in r]
    assert line["queue_id"] == "4Jsn\r\nX"  # JSON escapes it: no second line
    assert line["reinjected_queue_id"] == "4ReInJ1"
    assert line["action"] == "archived"
    assert line["archive_id"] == 1
    assert line["rule"] == "default"
    assert line["level"] == "info"
    assert isinstance(line["ms"], int)
    assert line["size"] > 0
    assert any(r["message"].startswith("listening on") for r in records)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[log]\nformat = "xml"\n', 'must be "text" or "json"'),
        ("[log]\nformat = 3\n", "must be a str"),
        ('[log]\nlevel = "debug"\n', "unknown key"),
        ('[log]\nformat = "j\u0455on"\n', 'must be "text" or "json"'),
    ],
)
def test_log_format_is_validated_with_the_line_at_fault(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("# a comment\n" + text, "archiver.toml")
    message = str(caught.value)
    assert fragment in message, message
    assert ":3" in message, message


def test_the_pipe_filter_writes_its_line_to_syslog_facility_mail(
    tmp_path: Path, listener: Listener
) -> None:
    """pipe(8) discards a successful command's output: the line goes to syslog (here a
    socket of the test's, as /dev/log would be), where the mail log has Postfix's lines."""
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(path)
        syslog.settimeout(20)
        env = cli_env(tmp_path / "home")
        env["POSTFIX_ARCHIVER_SYSLOG"] = path
        args = ["--reinject", listener.address, "--queue-id", "4PiPe+0A", "-f", "alice@example.com"]
        done = subprocess.run(
            [str(CLI), "filter", *args, "--", "bob@example.com"],
            input=make_message("piped"),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        record = syslog.recv(4096).decode()
    assert done.stderr == b""
    # <22>: facility mail (2) * 8 + info (6)
    assert re.match(r"<22>postfix-archiver/filter\[\d+\]: 4PiPe\+0A: archived id=1 ", record)
    assert "reinjected=4ReInJ1" in record
    assert "\n" not in record.rstrip("\x00\n")
