"""The application object: parts opened on first use and closed together, the pipe filter's
light start-up, and HOST:PORT parsed once into a typed value."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from postfix_archiver.app import Application
from postfix_archiver.config import HostPort, parse_config, parse_hostport


def make_app(tmp_path: Path, extra: str = "") -> Application:
    home = tmp_path / "home"
    return Application(parse_config(f'[archive]\nhome = "{home}"\n{extra}'))


def test_nothing_is_opened_or_created_until_used(tmp_path: Path) -> None:
    with make_app(tmp_path) as app:
        assert app.policy is app.policy  # compiled once
    assert not (tmp_path / "home").exists()


def test_the_parts_open_once_and_close_together(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with app:
        assert app.archive is app.archive
        assert app.accounts is app.accounts
        assert not app.has_users()
    assert app._archive is None
    assert app._accounts is None


def test_a_pipeline_reinjects_unless_a_sink(tmp_path: Path) -> None:
    extra = '[smtp]\nreinject = "127.0.0.1:2526"\n'
    with make_app(tmp_path, extra) as app:
        assert app.pipeline().reinject_address == "127.0.0.1:2526"
        assert app.pipeline(reinject="127.0.0.1:2600").reinject_address == "127.0.0.1:2600"
        assert app.pipeline(sink=True).sink


def test_the_pipe_filter_loads_no_command_line_web_or_smtp_server_code() -> None:
    # the filter runs once per message: entry.py -> app.filter_main must stay light
    code = (
        "import sys, postfix_archiver.entry, postfix_archiver.app; "
        "print(' '.join(m for m in ('click', 'rich', 'fastapi', 'uvicorn', 'aiosmtpd', "
        "'postfix_archiver.archive', 'postfix_archiver.web') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:10025", "127.0.0.1", 10025), ("[::1]:26", "::1", 26), ("mx:1", "mx", 1)],
)
def test_host_port_is_the_text_with_its_parts(text: str, host: str, port: int) -> None:
    value = parse_hostport(text)
    assert isinstance(value, HostPort)
    assert (value, value.host, value.port) == (text, host, port)
    copy = pickle.loads(pickle.dumps(value))
    assert (copy, copy.host, copy.port) == (text, host, port)


def test_port_zero_only_where_any_free_port_makes_sense() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_hostport("127.0.0.1:0")
    assert parse_hostport("127.0.0.1:0", any_port=True).port == 0


def test_config_addresses_are_typed() -> None:
    config = parse_config('[smtp]\nlisten = "[::1]:2525"\n')
    assert (config.smtp.listen.host, config.smtp.listen.port) == ("::1", 2525)
    assert (config.web.listen.host, config.web.listen.port) == ("127.0.0.1", 8025)
