"""``[web] auth`` and the ``[auth.imap]`` / ``[auth.ldap]`` tables: defaults, a full example,
and one clear error with the line at fault for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfix_archiver.config import parse_config
from postfix_archiver.errors import ConfigError

HEAD = '[archive]\nhome = "/srv/archive"\n'
IMAP = '[auth.imap]\nserver = "imaps://mail.example.com"\n'
LDAP = '[auth.ldap]\nserver = "ldaps://ldap.example.com"\nuser_dn = "uid={login},dc=x"\n'


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + text, "/etc/archiver.toml")
    return info.value


def test_local_only_by_default() -> None:
    auth = parse_config(HEAD).auth
    assert (auth.methods, auth.imap, auth.ldap) == (("local",), None, None)


def test_a_full_example() -> None:
    config = parse_config(
        HEAD
        + """
[web]
auth = ["ldap", "imap", "local"]
[auth.imap]
server = "imap://mail.example.com:1143"
ca_file = "ca.pem"
timeout = 5
addresses = ["{local}@example.com", "{login}"]
role = "auditor"
[auth.imap.map]
"Jörg" = ["joerg@example.com", "sales@example.com"]
[auth.ldap]
server = "ldaps://dc1.corp.example.com"
base = "dc=corp,dc=example,dc=com"
filter = "(&(objectClass=user)(sAMAccountName={login}))"
bind_dn = "CN=archiver,OU=Services,DC=corp,DC=example,DC=com"
bind_password_file = "/etc/postfix-archiver/ldap.secret"
address_attributes = ["mail", "proxyAddresses"]
[auth.ldap.roles]
admin = ["CN=Archive Admins,OU=Groups,DC=corp,DC=example,DC=com"]
""",
        "/etc/postfix-archiver/config.toml",
    )
    auth = config.auth
    assert auth.methods == ("ldap", "imap", "local")
    assert auth.imap is not None
    assert auth.ldap is not None
    assert (str(auth.imap.server), auth.imap.server.tls) == ("imap://mail.example.com:1143", False)
    assert auth.imap.ca_file == Path("/etc/postfix-archiver/ca.pem")
    assert auth.imap.map == {"jörg": ("joerg@example.com", "sales@example.com")}
    assert (auth.imap.timeout, auth.imap.role) == (5.0, "auditor")
    assert (str(auth.ldap.server), auth.ldap.server.tls) == (
        "ldaps://dc1.corp.example.com:636",
        True,
    )
    assert auth.ldap.user_dn is None
    assert auth.ldap.group_attribute == "memberOf"
    assert auth.ldap.roles == {"admin": ("CN=Archive Admins,OU=Groups,DC=corp,DC=example,DC=com",)}


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        ('[web]\nauth = ["local", "kerberos"]\n', 4, "web.auth", "unknown method 'kerberos'"),
        ("[web]\nauth = []\n", 4, "web.auth", "must be a non-empty list"),
        ('[web]\nauth = "local"\n', 4, "web.auth", "must be a list"),
        ("[web]\nauth = [1]\n", 4, "web.auth", "unknown method '1'"),
        ('[web]\nauth = ["local", "local"]\n', 4, "web.auth", "names a method twice"),
        ('[web]\nauth = ["imap"]\n', 4, "web.auth", "imap needs an [auth.imap] table"),
        ('[web]\nauth = ["ldap"]\n' + IMAP, 4, "web.auth", "ldap needs an [auth.ldap] table"),
        ("[auth]\nkerberos = 1\n", 4, "auth.kerberos", "unknown table"),
        ('[auth.imap]\nserver = "imaps://m"\nport = 1\n', 5, "auth.imap.port", "unknown key"),
        ("[auth.imap]\nrole = 'user'\n", 3, "auth.imap", "needs server ="),
        ('[auth.imap]\nserver = "http://m"\n', 4, "auth.imap.server", "must be imaps://"),
        ('[auth.imap]\nserver = "imaps://u@m"\n', 4, "auth.imap.server", "must be imaps://"),
        ('[auth.imap]\nserver = "imaps://m:99999"\n', 4, "auth.imap.server", "must be imaps://"),
        ('[auth.imap]\nserver = "imaps://m:٣"\n', 4, "auth.imap.server", "must be imaps://"),
        ('[auth.imap]\nserver = "imaps://mäil"\n', 4, "auth.imap.server", "must be imaps://"),
        ('[auth.imap]\nserver = "imaps://m/INBOX"\n', 4, "auth.imap.server", "must be imaps://"),
        ('[auth.imap]\nserver = ""\n', 4, "auth.imap.server", "non-empty string"),
        (IMAP + "timeout = 0\n", 5, "auth.imap.timeout", "from 0.5 to 120"),
        (IMAP + "timeout = 1e20\n", 5, "auth.imap.timeout", "from 0.5 to 120"),
        (IMAP + "timeout = true\n", 5, "auth.imap.timeout", "from 0.5 to 120"),
        (IMAP + 'timeout = "10s"\n', 5, "auth.imap.timeout", "from 0.5 to 120"),
        (IMAP + 'role = "root"\n', 5, "auth.imap.role", "must be one of admin, auditor, user"),
        (IMAP + "addresses = []\n", 5, "auth.imap.addresses", "non-empty list"),
        (IMAP + 'addresses = ["{0.__class__}"]\n', 5, "auth.imap.addresses", "unknown field"),
        (IMAP + 'addresses = ["a\\u0000b"]\n', 5, "auth.imap.addresses", "control characters"),
        (IMAP + 'addresses = ["' + "x" * 2000 + '"]\n', 5, "auth.imap.addresses", "at most 1000"),
        (IMAP + 'map = "x"\n', 5, "auth.imap.map", "must be a table"),
        (IMAP + "[auth.imap.map]\nbob = 3\n", 6, "auth.imap.map.bob", "non-empty list"),
        ('[auth.ldap]\nserver = "ldaps://l"\n', 3, "auth.ldap", "needs either user_dn"),
        (LDAP + 'base = "dc=x"\n', 3, "auth.ldap", "needs either user_dn"),
        (
            '[auth.ldap]\nserver = "ldaps://l"\nuser_dn = "uid=x"\n',
            5,
            "auth.ldap.user_dn",
            "must contain {login}",
        ),
        (
            '[auth.ldap]\nserver = "ldaps://l"\nbase = "dc=x"\nfilter = "(uid=*)"\n',
            6,
            "auth.ldap.filter",
            "must contain {login}",
        ),
        (
            '[auth.ldap]\nserver = "imaps://l"\nbase = "dc=x"\n',
            4,
            "auth.ldap.server",
            "must be ldaps://",
        ),
        (LDAP + 'bind_dn = "cn=a"\n', 3, "auth.ldap", "bind_dn and bind_password_file go together"),
        (LDAP + 'default_role = "root"\n', 6, "auth.ldap.default_role", "must be one of"),
        (LDAP + "[auth.ldap.roles]\nroot = ['cn=x']\n", 7, "auth.ldap.roles.root", "must be one"),
        (LDAP + "[auth.ldap.roles]\nadmin = []\n", 7, "auth.ldap.roles.admin", "non-empty list"),
        (LDAP + 'group_filter = "(member={uid})"\n', 6, "auth.ldap.group_filter", "unknown field"),
    ],
)
def test_mistakes_name_the_line(text: str, line: int, key: str, reason: str) -> None:
    err = error_of(text)
    assert (err.line, err.key) == (line, key), str(err)
    assert reason in err.reason, str(err)
