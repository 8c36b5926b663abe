"""How web users sign in: ``[web] auth`` (the methods, tried in order) and the ``[auth.imap]``
and ``[auth.ldap]`` tables, checked once with the line at fault.

Kept apart from ``config`` (which calls ``build_auth``) so that the sign-in options, which
only the web server reads, do not crowd the archive's. ``error(path, reason)`` makes the
``ConfigError`` naming the file, line and key.

A password never crosses the network in clear: IMAP and LDAP servers are reached over TLS
from the start (``imaps://``, ``ldaps://``) or with STARTTLS (``imap://``, ``ldap://``),
which is then required. The LDAP service account's password is read from a file when a
user signs in, never written in the config.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

Error = Callable[[Sequence[str | int], str], ConfigError]

METHODS = ("local", "imap", "ldap")
ROLES = ("admin", "auditor", "user")  # as accounts.ROLES (a layer above this one)
NO_ROLE = "none"  # a default role that refuses whoever no group names
DEFAULT_PORTS = {"imaps": 993, "imap": 143, "ldaps": 636, "ldap": 389}
LOGIN_FIELDS = ("{login}", "{local}", "{domain}")
_FIELD = re.compile(r"\{[^}]*\}")
MAX_ITEMS = 1000  # addresses in a map entry, groups a role lists: more is a mistake


@dataclass(frozen=True)
class Server:
    """Where a directory or mail server listens; ``tls``: from the start (imaps, ldaps),
    else STARTTLS."""

    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme in ("imaps", "ldaps")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class ImapAuth:
    server: Server
    ca_file: Path | None = None
    timeout: float = 10.0
    # patterns of the user's addresses: {login}, {local} (before the @), {domain} (after)
    addresses: tuple[str, ...] = ("{login}",)
    # login -> addresses, instead of the patterns (lower-case logins)
    map: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    role: str = "user"


@dataclass(frozen=True)
class LdapAuth:
    server: Server
    ca_file: Path | None = None
    timeout: float = 10.0
    # the user's DN from a pattern ("uid={login},ou=people,dc=example,dc=com") …
    user_dn: str | None = None
    # … or found by a search, as the service account when one is given
    base: str | None = None
    filter: str = "(uid={login})"
    bind_dn: str | None = None
    bind_password_file: Path | None = None
    address_attributes: tuple[str, ...] = ("mail", "mailAlternateAddress", "proxyAddresses")
    # groups from an attribute of the user (AD, OpenLDAP's memberof overlay) …
    group_attribute: str | None = "memberOf"
    # … or from a search for groups naming the user ({dn}, {login})
    group_base: str | None = None
    group_filter: str = "(member={dn})"
    # role -> group DNs; the highest role whose group the user is in wins
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_role: str = "user"


@dataclass(frozen=True)
class AuthSettings:
    methods: tuple[str, ...] = ("local",)
    imap: ImapAuth | None = None
    ldap: LdapAuth | None = None


IMAP_KEYS = {"server", "ca_file", "timeout", "addresses", "map", "role"}
LDAP_KEYS = {
    "server",
    "ca_file",
    "timeout",
    "user_dn",
    "base",
    "filter",
    "bind_dn",
    "bind_password_file",
    "address_attributes",
    "group_attribute",
    "group_base",
    "group_filter",
    "roles",
    "default_role",
}


def _text(error: Error, path: tuple[str, ...], value: object, *, limit: int = 1000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error(path, f"must be a non-empty string, not {str(value)[:80]!r}")
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise error(path, f"must be at most {limit} characters, without control characters")
    return value.strip()


def _texts(error: Error, path: tuple[str, ...], value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
        raise error(path, f"must be a non-empty list of strings (at most {MAX_ITEMS})")
    return tuple(_text(error, path, v) for v in value)


def _server(error: Error, path: tuple[str, ...], value: object, schemes: tuple[str, str]) -> Server:
    text = _text(error, path, value, limit=300)
    example = f"{schemes[0]}://HOST[:PORT] (TLS) or {schemes[1]}://HOST[:PORT] (STARTTLS)"
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in schemes or "@" in rest or rest.rstrip("/").count("/"):
        raise error(path, f"must be {example}, not {text[:80]!r}")
    try:
        parts = urlsplit(f"//{rest.rstrip('/')}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = None
    if not host or not host.isascii():
        raise error(path, f"must be {example}, not {text[:80]!r}")
    return Server(scheme, host, port or DEFAULT_PORTS[scheme])


def _timeout(error: Error, path: tuple[str, ...], value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value <= 120:
        raise error(path, "must be a number of seconds from 0.5 to 120")
    return float(value)


def _path(error: Error, path: tuple[str, ...], value: object, base: Path) -> Path:
    text = _text(error, path, value, limit=4096)
    return base / text if not Path(text).is_absolute() else Path(text)


def _role(error: Error, path: tuple[str, ...], value: object, extra: tuple[str, ...] = ()) -> str:
    if value not in (*ROLES, *extra):
        raise error(path, f"must be one of {', '.join((*ROLES, *extra))}, not {str(value)[:80]!r}")
    return str(value)


def _pattern(error: Error, path: tuple[str, ...], value: str, fields: tuple[str, ...]) -> str:
    unknown = [f for f in _FIELD.findall(value) if f not in fields]
    if unknown:
        raise error(path, f"unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    return value


def _table(error: Error, path: tuple[str, ...], value: object, known: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise error(path, "must be a table")
    for key in value:
        if key not in known:
            raise error((*path, key), f"unknown key (known: {', '.join(sorted(known))})")
    return value


def _imap(error: Error, table: object, base: Path) -> ImapAuth:
    at = ("auth", "imap")
    t = _table(error, at, table, IMAP_KEYS)
    if "server" not in t:
        raise error(at, 'needs server = "imaps://mail.example.com" (or imap://… for STARTTLS)')
    addresses = _texts(error, (*at, "addresses"), t.get("addresses", ["{login}"]))
    for pattern in addresses:
        _pattern(error, (*at, "addresses"), pattern, LOGIN_FIELDS)
    mapping: dict[str, tuple[str, ...]] = {}
    raw_map = t.get("map", {})
    if not isinstance(raw_map, dict):
        raise error((*at, "map"), 'must be a table: login = ["address", …]')
    for login, value in raw_map.items():
        mapping[login.lower()] = _texts(error, (*at, "map", login), value)
    return ImapAuth(
        server=_server(error, (*at, "server"), t["server"], ("imaps", "imap")),
        ca_file=_path(error, (*at, "ca_file"), t["ca_file"], base) if "ca_file" in t else None,
        timeout=_timeout(error, (*at, "timeout"), t.get("timeout", 10)),
        addresses=addresses,
        map=mapping,
        role=_role(error, (*at, "role"), t.get("role", "user")),
    )


def _ldap(error: Error, table: object, base: Path) -> LdapAuth:
    at = ("auth", "ldap")
    t = _table(error, at, table, LDAP_KEYS)
    if "server" not in t:
        raise error(at, 'needs server = "ldaps://ldap.example.com" (or ldap://… for STARTTLS)')
    user_dn = _text(error, (*at, "user_dn"), t["user_dn"]) if "user_dn" in t else None
    search_base = _text(error, (*at, "base"), t["base"]) if "base" in t else None
    if (user_dn is None) == (search_base is None):
        raise error(
            at,
            'needs either user_dn = "uid={login},ou=people,dc=example,dc=com" or base = '
            '"ou=people,dc=example,dc=com" (to search with filter)',
        )
    if user_dn is not None:
        _pattern(error, (*at, "user_dn"), user_dn, ("{login}",))
        if "{login}" not in user_dn:
            raise error((*at, "user_dn"), "must contain {login}")
    search = _text(error, (*at, "filter"), t.get("filter", LdapAuth.filter))
    _pattern(error, (*at, "filter"), search, ("{login}",))
    if search_base is not None and "{login}" not in search:
        raise error((*at, "filter"), "must contain {login}, e.g. (uid={login})")
    bind_dn = _text(error, (*at, "bind_dn"), t["bind_dn"]) if "bind_dn" in t else None
    secret = (
        _path(error, (*at, "bind_password_file"), t["bind_password_file"], base)
        if "bind_password_file" in t
        else None
    )
    if (bind_dn is None) != (secret is None):
        raise error(at, "bind_dn and bind_password_file go together (the service account)")
    group_attribute = t.get("group_attribute", LdapAuth.group_attribute)
    if group_attribute == "":
        group_attribute = None
    elif group_attribute is not None:
        group_attribute = _text(error, (*at, "group_attribute"), group_attribute, limit=100)
    group_filter = _text(error, (*at, "group_filter"), t.get("group_filter", LdapAuth.group_filter))
    _pattern(error, (*at, "group_filter"), group_filter, ("{dn}", "{login}"))
    roles_table = t.get("roles", {})
    if not isinstance(roles_table, dict):
        raise error((*at, "roles"), 'must be a table: admin = ["cn=admins,…"], auditor = …')
    roles: dict[str, tuple[str, ...]] = {}
    for role, groups in roles_table.items():
        _role(error, (*at, "roles", role), role)
        roles[role] = _texts(error, (*at, "roles", role), groups)
    return LdapAuth(
        server=_server(error, (*at, "server"), t["server"], ("ldaps", "ldap")),
        ca_file=_path(error, (*at, "ca_file"), t["ca_file"], base) if "ca_file" in t else None,
        timeout=_timeout(error, (*at, "timeout"), t.get("timeout", 10)),
        user_dn=user_dn,
        base=search_base,
        filter=search,
        bind_dn=bind_dn,
        bind_password_file=secret,
        address_attributes=tuple(
            _text(error, (*at, "address_attributes"), a, limit=100)
            for a in _texts(
                error, (*at, "address_attributes"), t.get("address_attributes", ["mail"])
            )
        )
        if "address_attributes" in t
        else LdapAuth.address_attributes,
        group_attribute=group_attribute,
        group_base=_text(error, (*at, "group_base"), t["group_base"])
        if "group_base" in t
        else None,
        group_filter=group_filter,
        roles=roles,
        default_role=_role(
            error, (*at, "default_role"), t.get("default_role", "user"), extra=(NO_ROLE,)
        ),
    )


def build_auth(methods: object, auth: object, error: Error, base: Path) -> AuthSettings:
    """``methods``: ``[web] auth`` as read (None: not set); ``auth``: the ``[auth]`` table;
    ``base``: the config file's directory, for relative paths."""
    if auth is None:
        auth = {}
    if not isinstance(auth, dict):
        raise error(("auth",), "must be a table with [auth.imap] and/or [auth.ldap]")
    for key in auth:
        if key not in ("imap", "ldap"):
            raise error(("auth", key), "unknown table (known: auth.imap, auth.ldap)")
    if methods is None:
        methods = ["local"]
    where = ("web", "auth")
    if not isinstance(methods, list) or not methods:
        raise error(where, 'must be a non-empty list such as ["local", "imap", "ldap"]')
    for method in methods:
        if method not in METHODS:
            raise error(where, f"unknown method {str(method)[:80]!r} (known: {', '.join(METHODS)})")
    if len(set(methods)) != len(methods):
        raise error(where, "names a method twice: each is tried once, in the order given")
    for method in ("imap", "ldap"):
        if method in methods and method not in auth:
            example = "server = " + (
                '"imaps://mail.example.com"' if method == "imap" else '"ldaps://ldap.example.com"'
            )
            raise error(where, f"{method} needs an [auth.{method}] table with {example}")
    return AuthSettings(
        methods=tuple(methods),
        imap=_imap(error, auth["imap"], base) if "imap" in auth else None,
        ldap=_ldap(error, auth["ldap"], base) if "ldap" in auth else None,
    )
