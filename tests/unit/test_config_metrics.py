"""The ``[metrics]`` table: its own listener and the pipe filter's textfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfix_archiver.config import Config, parse_config
from postfix_archiver.errors import ConfigError


def metrics(text: str) -> Config:
    return parse_config(f'[archive]\nhome = "/srv/archive"\n[metrics]\n{text}', "/etc/pa.toml")


def test_defaults_are_off() -> None:
    m = metrics("")
    assert (m.metrics.listen, m.metrics.textfile) == (None, None)


def test_listen_and_a_relative_textfile() -> None:
    m = metrics('listen = "127.0.0.1:9125"\ntextfile = "node/postfix-archiver.prom"\n').metrics
    assert m.listen is not None
    assert (m.listen.host, m.listen.port) == ("127.0.0.1", 9125)
    assert m.textfile == Path("/etc/node/postfix-archiver.prom")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('listen = "127.0.0.1:٣٣"', "must be HOST:PORT"),
        ('listen = "127.0.0.1:99999999999999999999"', "must be HOST:PORT"),
        ('listen = "127.0.0.1:0"', "must be HOST:PORT"),
        ('listen = "' + "a" * 10000 + '"', "must be HOST:PORT"),
        ("listen = 9125", "must be a str"),
        ('textfile = "/var/lib/node/archiver.txt"', "must be the path of a .prom file"),
        ('textfile = "/x\\u0000.prom"', "must be the path of a .prom file"),
        ('textfile = "/' + "d/" * 3000 + 'x.prom"', "must be the path of a .prom file"),
        ("textfile = []", "must be a str"),
        ('port = "9125"', "unknown key"),
    ],
)
def test_bad_values_are_one_clear_line(line: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        metrics(line + "\n")
    message = str(info.value)
    assert says in message
    assert "\n" not in message
    assert len(message) < 400
    assert message.startswith("/etc/pa.toml:4: metrics.")
