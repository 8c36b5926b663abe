"""`rules test`, `rules check` and `serve` on a broken config, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = str(Path(sys.executable).with_name("postfix-archiver"))

CONFIG = """\
[archive]
home = "{home}"
local_domains = ["example.com"]

[[rules]]
name = "system mail"
preset = "system-mail"
action = "skip"

[[rules]]
name = "finance"
recipient = ["*@finance.example.com"]
action = "archive"
retention = "10y"
"""

CRON = (
    b"From: root@host.example.com (Cron Daemon)\nTo: root@host.example.com\n"
    b"Subject: Cron <root@host> run-parts /etc/cron.daily\nX-Cron-Env: <SHELL=/bin/sh>\n\n"
    b"output\n"
)


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER")}
    return subprocess.run(
        [BIN, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "archiver.toml"
    path.write_text(text.replace("{home}", str(tmp_path / "data")))
    return path


def test_rules_test_explains_each_recipient(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    mail = tmp_path / "cron.eml"
    mail.write_bytes(CRON)
    done = run(
        "rules",
        "test",
        "--config",
        str(config),
        str(mail),
        "-f",
        "alice@example.com",
        "-r",
        "root@host.example.com",
        "-r",
        "boss@finance.example.com",
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith('root@host.example.com: skip by rule "system mail"')
    assert "mail to root" in lines[0] or "cron output" in lines[0]
    assert lines[1].startswith('boss@finance.example.com: skip by rule "system mail"')
    assert lines[-1] == 'X-Archive-Status: Skipped; rule="system mail"'


def test_rules_test_json_and_per_recipient_split(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    mail = tmp_path / "plain.eml"
    mail.write_bytes(b"From: alice@example.com\nTo: x@example.org\nSubject: budget\n\nhi\n")
    done = run(
        "rules",
        "test",
        "--config",
        str(config),
        str(mail),
        "-f",
        "alice@example.com",
        "-r",
        "root@example.com",
        "-r",
        "boss@finance.example.com",
        "--json",
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["archive"] is True
    assert verdict["archived_recipients"] == ["boss@finance.example.com"]
    by_rcpt = {d["recipient"]: d for d in verdict["decisions"]}
    assert by_rcpt["root@example.com"]["action"] == "skip"
    assert by_rcpt["boss@finance.example.com"]["rule"] == "finance"
    assert by_rcpt["boss@finance.example.com"]["retention"] == "10y"


def test_rules_check_lists_rules_in_order(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    done = run("rules", "check", "--config", str(config), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 rule(s), default archive" in done.stdout
    assert done.stdout.index("system mail: skip") < done.stdout.index("finance: archive")


def test_broken_rules_are_refused_with_file_line_and_key(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        CONFIG + '\n[[rules]]\nname = "bad"\nheader = { Subject = "(" }\naction = "skip"\n',
    )
    done = run("rules", "check", "--config", str(config), home=tmp_path)
    assert done.returncode == 78
    assert f"{config}:18: rules[2].header.Subject: bad regular expression" in done.stderr


def test_serve_refuses_to_start_on_a_broken_config(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG + '\n[[rules]]\nname = "no condition"\naction = "skip"\n')
    done = run("serve", "--config", str(config), "--listen", "127.0.0.1:1", home=tmp_path)
    assert done.returncode == 78
    assert f"{config}:16: rules[2]" in done.stderr
    assert "rules[2]" in done.stderr
