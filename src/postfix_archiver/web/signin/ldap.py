"""LDAP sign-in (OpenLDAP, Active Directory) with ``ldap3``: bind as the user.

1. The user's DN: from ``user_dn`` with the login put in as an escaped RDN value, or found by
   a search under ``base`` with ``filter`` (the login escaped: ``*)(uid=*`` is a login, never
   a filter), as the service account (``bind_dn`` + ``bind_password_file``) or anonymously.
   No entry, or more than one, is a refusal.
2. A simple bind as that DN with the password: the directory says yes or no. An empty
   password is refused before (RFC 4513 makes it an unauthenticated bind, which succeeds).
3. Addresses from ``address_attributes``: ``proxyAddresses`` values only with their ``smtp:``
   or ``SMTP:`` prefix (the others are X.400, SIP, …), prefix dropped; every value checked.
4. Groups from ``group_attribute`` (``memberOf``) and/or a search under ``group_base``; the
   highest role (admin, auditor, user) one of whose ``roles`` groups the user is in, else
   ``default_role`` (``"none"``: refused).

Over TLS only: ``ldaps://`` or ``ldap://`` with StartTLS, the certificate checked against the
system's CAs or ``ca_file``. Every network or directory failure is ``Unavailable``.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import warnings
from collections.abc import Iterable
from typing import Any, Literal

with warnings.catch_warnings():
    # pyasn1 0.6 deprecates names (tagMap, typeMap) that ldap3 2.9.1, the latest, imports
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn, parse_dn

from ...accounts.checks import check_addresses
from ...auth_config import NO_ROLE, ROLES, LdapAuth
from ...errors import AccountError
from .common import Refused, Unavailable, Verified, tls_context

__all__ = ["StdlibTls", "check_ldap", "escape_rdn", "ldap3"]  # ldap3 for the tests' harness

MAX_VALUES = 1000  # addresses or groups read from one entry: more is not a person


def _normal_dn(dn: str) -> str:
    """A DN compared case-insensitively and without the spaces around its separators."""
    try:
        return ",".join(
            f"{a.strip().lower()}={v.strip().lower()}" for a, v, _ in parse_dn(dn, strip=True)
        )
    except LDAPException:
        return dn.strip().lower()


class StdlibTls(ldap3.Tls):
    """TLS by the standard library's rules: ldap3's own ``Tls`` turns the context's host name
    check off and matches the name itself with ``ssl.match_hostname`` (deprecated, gone in
    Python 3.12), without SNI. This one hands the socket to an ``SSLContext`` that checks
    the certificate chain and the host name, and sends the name."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self.context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self.context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


def _server(settings: LdapAuth) -> ldap3.Server:
    context = tls_context(settings.ca_file, "auth.ldap")
    return ldap3.Server(
        settings.server.host,
        port=settings.server.port,
        use_ssl=settings.server.tls,
        tls=StdlibTls(context),
        get_info=ldap3.NONE,
        connect_timeout=settings.timeout,
    )


def _connect(
    settings: LdapAuth, server: ldap3.Server, dn: str | None, password: str | None
) -> ldap3.Connection:
    """An open connection over TLS, bound as ``dn`` (None: anonymous). Returns it bound;
    a refused bind closes it and raises ``Refused``."""
    conn = ldap3.Connection(
        server,
        user=dn,
        password=password,
        authentication=ldap3.SIMPLE if dn is not None else ldap3.ANONYMOUS,
        # whole seconds: ldap3 packs it into SO_RCVTIMEO as an integer
        receive_timeout=max(1, math.ceil(settings.timeout)),
        read_only=True,
        auto_referrals=False,
        raise_exceptions=False,
    )
    try:
        conn.open()
        if not settings.server.tls and not conn.start_tls():
            raise Unavailable(
                f"{settings.server}: StartTLS refused ({conn.result.get('description')}); a "
                "password never crosses the network in clear"
            )
        if not conn.bind():
            result = conn.result or {}
            if result.get("description") == "invalidCredentials":
                raise Refused("wrong password or unknown user")
            raise Unavailable(
                f"{settings.server}: bind as {dn or 'anonymous'} failed: "
                f"{result.get('description')} {result.get('message', '')}".rstrip()
            )
    except BaseException:
        _close(conn)
        raise
    return conn


def _close(conn: ldap3.Connection) -> None:
    """Unbind, and close the socket in any case: ldap3 leaves one whose connect or TLS
    handshake failed open (and the garbage collector would find it)."""
    with contextlib.suppress(Exception):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def _service_password(settings: LdapAuth) -> str | None:
    if settings.bind_password_file is None:
        return None
    try:
        with open(settings.bind_password_file, encoding="utf-8") as f:
            secret = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise Unavailable(
            f"[auth.ldap] bind_password_file {settings.bind_password_file}: cannot read it ({exc})"
        ) from None
    if not secret:
        raise Unavailable(f"[auth.ldap] bind_password_file {settings.bind_password_file} is empty")
    return secret


def _attributes(settings: LdapAuth) -> list[str]:
    names = list(settings.address_attributes)
    if settings.group_attribute:
        names.append(settings.group_attribute)
    return names


def _values(entry: dict[str, Any], name: str) -> list[str]:
    """The values of attribute ``name`` (any case) as strings; bytes that are not UTF-8 and
    anything past ``MAX_VALUES`` dropped."""
    for key, value in entry.items():
        if key.lower() == name.lower():
            values = value if isinstance(value, list) else [value]
            out = []
            for v in values[:MAX_VALUES]:
                if isinstance(v, bytes):
                    try:
                        v = v.decode("utf-8")
                    except UnicodeDecodeError:
                        continue
                out.append(str(v))
            return out
    return []


def _search_one(
    conn: ldap3.Connection,
    base: str,
    search: str,
    attributes: list[str],
    scope: Literal["BASE", "SUBTREE"],
) -> tuple[str, dict[str, Any]] | None:
    """The one entry found (DN, attributes); None for none; Refused for several."""
    conn.search(base, search, search_scope=scope, attributes=attributes, size_limit=2)
    found = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    if len(found) > 1:
        raise Refused("the login matches more than one directory entry")
    if not found:
        result = conn.result or {}
        if result.get("description") not in ("success", "noSuchObject"):
            raise Unavailable(f"search under {base} failed: {result.get('description')}")
        return None
    return str(found[0]["dn"]), dict(found[0].get("attributes") or {})


def addresses_from(settings: LdapAuth, entry: dict[str, Any]) -> tuple[str, ...]:
    raw: list[str] = []
    for name in settings.address_attributes:
        for value in _values(entry, name):
            if name.lower() == "proxyaddresses":
                kind, sep, address = value.partition(":")
                if not sep or kind.lower() != "smtp":
                    continue  # X400:, SIP:, x500: …: not mail addresses
                value = address
            raw.append(value)
    kept: list[str] = []
    for value in raw:
        try:
            kept.extend(check_addresses([value]))
        except AccountError:
            continue  # one odd value in the directory does not lock the user out
    return check_addresses(kept)


def role_for(settings: LdapAuth, groups: Iterable[str]) -> str:
    member = {_normal_dn(g) for g in groups}
    for role in ROLES:  # highest first
        if any(_normal_dn(g) in member for g in settings.roles.get(role, ())):
            return role
    if settings.default_role == NO_ROLE:
        raise Refused("in none of the groups [auth.ldap] roles names")
    return settings.default_role


def _groups(
    settings: LdapAuth, conn: ldap3.Connection, login: str, dn: str, entry: dict[str, Any]
) -> list[str]:
    groups = _values(entry, settings.group_attribute) if settings.group_attribute else []
    if settings.group_base:
        search = settings.group_filter.replace("{dn}", escape_filter_chars(dn)).replace(
            "{login}", escape_filter_chars(login)
        )
        conn.search(
            settings.group_base, search, attributes=[], size_limit=MAX_VALUES, paged_size=None
        )
        if (conn.result or {}).get("description") not in ("success", "sizeLimitExceeded"):
            raise Unavailable(
                f"group search under {settings.group_base} failed: "
                f"{(conn.result or {}).get('description')}"
            )
        groups += [str(e["dn"]) for e in conn.response or [] if e.get("type") == "searchResEntry"]
    return groups


def check_ldap(settings: LdapAuth, login: str, password: str) -> Verified:
    try:
        return _check(settings, login, password)
    except LDAPException as exc:
        raise Unavailable(f"{settings.server}: {type(exc).__name__}: {exc}") from None


def _check(settings: LdapAuth, login: str, password: str) -> Verified:
    server = _server(settings)
    attributes = _attributes(settings)
    service_dn, service_secret = settings.bind_dn, _service_password(settings)
    if settings.user_dn is not None:
        dn = settings.user_dn.replace("{login}", escape_rdn(login))
        user = _connect(settings, server, dn, password)
        try:
            found = _search_one(user, dn, "(objectClass=*)", attributes, ldap3.BASE)
            entry = found[1] if found else {}
            if service_dn is None:
                return _verified(settings, user, login, dn, entry)
        finally:
            _close(user)
        service = _connect(settings, server, service_dn, service_secret)
        try:
            return _verified(settings, service, login, dn, entry)
        finally:
            _close(service)
    assert settings.base is not None  # config: user_dn or base
    search = settings.filter.replace("{login}", escape_filter_chars(login))
    service = _connect(settings, server, service_dn, service_secret)
    try:
        found = _search_one(service, settings.base, search, attributes, ldap3.SUBTREE)
        if found is None:
            raise Refused("wrong password or unknown user")
        dn, entry = found
        _close(_connect(settings, server, dn, password))  # the password check itself
        return _verified(settings, service, login, dn, entry)
    finally:
        _close(service)


def _verified(
    settings: LdapAuth, conn: ldap3.Connection, login: str, dn: str, entry: dict[str, Any]
) -> Verified:
    role = role_for(settings, _groups(settings, conn, login, dn, entry))
    return Verified(login, role, addresses_from(settings, entry))
