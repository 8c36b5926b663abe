"""The [extract] section: the limits of attachment text extraction."""

from __future__ import annotations

import pytest

from postfix_archiver.config import default_config, parse_config
from postfix_archiver.errors import ConfigError
from postfix_archiver.extract import Limits, limits_from


def test_defaults_are_the_limits_defaults() -> None:
    assert limits_from(default_config().extract) == Limits()


def test_values_are_read() -> None:
    config = parse_config(
        '[extract]\ntimeout = "1m"\nmax_input = 1048576\nmax_output = 5000\n'
        "max_memory = 268435456\nmax_depth = 0\n"
    )
    assert limits_from(config.extract) == Limits(
        timeout=60.0, max_input=1 << 20, max_output=5000, max_memory=256 << 20, max_depth=0
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("timeout = 0", "between"),
        ("timeout = -5", "between"),
        ('timeout = "forever"', "period"),
        ("max_input = -1", "between"),
        ("max_input = 99999999999999999", "between"),
        ("max_output = 10", "between"),
        ("max_memory = 1024", "between"),
        ("max_depth = 21", "between"),
        ('max_depth = "3"', "must be a int"),
        ("max_depth = true", "must be a int"),
        ("max_threads = 2", "unknown key"),
    ],
)
def test_bad_values_name_the_line(line: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"# limits\n[extract]\n{line}\n", "archiver.toml")
    assert caught.value.line == 3
    assert reason in str(caught.value)
    assert str(caught.value).startswith("archiver.toml:3: extract.")
