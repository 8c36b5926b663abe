"""``[web] timezone``: the zone pages show times in by default, checked when read."""

from __future__ import annotations

import pytest

from postfix_archiver.config import parse_config
from postfix_archiver.errors import ConfigError


def test_the_default_is_utc() -> None:
    assert parse_config('[archive]\nhome = "/x"\n', "/etc/archiver.toml").web.timezone == "UTC"


@pytest.mark.parametrize("name", ["Asia/Seoul", "Europe/Berlin", "America/Argentina/Buenos_Aires"])
def test_an_iana_name_is_kept(name: str) -> None:
    config = parse_config(f'[web]\ntimezone = "{name}"\n', "/etc/archiver.toml")
    assert config.web.timezone == name


@pytest.mark.parametrize(
    "name",
    [
        "KST",
        "Mars/Olympus",
        "asia/seoul",
        "../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "",
        "Europe/Berlin\\u0000",
        "x" * 5000,
        "Ａsia/Seoul",
        "+09:00",
    ],
)
def test_anything_else_is_refused_with_its_line(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f'[archive]\nhome = "/x"\n[web]\n\ntimezone = "{name}"\n', "/etc/a.toml")
    err = info.value
    assert (err.line, err.key) == (5, "web.timezone")
    assert str(err).startswith("/etc/a.toml:5: web.timezone: unknown time zone ")
    assert 'use an IANA name like "Europe/Berlin" or "UTC"' in str(err)
    assert len(str(err)) < 250


def test_a_number_is_refused_as_the_wrong_type() -> None:
    with pytest.raises(ConfigError, match="must be a str"):
        parse_config("[web]\ntimezone = 9\n", "/etc/a.toml")
