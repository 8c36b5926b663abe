"""A private Dovecot IMAP server for the mailbox tests (Debian's ``dovecot-imapd``).

Everything lives in one temporary directory: the configuration, a passwd-file of users (and
one master user, as Dovecot's master users are configured for restores), each user's
Maildir, a throw-away CA and the server's certificate (so the tests check TLS for real
instead of turning verification off), the logs. It listens on 127.0.0.1 on two free ports:
plain IMAP (with STARTTLS) and IMAPS. Needs root, as Dovecot drops privileges itself.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from postfix_harness import HarnessError, free_port, is_listening, wait_until
from requirements import require_binary, require_root

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
MAIL_USER = "nobody"  # owns the Maildirs; any unprivileged account would do

CONFIG = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/server.crt
ssl_key = <{d}/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
# any login (Dovecot's default allows only ASCII letters, digits and .-_@): the sign-in
# tests use a non-ASCII one
auth_username_chars =
auth_master_user_separator = *
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_privileged_group =
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # no auth penalty: every test connects from 127.0.0.1, and the sign-in tests' wrong
  # passwords would otherwise slow the next tests' logins by seconds
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/master-users
  master = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""


def openssl(*args: object) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HarnessError(f"openssl {args[0]} failed: {done.stderr}")


@dataclass
class Dovecot:
    directory: Path
    imap_port: int
    imaps_port: int
    users: dict[str, str] = field(default_factory=dict)
    master: tuple[str, str] = ("archiver", "master-secret")
    proc: subprocess.Popen[bytes] | None = None
    _stamp: int = 0

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def maildir(self, user: str) -> Path:
        return self.directory / "home" / user / "Maildir"

    def _write_users(self) -> None:
        # Dovecot rereads a passwd-file when its mtime (in whole seconds) changes. Each
        # version is written aside with an mtime of its own (a second after the last) and
        # renamed into place, so Dovecot never reads half a file and never misses a change
        self._stamp = max(self._stamp + 1, int(time.time()))
        name, secret = self.master
        files = {
            "users": "".join(f"{n}:{{PLAIN}}{p}\n" for n, p in self.users.items()),
            "master-users": f"{name}:{{PLAIN}}{secret}\n",
        }
        for file, text in files.items():
            aside = self.directory / f".{file}.new"
            aside.write_text(text)
            os.utime(aside, (self._stamp, self._stamp))
            aside.replace(self.directory / file)

    def add_user(self, name: str, password: str) -> None:
        """A user (or a new password) that signs in once this returns: Dovecot checks its
        passwd-file for changes at most once a second, so ask its auth service until it
        knows (``doveadm auth test``)."""
        self.users[name] = password
        self._write_users()
        if self.proc is None:
            return
        deadline = time.monotonic() + 15
        while True:
            check = subprocess.run(
                [
                    DOVEADM,
                    "-c",
                    str(self.directory / "dovecot.conf"),
                    "auth",
                    "test",
                    name,
                    password,
                ],
                capture_output=True,
                check=False,
            )
            if check.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"dovecot does not know {name} yet: {check.stdout!r}")
            time.sleep(0.2)

    def start(self) -> None:
        d = self.directory
        account = pwd.getpwnam(MAIL_USER)
        for sub in ("run", "state", "home"):
            (d / sub).mkdir(exist_ok=True)
        os.chown(d / "home", account.pw_uid, account.pw_gid)
        d.chmod(0o755)
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
        self._write_users()
        (d / "dovecot.conf").write_text(
            CONFIG.format(
                d=d,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                uid=account.pw_uid,
                gid=account.pw_gid,
            )
        )
        with open(d / "dovecot.stderr", "wb") as stderr:  # the process keeps its own copy
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(d / "dovecot.conf")],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        if not wait_until(
            lambda: is_listening(self.imaps_port) and is_listening(self.imap_port), timeout=20
        ):
            self.stop()
            logs = [d / "dovecot.stderr", d / "dovecot.log"]
            tail = "".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())
            raise HarnessError(f"dovecot did not start: {tail}")

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


def dovecot_server() -> Iterator[Dovecot]:
    """Body of a fixture: a started server, stopped and removed afterwards."""
    require_root("a private Dovecot drops privileges and needs root")
    require_binary(DOVECOT, "Dovecot (Debian's dovecot-imapd)")
    directory = Path(tempfile.mkdtemp(prefix="pa-dovecot-"))
    server = Dovecot(directory, free_port(), free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
