"""A private OpenLDAP server for the sign-in tests (Debian's ``slapd``).

Everything lives in one temporary directory: a generated ``slapd.conf`` (mdb backend, the
memberof overlay so users carry ``memberOf``), a small schema for the mail attributes that
are not in OpenLDAP's core (``mailAlternateAddress`` as in Sun/qmail directories,
``proxyAddresses`` as in Active Directory), a throw-away CA and server certificate (TLS is
checked for real: ldaps:// and StartTLS), the database. It listens on 127.0.0.1 on two free
ports (ldap:// and ldaps://). The entries are added over LDAP as the root DN once it runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dovecot_harness import openssl
from postfix_harness import HarnessError, free_port, is_listening, wait_until
from requirements import require_binary

# ldap3 imported without pyasn1's warnings, TLS checked by the standard library
from postfix_archiver.web.signin.ldap import StdlibTls, escape_rdn, ldap3

SLAPD = "/usr/sbin/slapd"
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
SERVICE_DN = f"cn=archiver,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMINS = f"cn=archive-admins,{GROUPS}"
AUDITORS = f"cn=archive-auditors,{GROUPS}"
STAFF = f"cn=staff,{GROUPS}"

SCHEMA = """\
attributetype ( 2.16.840.1.113730.3.1.13 NAME 'mailAlternateAddress'
  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )
attributetype ( 1.2.840.113556.1.2.210 NAME 'proxyAddresses'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
objectclass ( 1.3.6.1.4.1.99999.1.1 NAME 'archiveTestMailUser' AUXILIARY
  MAY ( mailAlternateAddress $ proxyAddresses ) )
"""

CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {d}/mail.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {d}/slapd.pid
TLSCACertificateFile {d}/ca.crt
TLSCertificateFile {d}/server.crt
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{root}"
rootpw {rootpw}
directory {d}/db
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""


@dataclass(frozen=True)
class Person:
    uid: str
    password: str
    mail: tuple[str, ...] = ()
    alternate: tuple[str, ...] = ()
    proxy: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def dn(self) -> str:
        return f"uid={escape_rdn(self.uid)},{PEOPLE}"


PEOPLE_ENTRIES = (
    Person(
        "alice",
        "alice-Secret-1",
        mail=("alice@example.com",),
        alternate=("alice.smith@example.com",),
        proxy=(
            "SMTP:Alice@Corp.Example.com",
            "smtp:a@corp.example.com",
            "X400:c=US;a= ;p=Example;o=Corp;s=Alice;",
            "sip:alice@voice.example.com",
        ),
        groups=(ADMINS, STAFF),
    ),
    Person("bob", "bob-Secret-1", mail=("bob@example.com",), groups=(STAFF,)),
    Person("carol", "carol-Secret-1", mail=("carol@example.com",), groups=(AUDITORS, STAFF)),
    Person("jörg", "pässwörd-ß-1", mail=("joerg@example.com",)),  # mail is IA5: ASCII
    Person("nogroup", "nogroup-Secret-1", mail=("nogroup@example.com",)),
)


@dataclass
class Slapd:
    directory: Path
    ldap_port: int
    ldaps_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def start(self) -> None:
        d = self.directory
        (d / "db").mkdir()
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", d / "ca.key", "-out", d / "ca.crt", "-days", "2", "-subj", "/CN=Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", d / "server.key", "-out", d / "server.csr", "-subj", "/CN=localhost",
        )  # fmt: skip
        (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl(
            "x509", "-req", "-in", d / "server.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
            "-CAcreateserial", "-out", d / "server.crt", "-days", "2", "-extfile", d / "ext.cnf",
        )  # fmt: skip
        (d / "mail.schema").write_text(SCHEMA)
        (d / "slapd.conf").write_text(
            CONFIG.format(d=d, suffix=SUFFIX, root=ROOT_DN, rootpw=ROOT_PASSWORD)
        )
        urls = f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/"
        with open(d / "slapd.stderr", "wb") as stderr:
            # -d: stay in the foreground (a process of ours to stop), logging to stderr
            self.proc = subprocess.Popen(
                [SLAPD, "-d", "0", "-h", urls, "-f", str(d / "slapd.conf")],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        if not wait_until(
            lambda: is_listening(self.ldap_port) and is_listening(self.ldaps_port), timeout=20
        ):
            self.stop()
            tail = (d / "slapd.stderr").read_text(errors="replace")[-3000:]
            raise HarnessError(f"slapd did not start: {tail}")
        self._populate()

    def connection(self, dn: str = ROOT_DN, password: str = ROOT_PASSWORD) -> ldap3.Connection:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        server = ldap3.Server(
            "127.0.0.1", port=self.ldaps_port, use_ssl=True, tls=StdlibTls(context)
        )
        return ldap3.Connection(server, dn, password, auto_bind=True, raise_exceptions=True)

    def _populate(self) -> None:
        conn = self.connection()
        add: Callable[..., Any] = conn.add  # untyped in types-ldap3
        try:
            add(SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"})
            for ou in ("people", "groups", "services"):
                add(f"ou={ou},{SUFFIX}", ["organizationalUnit"], {"ou": ou})
            add(
                SERVICE_DN,
                ["person"],
                {"cn": "archiver", "sn": "archiver", "userPassword": SERVICE_PASSWORD},
            )
            for p in PEOPLE_ENTRIES:
                attributes: dict[str, object] = {
                    "uid": p.uid,
                    "cn": p.uid,
                    "sn": p.uid,
                    "userPassword": p.password.encode(),
                }
                if p.mail:
                    attributes["mail"] = list(p.mail)
                if p.alternate:
                    attributes["mailAlternateAddress"] = list(p.alternate)
                if p.proxy:
                    attributes["proxyAddresses"] = list(p.proxy)
                classes = ["inetOrgPerson", "archiveTestMailUser"]
                add(p.dn, classes, attributes)
            for group in (ADMINS, AUDITORS, STAFF):
                members = [p.dn for p in PEOPLE_ENTRIES if group in p.groups]
                add(group, ["groupOfNames"], {"member": members})
        finally:
            conn.unbind()

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def slapd_server() -> Iterator[Slapd]:
    """Body of a fixture: a started, populated server, stopped and removed afterwards."""
    require_binary(SLAPD, "OpenLDAP's slapd (Debian's slapd)")
    directory = Path(tempfile.mkdtemp(prefix="pa-slapd-"))
    server = Slapd(directory, free_port(), free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
