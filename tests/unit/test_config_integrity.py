"""``[integrity]``: the signing key kept out of the archive, checkpoint triggers, the TSA;
every error names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfix_archiver.config import DEFAULT_SIGNING_KEY, parse_config
from postfix_archiver.errors import ConfigError


def error_of(text: str, path: str = "/etc/archiver.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path)
    return str(info.value)


def test_defaults() -> None:
    i = parse_config("").integrity
    assert i.signing_key == DEFAULT_SIGNING_KEY == Path("/etc/postfix-archiver/signing.key")
    assert not i.signing_key_configured
    assert (i.checkpoint_interval, i.checkpoint_messages) == (3600.0, 0)
    assert (i.tsa_url, i.tsa_ca_file, i.tsa_timeout) == (None, None, 10.0)


def test_values_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    i = parse_config(
        '[archive]\nhome = "/var/lib/pa"\n[integrity]\nsigning_key = "keys/s.key"\n'
        'checkpoint_interval = "2d"\ncheckpoint_messages = 500\n'
        'tsa_url = "https://tsa.example.net/tsr"\ntsa_ca_file = "tsa-ca.pem"\n'
        'tsa_timeout = "30s"\n',
        str(tmp_path / "archiver.toml"),
    ).integrity
    assert i.signing_key == tmp_path / "keys" / "s.key"
    assert i.signing_key_configured
    assert (i.checkpoint_interval, i.checkpoint_messages) == (2 * 86400, 500)
    assert i.tsa_url == "https://tsa.example.net/tsr"
    assert (i.tsa_ca_file, i.tsa_timeout) == (tmp_path / "tsa-ca.pem", 30.0)


@pytest.mark.parametrize("off", ['"off"', "0", '"0"'])
def test_the_interval_can_be_turned_off(off: str) -> None:
    assert (
        parse_config(f"[integrity]\ncheckpoint_interval = {off}\n").integrity.checkpoint_interval
        == 0
    )


@pytest.mark.parametrize(
    "key",
    [
        "/var/lib/pa/signing.key",
        "/var/lib/pa/sub/dir/signing.key",
        "/var/lib/pa/../pa/signing.key",
        "/srv/blobs/signing.key",
    ],
)
def test_a_signing_key_inside_the_archive_is_refused(key: str) -> None:
    text = (
        '[archive]\nhome = "/var/lib/pa"\nstore = "file:///srv/blobs"\n\n'
        f'[integrity]\nsigning_key = "{key}"\n'
    )
    message = error_of(text)
    assert message.startswith("/etc/archiver.toml:6: integrity.signing_key: ")
    assert "keep the signing key where whoever can change the archive cannot read it" in message


def test_a_signing_key_reached_through_a_link_into_the_archive_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "keys").symlink_to(home)
    message = error_of(
        f'[archive]\nhome = "{home}"\n[integrity]\nsigning_key = "{tmp_path}/keys/s.key"\n'
    )
    assert "is inside the archive directory" in message


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        ('checkpoint_interval = "soon"', 2, "checkpoint_interval", "must be a period"),
        ('checkpoint_interval = "١٢m"', 2, "checkpoint_interval", "must be a period"),
        ('checkpoint_interval = "99999999999999999999h"', 2, "checkpoint_interval", "between"),
        ("checkpoint_interval = -5", 2, "checkpoint_interval", "between"),
        ("checkpoint_messages = -1", 2, "checkpoint_messages", "from 0 (off)"),
        ("checkpoint_messages = 9223372036854775807", 2, "checkpoint_messages", "from 0"),
        ("checkpoint_messages = true", 2, "checkpoint_messages", "must be a int"),
        ('checkpoint_messages = "10"', 2, "checkpoint_messages", "must be a int"),
        ("signing_key = 5", 2, "signing_key", "must be a str"),
        ('tsa_url = "ftp://tsa.example.net/"', 2, "tsa_url", "http:// or https://"),
        ('tsa_url = "http://"', 2, "tsa_url", "http:// or https://"),
        ('tsa_url = "http://tsa.example.net/"', 2, "tsa_url", "needs tsa_ca_file too"),
        ('tsa_timeout = "1h"', 2, "tsa_timeout", "between 1s and 300s"),
        ("tsa_certificate = 1", 2, "tsa_certificate", "unknown key"),
    ],
)
def test_errors_name_file_line_and_key(text: str, line: int, key: str, reason: str) -> None:
    message = error_of(f"[integrity]\n{text}\n")
    assert message.startswith(f"/etc/archiver.toml:{line}: integrity.{key}: "), message
    assert reason in message
