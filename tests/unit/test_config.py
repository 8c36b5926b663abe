"""The TOML config: defaults, precedence, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfix_archiver.config import (
    ENV_CONFIG,
    ENV_HOME,
    KeyLocator,
    default_config,
    load_config,
    load_config_file,
    parse_config,
)
from postfix_archiver.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    monkeypatch.delenv(ENV_HOME, raising=False)


def write(tmp_path: Path, text: str, name: str = "archiver.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(text: str, path: str = "/etc/archiver.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path)
    return info.value


# --- defaults and precedence ---------------------------------------------------------------


def test_defaults_keep_everything_under_one_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config()
    home = Path("archive-data")
    assert config.archive.home == home
    assert config.archive.catalog_url == f"sqlite://{tmp_path / home / 'catalog.sqlite'}"
    assert config.archive.store_url == f"file://{tmp_path / home / 'blobs'}"
    assert config.smtp.listen == "127.0.0.1:10025"
    assert config.smtp.reinject == "127.0.0.1:10026"
    assert config.archive.default_action == "archive"
    assert config.rules == ()
    assert config.source.path is None
    assert config.archive.accounts_url == f"sqlite://{tmp_path / home / 'web.sqlite'}"


@pytest.mark.parametrize(
    "url", ["postgresql://archiver@db.example.net/archive", "sqlite:///srv/web.sqlite"]
)
def test_the_accounts_can_live_elsewhere(url: str) -> None:
    config = parse_config(f'[archive]\naccounts = "{url}"\n', "/etc/archiver.toml")
    assert config.archive.accounts_url == url


def test_env_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "h"))
    config = default_config()
    assert config.archive.home == tmp_path / "h"
    assert config.archive.catalog_url == f"sqlite://{tmp_path / 'h' / 'catalog.sqlite'}"


def test_env_config_is_used_without_an_explicit_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(tmp_path, '[archive]\nhome = "/srv/env"\n', "env.toml")
    explicit = write(tmp_path, '[archive]\nhome = "/srv/explicit"\n', "explicit.toml")
    monkeypatch.setenv(ENV_CONFIG, str(from_env))
    assert load_config().archive.home == Path("/srv/env")
    assert load_config().source.path == str(from_env)
    assert load_config(explicit).archive.home == Path("/srv/explicit")
    assert load_config(str(explicit)).archive.home == Path("/srv/explicit")
    monkeypatch.setenv(ENV_CONFIG, "")
    assert load_config().source.path is None


def test_home_in_the_file_beats_env_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_HOME, "/srv/from-env")
    with_home = write(tmp_path, '[archive]\nhome = "/srv/from-file"\n', "a.toml")
    without_home = write(tmp_path, "[smtp]\nsink = true\n", "b.toml")
    assert load_config(with_home).archive.home == Path("/srv/from-file")
    assert load_config(without_home).archive.home == Path("/srv/from-env")


def test_relative_home_is_resolved_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc" / "postfix-archiver"
    etc.mkdir(parents=True)
    path = write(etc, '[archive]\nhome = "../../var/archive"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(path)
    assert config.archive.home.resolve() == (tmp_path / "var" / "archive").resolve()
    catalog = Path(config.archive.catalog_url.removeprefix("sqlite://"))
    assert catalog.resolve() == (tmp_path / "var" / "archive" / "catalog.sqlite").resolve()
    # and a relative --config path too
    monkeypatch.chdir(tmp_path)
    assert (
        load_config("etc/postfix-archiver/archiver.toml").archive.home.resolve()
        == (tmp_path / "var" / "archive").resolve()
    )


def test_home_with_tilde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = parse_config('[archive]\nhome = "~/mail-archive"\n', "/etc/a.toml")
    assert config.archive.home == tmp_path / "mail-archive"


def test_full_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
# the archive
[archive]
home = "/srv/archive"
catalog = "sqlite:///var/lib/pa/catalog.sqlite"
store = "file:///var/lib/pa/blobs"
attachment_threshold = 8192
compression_level = 9
default = "skip"
local_domains = ["Example.COM", "@example.org"]

[smtp]   # the proxy
listen = "127.0.0.1:10027"
reinject = "[::1]:10028"
sink = true
max_message_size = 1_000_000
timeout = 30

[web]
listen = "0.0.0.0:8080"
secure_cookies = true
session_hours = 2

[[rules]]
name = "skip bulk"
action = "skip"
""",
    )
    config = load_config(path)
    a = config.archive
    assert a.catalog_url == "sqlite:///var/lib/pa/catalog.sqlite"
    assert a.store_url == "file:///var/lib/pa/blobs"
    assert (a.attachment_threshold, a.compression_level, a.default_action) == (8192, 9, "skip")
    assert a.local_domains == ("example.com", "example.org")
    s = config.smtp
    assert (s.listen, s.reinject, s.sink, s.max_message_size) == (
        "127.0.0.1:10027",
        "[::1]:10028",
        True,
        1_000_000,
    )
    assert s.timeout == 30.0
    assert isinstance(s.timeout, float)
    assert (config.web.listen, config.web.secure_cookies, config.web.session_hours) == (
        "0.0.0.0:8080",
        True,
        2,
    )
    assert config.rules == ({"name": "skip bulk", "action": "skip"},)


# --- errors: file, line, key, reason -------------------------------------------------------


def test_error_text_is_file_line_key_reason() -> None:
    err = error_of('[archive]\nhome = "/x"\n\n# c\nbogus = 1\n')
    assert (err.path, err.line, err.key) == ("/etc/archiver.toml", 5, "archive.bogus")
    assert str(err).startswith("/etc/archiver.toml:5: archive.bogus: unknown key (known: ")
    assert "local_domains" in err.reason


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('[smtp]\nlisten = "127.0.0.1:1"\nlisen = "x"\n', 3, "smtp.lisen"),
        ("[web]\n\n\nport = 80\n", 4, "web.port"),
        ('[ archive ] # spaced\n  "quoted" = 1\n', 2, "archive.quoted"),
        ("smtp.sink = true\nsmtp.bogus = 1\n", 2, "smtp.bogus"),
        ('[archive]\nhome = """\nbogus = 1\n"""\nbogus = 2\n', 5, "archive.bogus"),
    ],
)
def test_unknown_key_line(text: str, line: int, key: str) -> None:
    err = error_of(text)
    assert (err.line, err.key) == (line, key)
    assert err.reason.startswith("unknown key")


def test_unknown_section() -> None:
    err = error_of('[archive]\nhome = "/x"\n\n[smpt]\nlisten = "a:1"\n')
    assert (err.line, err.key) == (4, "smpt")
    known = "archive, auth, extract, integrity, log, metrics, restore, rules, s3, smtp, web"
    assert f"unknown section (known: {known})" in err.reason


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        ('[archive]\ncompression_level = "3"\n', 2, "archive.compression_level", "must be a int"),
        ("[archive]\nattachment_threshold = true\n", 2, "archive.attachment_threshold", "int"),
        ("[archive]\nhome = 42\n", 2, "archive.home", "must be a str, not 42"),
        ('[archive]\nlocal_domains = "example.com"\n', 2, "archive.local_domains", "list"),
        ("[archive]\nlocal_domains = [1]\n", 2, "archive.local_domains", "domain names"),
        ("[smtp]\nsink = 1\n", 2, "smtp.sink", "must be a bool, not 1"),
        ('[smtp]\n\ntimeout = "soon"\n', 3, "smtp.timeout", "must be a number"),
        ("[web]\nsession_hours = 1.5\n", 2, "web.session_hours", "must be a int"),
        ('archive = "x"\n', 1, "archive", "must be a table"),
        ('rules = "skip everything"\n', 1, "rules", "must be a list of [[rules]] tables"),
        ("rules = [1, 2]\n", 1, "rules[0]", "each rule must be a [[rules]] table"),
        ('[archive]\ndefault = "keep"\n', 2, "archive.default", '"archive" or "skip"'),
        ("[archive]\nattachment_threshold = 100\n", 2, "archive.attachment_threshold", "256"),
        ("[archive]\n\ncompression_level = 20\n", 3, "archive.compression_level", "1 and 19"),
        ('[archive]\ncatalog = "/var/lib/catalog.sqlite"\n', 2, "archive.catalog", "sqlite:///"),
        ('[archive]\nstore = "blobs"\n', 2, "archive.store", "file:///"),
        ('[archive]\naccounts = "web.sqlite"\n', 2, "archive.accounts", "postgresql://"),
        ('[archive]\naccounts = "mysql://db/web"\n', 2, "archive.accounts", "sqlite:///"),
        ('[archive]\naccounts = "\\u0000postgresql://"\n', 2, "archive.accounts", "a URL"),
        ("[archive]\naccounts = 5\n", 2, "archive.accounts", "must be a str"),
        ('[archive]\naccounts = "postgresql://h/db\\u0000x"\n', 2, "archive.accounts", "a URL"),
    ],
)
def test_bad_values(text: str, line: int, key: str, reason: str) -> None:
    err = error_of(text)
    assert (err.line, err.key) == (line, key)
    assert reason in err.reason
    assert str(err).startswith(f"/etc/archiver.toml:{line}: {key}: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[archive]\nhome = \n", 2),
        ('[archive]\nhome = "x"\n\n[smtp\n', 4),
        ('[archive]\nhome = "x"\nhome = "y"\n', 3),
        ('[archive]\nhome = "unterminated\n', 2),
        ("[archive]\n[archive]\n", 2),
    ],
)
def test_bad_toml_names_the_line(text: str, line: int) -> None:
    err = error_of(text)
    assert err.line == line
    assert str(err).startswith(f"/etc/archiver.toml:{line}: not valid TOML: ")


@pytest.mark.parametrize(
    "value", ["127.0.0.1:10025", "localhost:1", "mail.example.com:65535", "[::1]:10026"]
)
def test_good_host_port(value: str) -> None:
    for section, key in (("smtp", "listen"), ("smtp", "reinject"), ("web", "listen")):
        config = parse_config(f'[{section}]\n{key} = "{value}"\n', "/etc/a.toml")
        assert getattr(getattr(config, section), key) == value


@pytest.mark.parametrize(
    "value",
    ["localhost", ":25", "127.0.0.1:", "host:0", "host:65536", "host:smtp", "host:-1", "", "25"],
)
def test_bad_host_port(value: str) -> None:
    for section, key in (("smtp", "listen"), ("smtp", "reinject"), ("web", "listen")):
        err = error_of(f'[{section}]\n\n{key} = "{value}"\n')
        assert (err.line, err.key) == (3, f"{section}.{key}")
        assert err.reason == f"must be HOST:PORT, not {value!r}"


# --- [[rules]]: the line of a key in the n-th rule ------------------------------------------

RULES = """\
[archive]
home = "/srv/archive"

[[rules]]
name = "first"
action = "skip"

[[rules]]
name = "second"
sender = "a@example.com"
bogus = 1
header = { Subject = "(" }

[[rules]]
name = "third"
[rules.header]
X-Spam = "yes"

[[rules.any]]
sender = "x@example.com"

[[rules.any]]
recipient = "y@example.com"
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("rules", 0), 4),
        (("rules", 0, "action"), 6),
        (("rules", 1), 8),
        (("rules", 1, "bogus"), 11),
        (("rules", 1, "sender"), 10),
        (("rules", 1, "header", "Subject"), 12),  # inside an inline table: its key's line
        (("rules", 1, "missing"), 8),  # not in the file: the rule's own line
        (("rules", 2, "header"), 16),
        (("rules", 2, "header", "X-Spam"), 17),
        (("rules", 2, "any", 0, "sender"), 20),
        (("rules", 2, "any", 1), 22),
        (("rules", 2, "any", 1, "recipient"), 23),
        (("archive", "home"), 2),
        (("nowhere",), None),
    ],
)
def test_rule_key_lines(path: tuple[str | int, ...], line: int | None) -> None:
    config = parse_config(RULES, "/etc/archiver.toml")
    assert len(config.rules) == 3
    assert config.source.locator is not None
    assert config.source.locator.line(path) == line


def test_rule_error_names_rule_index_and_line() -> None:
    config = parse_config(RULES, "/etc/archiver.toml")
    err = config.source.error(("rules", 1, "bogus"), "unknown key")
    assert str(err) == "/etc/archiver.toml:11: rules[1].bogus: unknown key"
    err = config.source.error(("rules", 2, "any", 1, "recipient"), "bad address")
    assert str(err) == "/etc/archiver.toml:23: rules[2].any[1].recipient: bad address"


def test_locator_ignores_look_alikes_in_multiline_strings() -> None:
    text = '[[rules]]\nnote = """\n[[rules]]\nbogus = 1\n"""\nbogus = 2\n[[rules]]\nx = 1\n'
    locator = KeyLocator(text)
    assert locator.line(("rules", 0, "bogus")) == 6
    assert locator.line(("rules", 1, "x")) == 8


# --- reading the file ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.path == str(tmp_path / "nope.toml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_config_file(tmp_path)
    assert "\n" not in str(info.value)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[archive]\nhome = "/srv/caf\xe9"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


def test_without_a_path_errors_say_config() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[archive]\nbogus = 1\n")
    assert str(info.value).startswith("<config>:2: archive.bogus: ")


# --- [smtp] processes ------------------------------------------------------------------------


def test_smtp_processes_default_to_one_and_take_a_count() -> None:
    assert parse_config("", "/etc/a.toml").smtp.processes == 1
    assert parse_config("[smtp]\nprocesses = 2\n", "/etc/a.toml").smtp.processes == 2


@pytest.mark.parametrize("value", ["0", "-1", "65", "99999999999999999999", "true", '"2"', "2.0"])
def test_smtp_processes_refuses_what_is_not_a_count_from_1_to_64(value: str) -> None:
    message = str(error_of(f"[smtp]\nprocesses = {value}\n"))
    assert "processes" in message
    assert "\n" not in message
