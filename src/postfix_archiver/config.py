"""The TOML configuration: defaults, loading, validation with file- and line-precise errors.

With no file, everything (SQLite catalog, blob files) lives under one data directory:
``$POSTFIX_ARCHIVER_HOME``, default ``./archive-data``. A file named by ``--config`` or
``$POSTFIX_ARCHIVER_CONFIG`` overrides the defaults. Every error names the file, the line
and the key, so a broken config refuses to start with something to fix.

``tomllib`` keeps no positions, so ``KeyLocator`` finds the line of a key path by reading
the file's table headers and ``key =`` lines; it is only used to point at errors.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import retention
from .auth_config import AuthSettings, build_auth
from .dates import time_zone
from .errors import ConfigError
from .hostport import HostPort as HostPort  # re-exported: the config's address type
from .hostport import parse_hostport as parse_hostport

ENV_CONFIG = "POSTFIX_ARCHIVER_CONFIG"
ENV_HOME = "POSTFIX_ARCHIVER_HOME"
DEFAULT_HOME = "./archive-data"
DEFAULT_KEY_FILE = Path("/etc/postfix-archiver/archive.keys")
ENCRYPTIONS = ("none", "aes-256-gcm")

KeyPath = tuple[str | int, ...]


class KeyLocator:
    """Maps a key path such as ``("rules", 2, "header")`` to its line in the TOML text."""

    _TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_.\-" ]+?)\s*=""")

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        # last index of each array of tables, by its path with the indices of enclosing arrays:
        # [rules.header] and [[rules.any]] belong to the latest [[rules]]
        counts: dict[KeyPath, int] = {}
        current: KeyPath = ()
        in_multiline = False
        for lineno, line in enumerate(text.splitlines(), start=1):
            # skip the insides of multi-line strings, they hold no keys
            if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                in_multiline = not in_multiline
                if not in_multiline:
                    continue
            elif in_multiline:
                continue
            table = self._TABLE.match(line)
            if table:
                names = self._split(table.group(2))
                if table.group(1) == "[[":
                    array = (*self._within(names[:-1], counts), *names[-1:])
                    counts[array] = counts.get(array, -1) + 1
                    current = (*array, counts[array])
                else:
                    current = self._within(names, counts)
                self._lines.setdefault(current, lineno)
                continue
            key = self._KEY.match(line)
            if key:
                path = (*current, *self._split(key.group(1)))
                self._lines.setdefault(path, lineno)

    @staticmethod
    def _within(names: Sequence[str], counts: Mapping[KeyPath, int]) -> KeyPath:
        """The key path of table ``names``, each array of tables on it at its latest element."""
        path: KeyPath = ()
        for name in names:
            path = (*path, name)
            if path in counts:
                path = (*path, counts[path])
        return path

    @staticmethod
    def _split(dotted: str) -> list[str]:
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s"\']+)', dotted)
        return [a or b or c for a, b, c in parts]

    def line(self, path: Sequence[str | int]) -> int | None:
        """Line of ``path``, or of its nearest enclosing table or key that has one."""
        p = tuple(path)
        while p:
            if p in self._lines:
                return self._lines[p]
            p = p[:-1]
        return None


@dataclass(frozen=True)
class Source:
    """Where a config came from, to point errors at it."""

    path: str | None
    locator: KeyLocator | None

    def error(self, path: Sequence[str | int], reason: str) -> ConfigError:
        key = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        line = self.locator.line(path) if self.locator else None
        return ConfigError(reason, path=self.path, line=line, key=key or None)


# the web accounts' backends (accounts/): SQLite beside the catalog, or a PostgreSQL server
ACCOUNTS_SCHEMES = ("sqlite://", "postgresql://", "postgres://")

# the defaults, parsed once like every configured address (immutable, so shareable)
SMTP_LISTEN = parse_hostport("127.0.0.1:10025")
SMTP_REINJECT = parse_hostport("127.0.0.1:10026")
WEB_LISTEN = parse_hostport("127.0.0.1:8025")


@dataclass(frozen=True)
class ArchiveSettings:
    home: Path
    catalog_url: str
    store_url: str
    attachment_threshold: int = 4096
    compression_level: int = 3
    # characters of body text indexed per message: a 49 MB text body would cost the full-text
    # index several times its size in memory, and nobody searches its fortieth megabyte
    index_limit: int = 8 << 20
    default_action: str = "archive"
    local_domains: tuple[str, ...] = ()
    # kept this long when no archiving rule says (``retention.check``); forever by default:
    # an archive that deletes by surprise is worse than one that grows
    retention: str = "forever"
    # web users, sessions, tokens and the audit log (``[archive] accounts``); None: the
    # default, web.sqlite in home (see ``accounts_url``)
    accounts: str | None = None

    # "aes-256-gcm": every blob sealed with a key from key_file (store/encrypted.py)
    encryption: str = "none"
    key_file: Path = DEFAULT_KEY_FILE

    @property
    def encrypted(self) -> bool:
        return self.encryption != "none"

    @property
    def accounts_url(self) -> str:
        """Where the web accounts live: the configured URL, else ``web.sqlite`` in home."""
        return self.accounts or f"sqlite://{(self.home / 'web.sqlite').absolute()}"


@dataclass(frozen=True)
class SmtpSettings:
    listen: HostPort = SMTP_LISTEN
    reinject: HostPort = SMTP_REINJECT
    # a pooled reinjection connection idle this long is closed: before Postfix's smtpd_timeout
    # (300s; 10s under stress) would close it with a 421
    reinject_idle: float = 60.0
    sink: bool = False
    max_message_size: int = 50 * 1024 * 1024
    timeout: float = 300.0
    # end of DATA to the answer: archiving that takes longer (a locked catalog) is a 451
    answer_timeout: float = 30.0
    # listening processes of ``serve`` on the one socket, each with its own sessions and
    # committer: one Python process uses one core (``capture.processes``)
    processes: int = 1


# more would only add processes contending for the one SQLite write lock
MAX_PROCESSES = 64


@dataclass(frozen=True)
class WebSettings:
    listen: HostPort = WEB_LISTEN
    secure_cookies: bool = False
    session_hours: int = 8
    # the IANA time zone pages show times in, until a reader chooses their own (/settings)
    timezone: str = "UTC"


@dataclass(frozen=True)
class MetricsSettings:
    """``listen``: a listener of its own for /metrics, /healthz and /readyz, served by the
    proxy (or sink) process, whose counters live there; ``textfile``: where the pipe filter
    adds its counts, for node exporter's textfile collector (a ``.prom`` file)."""

    listen: HostPort | None = None
    textfile: Path | None = None


DEFAULT_SIGNING_KEY = Path("/etc/postfix-archiver/signing.key")


@dataclass(frozen=True)
class IntegritySettings:
    """Signed checkpoints of the chain head (``archive.checkpoint``) and their optional
    RFC 3161 timestamps. A period or count of 0 turns that trigger off."""

    signing_key: Path = DEFAULT_SIGNING_KEY
    # set in the file: serve then complains when the key is missing; the default path is
    # only used when a key is there
    signing_key_configured: bool = False
    checkpoint_interval: float = 3600.0  # seconds
    checkpoint_messages: int = 0  # new chain events
    tsa_url: str | None = None
    tsa_ca_file: Path | None = None
    tsa_timeout: float = 10.0


@dataclass(frozen=True)
class ExtractSettings:
    """Bounds on reading the text of one attachment (``extract.limits_from`` makes the
    ``extract.Limits`` of them; the defaults are the same)."""

    timeout: float = 20.0  # seconds of wall time
    max_input: int = 64 << 20  # bytes; larger attachments are not read
    max_output: int = 1 << 20  # characters of text kept
    max_memory: int = 512 << 20  # bytes of address space of the extraction process
    max_depth: int = 3  # attached messages and archives opened inside one another


LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LogSettings:
    format: str = "text"  # the per-message line: "text", or "json" (one object a line)


@dataclass(frozen=True)
class RestoreSettings:
    """Restoring from the web UI and API into users' own mailboxes (``[restore]``): through
    an IMAP server signed in as a master user, or by SMTP re-delivery. Neither set: off."""

    imap: str | None = None  # imaps://HOST[:PORT] or imap://HOST[:PORT] (STARTTLS)
    ca_file: Path | None = None
    master_user: str | None = None
    # read when a restore runs (a secret is never in the config text, nor kept by it)
    master_password_file: Path | None = None
    folder: str = "Restored"
    smtp: HostPort | None = None  # re-deliver through this MTA instead of IMAP
    # whose mailbox a web user's is: their login name (as the mail server knows it, e.g.
    # with IMAP sign-in) or their first address; SMTP always delivers to the address
    mailbox: str = "login"
    max_messages: int = 100  # per request
    requests_per_hour: int = 20  # per user

    @property
    def enabled(self) -> bool:
        return self.imap is not None or self.smtp is not None


@dataclass(frozen=True)
class Config:
    archive: ArchiveSettings
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    web: WebSettings = field(default_factory=WebSettings)
    integrity: IntegritySettings = field(default_factory=IntegritySettings)
    extract: ExtractSettings = field(default_factory=ExtractSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    restore: RestoreSettings = field(default_factory=RestoreSettings)
    rules: tuple[Mapping[str, Any], ...] = ()
    auth: AuthSettings = field(default_factory=AuthSettings)  # [web] auth, [auth.*]
    source: Source = field(default_factory=lambda: Source(None, None))
    log: LogSettings = field(default_factory=LogSettings)


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "archive": {
        "home": str,
        "catalog": str,
        "accounts": str,
        "store": str,
        "attachment_threshold": int,
        "compression_level": int,
        "index_limit": int,
        "default": str,
        "local_domains": list,
        "retention": str,
        "encryption": str,
        "key_file": str,
    },
    "smtp": {
        "listen": str,
        "reinject": str,
        "reinject_idle": object,  # a number or "60s": _period checks it
        "sink": bool,
        "max_message_size": int,
        "timeout": (int, float),
        "answer_timeout": object,  # a number or "30s": _period checks it
        "processes": int,
    },
    "web": {
        "listen": str,
        "secure_cookies": bool,
        "session_hours": int,
        "timezone": str,
        "auth": list,  # auth_config checks it with the [auth] table
    },
    "integrity": {
        "signing_key": str,
        "checkpoint_interval": object,  # a period, 0 or "off": _build_integrity checks it
        "checkpoint_messages": int,
        "tsa_url": str,
        "tsa_ca_file": str,
        "tsa_timeout": object,
    },
    # the S3 store's options, for what a store = "s3://BUCKET/PREFIX" URL does not say
    # (store/s3_url.py checks the values when the store opens)
    "s3": {
        "endpoint": str,
        "region": str,
        "lock_mode": str,
        "pack_limit": int,
        "multipart": int,
        "attempts": int,
        "timeout": int,
    },
    "metrics": {"listen": str, "textfile": str},
    "extract": {
        "timeout": object,  # a period: _build_extract checks it
        "max_input": int,
        "max_output": int,
        "max_memory": int,
        "max_depth": int,
    },
    "log": {"format": str},
    "restore": {
        "imap": str,
        "ca_file": str,
        "master_user": str,
        "master_password_file": str,
        "folder": str,
        "smtp": str,
        "mailbox": str,
        "max_messages": int,
        "requests_per_hour": int,
    },
}


def default_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or DEFAULT_HOME)


def default_config() -> Config:
    return _build({}, Source(None, None), default_home())


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load ``path``, else ``$POSTFIX_ARCHIVER_CONFIG``, else the defaults."""
    chosen = path if path is not None else os.environ.get(ENV_CONFIG)
    if not chosen:
        return default_config()
    return load_config_file(Path(chosen))


def load_config_file(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file (give an existing --config file)", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
    return parse_config(text, str(path))


def parse_config(text: str, path: str | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            f"not valid TOML: {exc}", path=path, line=int(match.group(1)) if match else None
        ) from None
    source = Source(path, KeyLocator(text))
    home_value = (
        data.get("archive", {}).get("home") if isinstance(data.get("archive"), dict) else None
    )
    base = Path(path).parent if path else Path.cwd()
    home = default_home() if home_value is None else _resolve(base, str(home_value))
    return _build(data, source, home)


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def _check_types(data: Mapping[str, Any], source: Source) -> None:
    for section, value in data.items():
        if section == "rules":
            if not isinstance(value, list):
                raise source.error((section,), "must be a list of [[rules]] tables")
            continue
        if section == "auth":  # auth_config checks it
            continue
        if section not in _SCHEMA:
            known = ", ".join(sorted([*_SCHEMA, "auth", "rules"]))
            raise source.error((section,), f"unknown section (known: {known})")
        if not isinstance(value, dict):
            raise source.error((section,), "must be a table")
        for key, item in value.items():
            expected = _SCHEMA[section].get(key)
            if expected is None:
                known = ", ".join(sorted(_SCHEMA[section]))
                raise source.error((section, key), f"unknown key (known: {known})")
            if not isinstance(item, expected) or (isinstance(item, bool) and expected is int):
                names = expected.__name__ if isinstance(expected, type) else "number"
                raise source.error((section, key), f"must be a {names}, not {item!r}")


def _url_for(home: Path, value: str | None, scheme: str, default_name: str) -> str:
    if value is None:
        return f"{scheme}://{(home / default_name).absolute()}"
    return value


def _with_s3_options(source: Source, url: str, options: Mapping[str, Any]) -> str:
    """``url`` with the ``[s3]`` table's options added as query parameters; those the URL
    gives itself win (one place to look: the URL, when it says)."""
    if not url.startswith("s3://"):
        raise source.error(
            ("s3",), 'is for an S3 store: set [archive] store = "s3://BUCKET/PREFIX"'
        )
    given = {name for name, _value in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    extra = {k: str(v) for k, v in options.items() if k not in given}
    if not extra:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(extra)}"


def _listen(source: Source, section: str, key: str, value: str) -> HostPort:
    try:
        return parse_hostport(value)
    except ValueError:
        # the value cut short: a 10,000-character mistake is not echoed whole
        raise source.error((section, key), f"must be HOST:PORT, not {value[:80]!r}") from None


_PERIOD = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(s|m|h|d)?\s*", re.I | re.ASCII)
_PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _processes(source: Source, value: int) -> int:
    if not 1 <= value <= MAX_PROCESSES:
        raise source.error(("smtp", "processes"), f"must be a count from 1 to {MAX_PROCESSES}")
    return value


def _period(
    source: Source, section: str, key: str, value: object, low: float, high: float
) -> float:
    """Seconds from a number or a Postfix-style period ("30s", "2m", "1h")."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        m = _PERIOD.fullmatch(value)
        if m:
            seconds = float(m.group(1)) * _PERIOD_UNITS[(m.group(2) or "s").lower()]
    if seconds is None:
        raise source.error((section, key), f'must be a period such as "30s" or "2m", not {value!r}')
    if not low <= seconds <= high:
        raise source.error((section, key), f"must be between {low:g}s and {high:g}s")
    return seconds


def _check_key_file(
    source: Source, key_file: Path, home: Path, store_url: str, catalog_url: str
) -> None:
    """Refuse a key file kept with the data it protects: a copy of the archive directory (a
    backup, a stolen disk image) would then hold the keys too."""
    places = [home]
    for url, scheme in ((store_url, "file://"), (catalog_url, "sqlite://")):
        if url.startswith(scheme):
            path = Path(url.removeprefix(scheme))
            places.append(path if scheme == "file://" else path.parent)
    resolved = key_file.resolve()
    for place in places:
        if resolved.is_relative_to(place.resolve()):
            raise source.error(
                ("archive", "key_file"),
                f"{key_file} is inside the archive directory {place}: keep the key file "
                "elsewhere (e.g. /etc/postfix-archiver/archive.keys), or a copy of the "
                "archive holds its keys",
            )


def _build(data: Mapping[str, Any], source: Source, home: Path) -> Config:
    _check_types(data, source)
    a = data.get("archive", {})
    s = data.get("smtp", {})
    w = data.get("web", {})
    default_action = a.get("default", "archive")
    if default_action not in ("archive", "skip"):
        raise source.error(("archive", "default"), 'must be "archive" or "skip"')
    threshold = a.get("attachment_threshold", 4096)
    if threshold < 256:
        raise source.error(("archive", "attachment_threshold"), "must be at least 256 bytes")
    level = a.get("compression_level", 3)
    if not 1 <= level <= 19:
        raise source.error(("archive", "compression_level"), "must be between 1 and 19")
    index_limit = a.get("index_limit", ArchiveSettings.index_limit)
    if not 4096 <= index_limit <= 1 << 40:
        raise source.error(("archive", "index_limit"), "must be between 4096 and 2**40 characters")
    domains = a.get("local_domains", [])
    if not all(isinstance(d, str) for d in domains):
        raise source.error(("archive", "local_domains"), "must be a list of domain names")
    retention_default = a.get("retention", ArchiveSettings.retention)
    try:
        retention.check(retention_default)
    except ValueError as exc:
        raise source.error(("archive", "retention"), str(exc)) from None
    for key in ("catalog", "store"):
        value = a.get(key)
        if value is not None and "://" not in value:
            raise source.error(
                ("archive", key),
                f"must be a URL such as "
                f"{'sqlite:///path/catalog.sqlite' if key == 'catalog' else 'file:///path/blobs or s3://BUCKET/PREFIX'}",
            )
    accounts = a.get("accounts")
    # printable only: a control character would end up in every error naming the URL
    if accounts is not None and not (
        accounts.startswith(ACCOUNTS_SCHEMES) and accounts.isprintable()
    ):
        raise source.error(
            ("archive", "accounts"),
            "must be a URL such as sqlite:///path/web.sqlite or "
            "postgresql://USER@HOST:PORT/DATABASE",
        )
    encryption = a.get("encryption", "none")
    if encryption not in ENCRYPTIONS:
        raise source.error(
            ("archive", "encryption"), f"must be one of {', '.join(map(repr, ENCRYPTIONS))}"
        )
    if "\x00" in a.get("key_file", "") or a.get("key_file", None) == "":
        raise source.error(("archive", "key_file"), "must be the path of a file")
    base = Path(source.path).parent if source.path else Path.cwd()
    key_file = _resolve(base, a["key_file"]) if "key_file" in a else DEFAULT_KEY_FILE
    store_url = _url_for(home, a.get("store"), "file", "blobs")
    if "s3" in data:
        store_url = _with_s3_options(source, store_url, data["s3"])
    catalog_url = _url_for(home, a.get("catalog"), "sqlite", "catalog.sqlite")
    if encryption != "none" or "key_file" in a:
        _check_key_file(source, key_file, home, store_url, catalog_url)
    archive = ArchiveSettings(
        home=home,
        catalog_url=catalog_url,
        store_url=store_url,
        attachment_threshold=threshold,
        compression_level=level,
        index_limit=index_limit,
        default_action=default_action,
        local_domains=tuple(d.lower().lstrip("@") for d in domains),
        retention=retention_default,
        accounts=accounts,
        encryption=encryption,
        key_file=key_file,
    )
    smtp = SmtpSettings(
        listen=_listen(source, "smtp", "listen", s.get("listen", SmtpSettings.listen)),
        reinject=_listen(source, "smtp", "reinject", s.get("reinject", SmtpSettings.reinject)),
        reinject_idle=_period(
            source,
            "smtp",
            "reinject_idle",
            s.get("reinject_idle", SmtpSettings.reinject_idle),
            1,
            3600,
        ),
        sink=s.get("sink", False),
        max_message_size=s.get("max_message_size", SmtpSettings.max_message_size),
        timeout=float(s.get("timeout", SmtpSettings.timeout)),
        # well below the 1200s postfix-config gives Postfix to wait for the answer
        answer_timeout=_period(
            source,
            "smtp",
            "answer_timeout",
            s.get("answer_timeout", SmtpSettings.answer_timeout),
            1,
            600,
        ),
        processes=_processes(source, s.get("processes", SmtpSettings.processes)),
    )
    zone = w.get("timezone", WebSettings.timezone)
    if time_zone(zone) is None:
        raise source.error(
            ("web", "timezone"),
            f'unknown time zone {zone[:80]!r}: use an IANA name like "Europe/Berlin" or "UTC"',
        )
    web = WebSettings(
        listen=_listen(source, "web", "listen", w.get("listen", WebSettings.listen)),
        secure_cookies=w.get("secure_cookies", False),
        session_hours=w.get("session_hours", 8),
        timezone=zone,
    )
    rules = data.get("rules", [])
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise source.error(("rules", i), "each rule must be a [[rules]] table")
    integrity = _build_integrity(data.get("integrity", {}), source, archive)
    log_format = data.get("log", {}).get("format", LogSettings.format)
    if log_format not in LOG_FORMATS:
        raise source.error(("log", "format"), 'must be "text" or "json"')
    return Config(
        archive=archive,
        smtp=smtp,
        web=web,
        integrity=integrity,
        extract=_build_extract(data.get("extract", {}), source),
        metrics=_build_metrics(data.get("metrics", {}), source),
        restore=_build_restore(data.get("restore", {}), source),
        rules=tuple(rules),
        auth=build_auth(w.get("auth"), data.get("auth"), source.error, base),
        source=source,
        log=LogSettings(format=log_format),
    )


def _inside(path: Path, directory: Path) -> bool:
    """Whether ``path`` is ``directory`` or under it, symbolic links followed."""
    return path.resolve().is_relative_to(directory.resolve())


def _build_integrity(
    i: Mapping[str, Any], source: Source, archive: ArchiveSettings
) -> IntegritySettings:
    base = Path(source.path).parent if source.path else Path.cwd()
    key = _resolve(base, i["signing_key"]) if "signing_key" in i else DEFAULT_SIGNING_KEY
    # whoever can rewrite the archive must not be able to re-sign it too
    guarded = [("the archive directory", archive.home)]
    if archive.store_url.startswith("file://"):
        guarded.append(("the blob store", Path(archive.store_url.removeprefix("file://"))))
    for name, directory in guarded:
        if _inside(key, directory):
            raise source.error(
                ("integrity", "signing_key"),
                f"{key} is inside {name} ({directory}): keep the signing key where whoever "
                "can change the archive cannot read it, e.g. /etc/postfix-archiver/signing.key",
            )
    interval_value = i.get("checkpoint_interval", IntegritySettings.checkpoint_interval)
    interval = (
        0.0
        if interval_value in (0, "0", "off")
        else _period(source, "integrity", "checkpoint_interval", interval_value, 1, 366 * 86400)
    )
    messages = i.get("checkpoint_messages", 0)
    if not 0 <= messages <= 1 << 40:
        raise source.error(
            ("integrity", "checkpoint_messages"), "must be a count from 0 (off) to 2**40"
        )
    url = i.get("tsa_url")
    if url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url, re.ASCII):
        raise source.error(
            ("integrity", "tsa_url"),
            f"must be an http:// or https:// URL of an RFC 3161 time-stamping authority, "
            f"not {url[:80]!r}",
        )
    ca = _resolve(base, i["tsa_ca_file"]) if "tsa_ca_file" in i else None
    if url is not None and ca is None:
        raise source.error(
            ("integrity", "tsa_url"),
            "needs tsa_ca_file too: the PEM file of the certificate authority that issued the "
            "time-stamping authority's certificate, to check its tokens",
        )
    timeout = _period(
        source,
        "integrity",
        "tsa_timeout",
        i.get("tsa_timeout", IntegritySettings.tsa_timeout),
        1,
        300,
    )
    return IntegritySettings(
        signing_key=key,
        signing_key_configured="signing_key" in i,
        checkpoint_interval=interval,
        checkpoint_messages=messages,
        tsa_url=url,
        tsa_ca_file=ca,
        tsa_timeout=timeout,
    )


# each [extract] size: its lowest and highest sensible value, and what it counts
_EXTRACT_SIZES = {
    "max_input": (1 << 10, 1 << 40, "bytes"),
    "max_output": (1 << 10, 1 << 30, "characters"),
    # a Python worker and pdftotext need some room to start at all
    "max_memory": (64 << 20, 1 << 40, "bytes"),
    "max_depth": (0, 20, "levels"),
}


def _build_extract(e: Mapping[str, Any], source: Source) -> ExtractSettings:
    values: dict[str, Any] = {}
    for key, (low, high, unit) in _EXTRACT_SIZES.items():
        value = e.get(key, getattr(ExtractSettings, key))
        if not low <= value <= high:
            raise source.error(("extract", key), f"must be between {low} and {high} {unit}")
        values[key] = value
    timeout = _period(
        source, "extract", "timeout", e.get("timeout", ExtractSettings.timeout), 0.1, 3600
    )
    return ExtractSettings(timeout=timeout, **values)


def _build_metrics(m: Mapping[str, Any], source: Source) -> MetricsSettings:
    listen = _listen(source, "metrics", "listen", m["listen"]) if "listen" in m else None
    textfile = None
    if "textfile" in m:
        value = m["textfile"]
        # node exporter's textfile collector reads *.prom files only
        if not value.endswith(".prom") or "\x00" in value or len(value) > 4096:
            raise source.error(
                ("metrics", "textfile"),
                "must be the path of a .prom file in node exporter's textfile directory, "
                'e.g. "/var/lib/prometheus/node-exporter/postfix-archiver.prom"',
            )
        base = Path(source.path).parent if source.path else Path.cwd()
        textfile = _resolve(base, value)
    return MetricsSettings(listen=listen, textfile=textfile)


_IMAP_SERVER = re.compile(r"(imaps?)://([^/?#@\s]+)/?", re.I | re.ASCII)
_MASTER_USER = re.compile(r"[^\s*\x00-\x1f\x7f]{1,255}")


def _build_restore(r: Mapping[str, Any], source: Source) -> RestoreSettings:
    base = Path(source.path).parent if source.path else Path.cwd()

    def path(key: str) -> Path | None:
        value = r.get(key)
        if value is None:
            return None
        if not value or "\x00" in value:
            raise source.error(("restore", key), "must be the path of a file")
        return _resolve(base, value)

    imap = r.get("imap")
    if imap is not None:
        m = _IMAP_SERVER.fullmatch(imap)
        try:
            parts = urlsplit(imap)
            valid = m is not None and parts.hostname is not None and parts.port != 0
        except ValueError:  # a port that is no port (urlsplit checks it lazily)
            valid = False
        if not valid:
            raise source.error(
                ("restore", "imap"),
                f"must be imaps://HOST[:PORT] or imap://HOST[:PORT] (STARTTLS), without a "
                f"user or folder, not {imap[:80]!r}",
            )
    smtp = _listen(source, "restore", "smtp", r["smtp"]) if "smtp" in r else None
    if imap is not None and smtp is not None:
        raise source.error(("restore", "smtp"), "give imap or smtp, not both")
    master = r.get("master_user")
    if master is not None and not _MASTER_USER.fullmatch(master):
        raise source.error(
            ("restore", "master_user"),
            "must be a login name of 1 to 255 characters without spaces, controls or *",
        )
    secret = path("master_password_file")
    if imap is not None and (master is None or secret is None):
        raise source.error(
            ("restore", "imap"),
            "needs master_user and master_password_file too: the archive signs in to each "
            "user's mailbox as a master user (Dovecot's master users)",
        )
    ca = path("ca_file")
    for key in ("master_user", "master_password_file", "ca_file"):
        if key in r and imap is None:
            raise source.error(("restore", key), "is for an IMAP restore: set imap too")
    folder = r.get("folder", RestoreSettings.folder)
    if not 0 < len(folder) <= 200 or any(ord(c) < 32 or ord(c) == 127 for c in folder):
        raise source.error(
            ("restore", "folder"), "must be a folder name of 1 to 200 characters, no controls"
        )
    mailbox = r.get("mailbox", RestoreSettings.mailbox)
    if mailbox not in ("login", "address"):
        raise source.error(("restore", "mailbox"), 'must be "login" or "address"')
    limits = {}
    for key, high in (("max_messages", 100_000), ("requests_per_hour", 100_000)):
        value = r.get(key, getattr(RestoreSettings, key))
        if not 1 <= value <= high:
            raise source.error(("restore", key), f"must be between 1 and {high}")
        limits[key] = value
    return RestoreSettings(
        imap=imap,
        ca_file=ca,
        master_user=master,
        master_password_file=secret,
        folder=folder,
        smtp=smtp,
        mailbox=mailbox,
        **limits,
    )
