"""The [restore] section: where web restores go, as whom, and how many."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfix_archiver.config import default_config, parse_config
from postfix_archiver.errors import ConfigError
from postfix_archiver.restore import (
    ImapTarget,
    RestoreUnavailable,
    SmtpTarget,
    configured_target,
    read_secret,
)

IMAP = 'imap = "imaps://mail.example.com"\nmaster_user = "archiver"\n'


def restore_section(text: str, path: Path) -> str:
    return f"[archive]\nhome = '{path / 'data'}'\n[restore]\n{text}"


def test_off_by_default() -> None:
    settings = default_config().restore
    assert not settings.enabled
    assert (settings.folder, settings.mailbox, settings.max_messages) == ("Restored", "login", 100)
    with pytest.raises(RestoreUnavailable, match=r"not configured: set \[restore\]"):
        configured_target(settings, "bob")


def test_imap_through_a_master_user(tmp_path: Path) -> None:
    secret = tmp_path / "master.secret"
    secret.write_text("the master's Päss\nignored second line\n")
    text = IMAP.replace("mail.example.com", "mail.example.com:1993") + (
        'master_password_file = "master.secret"\nca_file = "ca.pem"\nfolder = "Wieder da"\n'
        'mailbox = "address"\nmax_messages = 5\nrequests_per_hour = 3\n'
    )
    config = parse_config(restore_section(text, tmp_path), str(tmp_path / "c.toml"))
    settings = config.restore
    assert settings.enabled
    assert settings.master_password_file == secret  # beside the config file
    assert (settings.mailbox, settings.max_messages) == ("address", 5)
    assert settings.requests_per_hour == 3
    target = configured_target(settings, "bob@example.com")
    assert isinstance(target, ImapTarget)
    assert target.where == "imaps://bob@example.com@mail.example.com:1993/Wieder da"
    assert (target.master, target.password) == ("archiver", "the master's Päss")
    assert target.ca_file == str(tmp_path / "ca.pem")
    assert "Päss" not in repr(target)
    assert "Päss" not in repr(settings)


def test_smtp_redelivery(tmp_path: Path) -> None:
    config = parse_config(restore_section('smtp = "127.0.0.1:25"\n', tmp_path))
    target = configured_target(config.restore, "bob@example.com")
    assert isinstance(target, SmtpTarget)
    assert (target.where, target.server) == ("smtp:bob@example.com", "127.0.0.1:25")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('imap = "imaps://u@h/INBOX"', 4, "without a user or folder"),
        ('imap = "imaps://h:٣"', 4, "imaps://HOST[:PORT]"),
        ('imap = "imaps://h:0"', 4, "imaps://HOST[:PORT]"),
        ('imap = "imaps://h:99999999999999999999"', 4, "imaps://HOST[:PORT]"),
        ('imap = "pop3://h"', 4, "imaps://HOST[:PORT]"),
        ('imap = "imaps://h"', 4, "needs master_user and master_password_file"),
        ('smtp = "h:25"\nimap = "imaps://h"', 4, "not both"),
        ('smtp = "127.0.0.1:٢٥"', 4, "HOST:PORT"),
        ('smtp = "h:25"\nmaster_user = "x"', 5, "is for an IMAP restore"),
        (IMAP + 'master_password_file = ""', 6, "path of a file"),
        ('master_user = "a*b"', 4, "without spaces, controls or *"),
        ('master_user = "a b"', 4, "without spaces"),
        ('folder = ""', 4, "1 to 200 characters"),
        ('folder = "a\\u0000b"', 4, "no controls"),
        (f'folder = "{"x" * 201}"', 4, "1 to 200 characters"),
        ('mailbox = "uid"', 4, '"login" or "address"'),
        ("max_messages = 0", 4, "between 1 and 100000"),
        ("max_messages = -5", 4, "between 1 and 100000"),
        ("max_messages = 100000000000000000000", 4, "between 1 and 100000"),
        ("requests_per_hour = 1e3", 4, "must be a int"),
        ("requests_per_hour = true", 4, "must be a int"),
        ('max_messages = "٣"', 4, "must be a int"),
        ("password = 'x'", 4, "unknown key"),
    ],
)
def test_mistakes_name_the_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(restore_section(text, tmp_path), "c.toml")
    assert caught.value.line == line, str(caught.value)
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"c.toml:{line}: restore.")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read"), (b"", "is empty"), (b"\n\n", "is empty"), (b"\xff\xfe", "cannot read")],
)
def test_a_master_password_file_that_cannot_be_used(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RestoreUnavailable, match=reason) as caught:
        read_secret(path, "master user's password")
    assert str(caught.value).startswith(f"{path}: ")
