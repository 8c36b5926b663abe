"""What a production install needs, as a plan to print or to apply (``postfix-archiver
install``): the system user, the directories with their owners and modes, a config file with
the defaults commented, the systemd units with the paths of this executable filled in.

Applying is idempotent: the user and directories are made if missing (owners and modes put
right if not), an existing config file is never overwritten, and a unit is rewritten only
when it differs (an upgrade that changed it). ``root`` stages everything under another
directory (packaging, tests); the user is always the system's, since files are owned by it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ArchiverError

CONFIG_DIR = Path("/etc/postfix-archiver")
UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "archiver"
DEFAULT_HOME = Path("/var/lib/postfix-archiver")
DEFAULT_EXE = "/usr/local/bin/postfix-archiver"
UNITS = ("postfix-archiver.service", "postfix-archiver-web.service")

# Hardening both services share. Left out on purpose: MemoryDenyWriteExecute (libffi
# closures in Python extensions need writable executable memory) and ProcSubset=pid (the
# memory accounting reads /proc/meminfo). The ports are above 1024: no capability at all.
_HARDENING = """\
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={home}
ProtectHome={protect_home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
UMask=0027
# the log goes to the journal and, by rsyslog's mail.* rule, beside Postfix's own lines
SyslogFacility=mail
"""

_PROXY = """\
# postfix-archiver: the after-queue SMTP proxy (Postfix's content_filter).
# Made by `postfix-archiver install`; local changes go into a drop-in
# (systemctl edit postfix-archiver), which an upgrade leaves alone.
[Unit]
Description=postfix-archiver SMTP proxy (archive, then reinject into Postfix)
Documentation=https://github.com/postfix-archiver/postfix-archiver#operating
After=network.target
Before=postfix.service

[Service]
Type=notify
NotifyAccess=main
User={user}
Group={user}
Environment=POSTFIX_ARCHIVER_CONFIG={config}
ExecStart={exe} serve
SyslogIdentifier=postfix-archiver
# SIGHUP re-reads the rules; a broken file keeps the rules in force (one log line says why)
ExecReload=/bin/kill -HUP $MAINPID
# transactions in flight get 60 s to finish after SIGTERM
TimeoutStopSec=90
Restart=on-failure
RestartSec=2s
LimitNOFILE=65536
{hardening}
[Install]
WantedBy=multi-user.target
"""

_WEB = """\
# postfix-archiver: the web UI and the REST API.
# Made by `postfix-archiver install`; local changes go into a drop-in
# (systemctl edit postfix-archiver-web), which an upgrade leaves alone.
[Unit]
Description=postfix-archiver web UI and REST API
Documentation=https://github.com/postfix-archiver/postfix-archiver#operating
After=network.target postfix-archiver.service

[Service]
Type=notify
NotifyAccess=main
User={user}
Group={user}
Environment=POSTFIX_ARCHIVER_CONFIG={config}
ExecStart={exe} web
SyslogIdentifier=postfix-archiver-web
TimeoutStopSec=30
Restart=on-failure
RestartSec=2s
{hardening}
[Install]
WantedBy=multi-user.target
"""

CONFIG_TEMPLATE = """\
# postfix-archiver configuration (made by `postfix-archiver install`).
# Every value below is the default unless uncommented; README "Configuration" explains them.

[archive]
home = "{home}"
# catalog = "sqlite://{home}/catalog.sqlite"
# store = "file://{home}/blobs"
# default = "archive"             # or "skip": what happens when no rule matches
# local_domains = ["example.com"]
# retention = "forever"
# encryption = "none"             # or "aes-256-gcm" (postfix-archiver keys init)

[smtp]
# listen = "127.0.0.1:10025"
# reinject = "127.0.0.1:10026"
# max_message_size = 52428800     # keep >= Postfix's message_size_limit
# answer_timeout = "30s"

[web]
# listen = "127.0.0.1:8025"
# secure_cookies = false          # true behind TLS
# timezone = "UTC"

[log]
# format = "text"                 # or "json": one object a line

# [[rules]]                       # see README "Selective archiving rules"
"""


def default_exe() -> str:
    """This installation's ``postfix-archiver`` (a venv's, else the one on PATH)."""
    beside = Path(sys.executable).with_name("postfix-archiver")
    if beside.exists():
        return str(beside.absolute())
    return shutil.which("postfix-archiver") or DEFAULT_EXE


def render_unit(name: str, *, user: str, home: Path, config: Path, exe: str) -> str:
    template = _PROXY if name == UNITS[0] else _WEB
    # an executable (a venv) or data under /home stays reachable, read-only or read-write
    under_home = any(str(p).startswith(("/home/", "/root/")) for p in (home, exe))
    hardening = _HARDENING.format(home=home, protect_home="read-only" if under_home else "yes")
    return template.format(user=user, config=config, exe=exe, hardening=hardening)


_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
# what may stand in a unit file unquoted: no spaces (ReadWritePaths= splits on them), no
# specifiers (%) or variables ($), no control characters
_UNIT_PATH = re.compile(r"/[A-Za-z0-9._+/-]{0,4095}\Z")


def check(user: str, home: str, exe: str) -> None:
    """One clear line for a value the plan cannot use as it is."""
    if not _USER.match(user):
        raise ArchiverError(
            f"--user {user[:40]!r}: give a system user name (lower case letters, digits, _ "
            "and -, at most 32, not starting with a digit or -)"
        )
    for option, value in (("--home", home), ("executable", exe)):
        if not _UNIT_PATH.match(value) or "/../" in f"{value}/" or "/./" in f"{value}/":
            raise ArchiverError(
                f"{option} {value[:80]!r}: give an absolute path of letters, digits and "
                "._+/- only (it goes into the systemd units)"
            )


@dataclass(frozen=True)
class Install:
    user: str = DEFAULT_USER
    home: Path = DEFAULT_HOME
    exe: str = DEFAULT_EXE
    root: Path = Path("/")

    @property
    def config_path(self) -> Path:
        return CONFIG_DIR / "archiver.toml"

    def staged(self, path: Path) -> Path:
        """``path`` under ``root``."""
        return self.root / path.relative_to("/")

    def units(self) -> dict[str, str]:
        return {
            name: render_unit(
                name, user=self.user, home=self.home, config=self.config_path, exe=self.exe
            )
            for name in UNITS
        }

    def directories(self) -> list[tuple[Path, str, int]]:
        """(path, owning user, mode): the archive home only the service user reads; the
        config directory root's, readable by the group (secrets such as keys live there)."""
        return [(self.home, self.user, 0o750), (CONFIG_DIR, "root", 0o750)]

    def plan(self) -> str:
        """The dry run: what ``apply`` does, as the commands an administrator would type."""
        cfg = self.config_path
        lines = [
            "# the system user",
            f"useradd --system --user-group --home-dir {self.home} --no-create-home "
            f"--shell /usr/sbin/nologin {self.user}",
            "# directories",
        ]
        for path, owner, mode in self.directories():
            lines.append(f"install -d -o {owner} -g {self.user} -m {mode:o} {path}")
        lines += [
            f"# the config file, defaults commented (kept if it exists), root:{self.user} 640",
            f"{cfg}:",
            *("    " + line for line in self._config_text().splitlines()),
        ]
        for name, text in self.units().items():
            lines.append(f"# {UNIT_DIR / name}, root:root 644")
            lines += ["    " + line for line in text.splitlines()]
        lines += ["", *self.next_steps()]
        return "\n".join(lines)

    def next_steps(self, postfix: bool = True) -> list[str]:
        """What is left to run; ``postfix``: Postfix's side too (not done by ``--apply``)."""
        cfg = self.config_path
        return [
            "Then:",
            "  systemctl daemon-reload",
            "  systemctl enable --now postfix-archiver postfix-archiver-web",
            *(
                [
                    f"  postfix-archiver postfix-config --config {cfg} --apply",
                    f"  postfix-archiver doctor --config {cfg}",
                ]
                if postfix
                else [f"  postfix-archiver doctor --config {cfg}   (once the archiver runs)"]
            ),
            f"  sudo -u {self.user} postfix-archiver user add --config {cfg} ... (the first admin)",
        ]

    def _config_text(self) -> str:
        return CONFIG_TEMPLATE.format(home=self.home)

    # -- applying ----------------------------------------------------------------------

    def apply(self) -> list[str]:
        """Perform the plan; what was done, one line each ("kept ..." for what was there)."""
        if os.geteuid() != 0:
            raise ArchiverError("install --apply needs root (run it with sudo)")
        try:
            return self._apply()
        except OSError as exc:
            raise ArchiverError(
                f"cannot install into {exc.filename or self.root}: {exc.strerror or exc} "
                "(is --root writable, with room?)"
            ) from None

    def _apply(self) -> list[str]:
        # before anything is made: a --root that cannot take the files leaves no user behind
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise ArchiverError(f"--root {self.root}: not a writable directory")
        done = [self._ensure_user()]
        entry = pwd.getpwnam(self.user)
        for path, owner, mode in self.directories():
            uid = 0 if owner == "root" else entry.pw_uid
            done.append(_ensure_dir(self.staged(path), uid, entry.pw_gid, mode))
        config = self.staged(self.config_path)
        if config.exists():
            done.append(f"kept {config} (an existing config file is never overwritten)")
        else:
            _write(config, self._config_text(), 0, entry.pw_gid, 0o640)
            done.append(f"wrote {config}")
        for name, text in self.units().items():
            unit = self.staged(UNIT_DIR / name)
            if unit.exists() and unit.read_text() == text:
                done.append(f"kept {unit} (unchanged)")
                continue
            unit.parent.mkdir(parents=True, exist_ok=True)
            _write(unit, text, 0, 0, 0o644)
            done.append(f"wrote {unit}")
        return done

    def _ensure_user(self) -> str:
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            pass
        else:
            return f"kept user {self.user}"
        command = [
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            str(self.home),
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            self.user,
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise ArchiverError(
                "useradd not found: create the user yourself, then run again"
            ) from None
        except subprocess.CalledProcessError as exc:
            reason = (exc.stderr or "").strip().splitlines()
            raise ArchiverError(
                f"useradd {self.user} failed: {reason[-1] if reason else exc.returncode}"
            ) from None
        return f"created user {self.user}"


def _ensure_dir(path: Path, uid: int, gid: int, mode: int) -> str:
    made = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    st = path.stat()
    fixed = (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode)
    if fixed:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    what = "made" if made else "fixed owner/mode of" if fixed else "kept"
    return f"{what} {path} ({mode:o})"


def _write(path: Path, text: str, uid: int, gid: int, mode: int) -> None:
    """Written whole or not at all (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
