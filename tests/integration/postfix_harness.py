"""A real, throw-away Postfix for integration tests, and Postfix's smtp-sink as the far end.

    test ──smtplib──▶ PostfixInstance (smtpd on 127.0.0.1:P) ──relayhost──▶ SmtpSink (127.0.0.1:S)

`PostfixInstance` runs Debian's Postfix binaries against a private config_directory,
queue_directory and data_directory in a temporary directory, so it never touches the system
instance in /etc/postfix and /var/spool/postfix (which may or may not be configured or
running). It accepts mail from 127.0.0.1 for any domain and relays everything to one SMTP
destination, normally an `SmtpSink`. Nothing needs DNS, syslog or systemd.

`SmtpSink` runs `/usr/sbin/smtp-sink -d`, which writes one file per mail transaction with the
envelope in front of the message; `deliveries()` parses those files back.

Both need root: Postfix's master starts as root and its daemons switch to the `postfix` user.
Plain Python with no pytest dependency; fixtures live in conftest.py, the skip-or-fail checks in
`requirements.py`. Set `POSTFIX_HARNESS_KEEP=1` to keep instance directories (config, queue,
maillog) for post-mortems.

Typical use::

    with SmtpSink() as sink, PostfixInstance(sink) as mta:
        queue_id = mta.send(raw, "alice@example.org", ["bob@example.com"])
        [delivery] = sink.wait_for_deliveries(1)
        mta.wait_queue_empty()
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Self

POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
SMTP_SINK = "/usr/sbin/smtp-sink"

LOCALHOST = "127.0.0.1"
KEEP_ENV = "POSTFIX_HARNESS_KEEP"
DEFAULT_TIMEOUT = 10.0

# The environment for Postfix commands: a predictable PATH and locale. MAIL_CONFIG is dropped
# because it would override `-c`.
_TOOL_ENV = {
    **{k: v for k, v in os.environ.items() if k not in {"MAIL_CONFIG", "MAIL_DEBUG"}},
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C",
    "LC_ALL": "C",
}


class HarnessError(RuntimeError):
    """Postfix or smtp-sink could not be set up, started, driven or stopped.

    The message carries what the tool printed and the tail of the relevant log.
    """


# --------------------------------------------------------------------------------------------
# small process and socket helpers


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and was not handed out before in this process.

    The kernel may hand the same ephemeral port to two consecutive bind(0) calls once the first
    socket is closed; remembering the ports keeps a sink and an instance from colliding.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOCALHOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port
    raise HarnessError("could not find a free TCP port on 127.0.0.1")


def listeners(port: int, host: str = LOCALHOST) -> int:
    """How many TCP sockets are in LISTEN state on host:port (or the IPv4 wildcard).

    Reads /proc/net/tcp instead of connecting, so that probing does not show up in Postfix's
    log as a client that connected and went away. More than one means a port clash: Postfix's
    master sets SO_REUSEPORT, so a second instance (or any root process doing the same) binds
    the same port without an error and the kernel splits the connections between them.
    """
    wanted = {f"{_proc_net_addr(host)}:{port:04X}", f"00000000:{port:04X}"}
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return int(_can_connect(host, port))
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] in wanted and fields[3] == "0A":  # 0A = TCP_LISTEN
            count += 1
    return count


def is_listening(port: int, host: str = LOCALHOST) -> bool:
    """Whether some process listens on host:port (IPv4); see `listeners`."""
    return listeners(port, host) > 0


def _proc_net_addr(host: str) -> str:
    # /proc/net/tcp prints the IPv4 address as the in-memory 32-bit word, i.e. little endian.
    return socket.inet_aton(host)[::-1].hex().upper()


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.05,
) -> bool:
    """Poll `predicate` until it is true (returns True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a live process, or None if it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain anything; parse after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    state, pgrp = fields[0], int(fields[2])
    if state in {"Z", "X"}:
        return None
    return state, pgrp


def _pid_alive(pid: int) -> bool:
    return _proc_stat(pid) is not None


def _process_group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _proc_stat(int(entry.name))
            if info is not None and info[1] == pgid:
                members.append(int(entry.name))
    return members


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _run(argv: Sequence[str], what: str, *, log: Path | None = None) -> str:
    """Run a Postfix command; return stdout, raise HarnessError with its output on failure."""
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, env=_TOOL_ENV, check=False, timeout=60
    )
    if proc.returncode != 0:
        message = (
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
            f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
        )
        if log is not None:
            message += f"\n--- last lines of {log} ---\n{_tail(log)}"
        raise HarnessError(message)
    return proc.stdout


def _keep_requested() -> bool:
    return os.environ.get(KEEP_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# Anything still running when the interpreter exits (a test run aborted with ^C, a crashed
# fixture, a test that forgot cleanup()) is stopped here, so repeated runs do not pile up
# masters and sinks. Strong references on purpose: an object garbage-collected while running
# would leave a daemonized master behind with nobody to stop it.
_live: set[SmtpSink | PostfixInstance] = set()


@atexit.register
def _stop_everything() -> None:
    for thing in list(_live):
        with contextlib.suppress(Exception):
            thing.stop()


# --------------------------------------------------------------------------------------------
# smtp-sink


@dataclass(frozen=True)
class Delivery:
    """One SMTP transaction received by the sink.

    `content` is the message as received (headers and body, dot-unstuffed, Postfix's own
    Received: header on top) with LF line ends: smtp-sink drops every CR it reads, so the
    original CRLFs, and any bare CR, cannot be recovered. Compare against
    `raw.replace(b"\\r\\n", b"\\n")`.
    """

    sender: str  # the MAIL FROM address without <>; "" for the null sender
    recipients: list[str]  # RCPT TO addresses without <>, in the order sent
    content: bytes
    helo: str | None = None
    mail_args: str = ""  # the full MAIL FROM argument, with ESMTP parameters
    rcpt_args: list[str] = field(default_factory=list)  # full RCPT TO arguments
    path: Path | None = None  # the dump file

    def message(self) -> EmailMessage:
        """`content` parsed with the modern email policy."""
        parsed = BytesParser(policy=policy.default).parsebytes(self.content)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _smtp_path(args: str) -> str:
    """The address in an SMTP path argument like `<a@b> SIZE=1`; honours quoted local parts."""
    args = args.strip()
    if not args.startswith("<"):
        return args.split(" ", 1)[0]
    quoted = False
    for index, char in enumerate(args[1:], start=1):
        if char == '"':
            quoted = not quoted
        elif char == "\\" and quoted:
            continue
        elif char == ">" and not quoted:
            return args[1:index]
    return args[1:]


def parse_sink_dump(data: bytes, path: Path | None = None) -> Delivery:
    """Parse one `smtp-sink -d` dump file.

    Layout: X-Client-Addr, X-Client-Proto, optional X-Helo-Args, X-Mail-Args, one X-Rcpt-Args per
    recipient, a three-line `Received: ... (smtp-sink) ...` header, the message, and one extra
    newline that smtp-sink writes for the final CRLF before the dot.
    """
    helo: str | None = None
    mail_args = ""
    rcpt_args: list[str] = []
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            raise HarnessError(f"truncated smtp-sink dump {path}: no end of preamble")
        line = data[position:end].decode("utf-8", "surrogateescape")
        position = end + 1
        name, _, value = line.partition(": ")
        if name == "X-Helo-Args":
            helo = value
        elif name == "X-Mail-Args":
            mail_args = value
        elif name == "X-Rcpt-Args":
            rcpt_args.append(value)
        elif name == "Received":
            # Two continuation lines: "\tby HOST (smtp-sink) with PROTO id ID;" and "\tDATE".
            for _ in range(2):
                end = data.find(b"\n", position)
                if end < 0 or data[position : position + 1] != b"\t":
                    raise HarnessError(f"malformed smtp-sink Received header in {path}")
                position = end + 1
            break
        elif name not in {"X-Client-Addr", "X-Client-Proto"}:
            raise HarnessError(f"unexpected smtp-sink preamble line in {path}: {line!r}")
    content = data[position:]
    if content.endswith(b"\n"):
        content = content[:-1]
    return Delivery(
        sender=_smtp_path(mail_args),
        recipients=[_smtp_path(arg) for arg in rcpt_args],
        content=content,
        helo=helo,
        mail_args=mail_args,
        rcpt_args=rcpt_args,
        path=path,
    )


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:`port`, capturing each message to its own file.

    The port stays the same across stop()/start(), so a Postfix instance relaying to it sees the
    destination go down and come back. `extra_args` go to smtp-sink as they are, e.g.
    `["-r", "rcpt"]` to answer RCPT with 4xx, `["-f", "data"]` for 5xx (see smtp-sink(1)).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        hostname: str = "sink.test.invalid",
        extra_args: Sequence[str] = (),
    ) -> None:
        self._owns_directory = directory is None
        self.directory = Path(
            tempfile.mkdtemp(prefix="smtp-sink-") if directory is None else directory
        )
        self.mail_dir = self.directory / "mail"
        self.log_path = self.directory / "smtp-sink.log"
        self.port = port if port is not None else free_port()
        self.hostname = hostname
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def relayhost(self) -> str:
        """The sink as a Postfix relayhost / nexthop value (no MX lookup)."""
        return f"[{LOCALHOST}]:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Start listening; returns once the port accepts connections."""
        if self.running:
            return
        if is_listening(self.port):
            raise HarnessError(
                f"cannot start smtp-sink: {LOCALHOST}:{self.port} is already in use by another "
                "process"
            )
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        argv = [SMTP_SINK, "-4", "-h", self.hostname]
        if os.geteuid() == 0:
            # smtp-sink refuses to run as root without -u. Staying root keeps the dump files
            # readable and removable by the test process; the sink only listens on loopback.
            argv += ["-u", "root"]
        # `-d TEMPLATE`: one file per transaction, named by strftime(TEMPLATE) plus a random
        # hex suffix. (-D would append every message to one shared file.)
        argv += [
            *self.extra_args,
            "-d",
            f"{self.mail_dir}/%Y%m%d%H%M%S.",
            f"{LOCALHOST}:{self.port}",
        ]
        argv.append("64")  # listen backlog
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _live.add(self)
        process = self._process
        wait_until(lambda: process.poll() is not None or is_listening(self.port), timeout)
        if process.poll() is not None or not is_listening(self.port):
            self.stop()
            raise HarnessError(
                f"smtp-sink did not start listening on {LOCALHOST}:{self.port}: "
                f"{' '.join(argv)}\n--- {self.log_path} ---\n{_tail(self.log_path)}"
            )

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop the sink and wait for it to exit. Captured messages stay readable."""
        process, self._process = self._process, None
        _live.discard(self)
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def cleanup(self) -> None:
        """Stop, and remove the directory if the sink created it."""
        self.stop()
        if self._owns_directory and not _keep_requested():
            shutil.rmtree(self.directory, ignore_errors=True)

    def clear(self) -> None:
        """Forget everything captured so far (completed messages only)."""
        for path in self._completed_files():
            path.unlink(missing_ok=True)

    def _open_files(self) -> set[str]:
        """Paths smtp-sink holds open: transactions still in progress."""
        pid = self.pid
        if pid is None:
            return set()
        fd_dir = Path(f"/proc/{pid}/fd")
        opened = set()
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    opened.add(os.readlink(fd))
        return opened

    def _completed_files(self) -> list[Path]:
        # smtp-sink creates the file at MAIL FROM under its final name and closes it at the end
        # of DATA, before it answers 250. So: list first, then drop what is still open; a file
        # that closes in between is complete by the time it is read.
        if not self.mail_dir.is_dir():
            return []
        entries = [p for p in self.mail_dir.iterdir() if p.is_file()]
        in_progress = self._open_files()
        done = [p for p in entries if str(p) not in in_progress]
        return sorted(done, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def deliveries(self) -> list[Delivery]:
        """Every completed transaction so far, oldest first."""
        return [parse_sink_dump(path.read_bytes(), path) for path in self._completed_files()]

    def messages(self) -> list[bytes]:
        """The content of every completed transaction so far (see `Delivery.content`)."""
        return [delivery.content for delivery in self.deliveries()]

    def wait_for_deliveries(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Delivery]:
        """Wait until at least `count` transactions completed; return all of them."""
        found: list[Delivery] = []

        def enough() -> bool:
            nonlocal found
            found = self.deliveries()
            return len(found) >= count

        if not wait_until(enough, timeout):
            raise TimeoutError(
                f"smtp-sink on port {self.port} received {len(found)} message(s) within "
                f"{timeout}s, expected {count}: " + repr([(d.sender, d.recipients) for d in found])
            )
        return found

    def wait_for(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[bytes]:
        """Wait until at least `count` messages arrived; return all their contents."""
        return [d.content for d in self.wait_for_deliveries(count, timeout)]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SmtpSink {LOCALHOST}:{self.port} {state} {self.directory}>"


# --------------------------------------------------------------------------------------------
# Postfix


# master.cf of the instance. Every service has chroot=n: a chroot would need copies of
# /etc/hosts, /etc/services, resolver and NSS libraries inside each temporary queue directory
# (Debian's init script copies them for the system instance; there is no init script here).
# Written out explicitly although "-" also means n since Postfix 3.0, so entries that tests
# add later with "-" (e.g. from postfix-archiver postfix-config) behave the same.
# The postlog service is what makes `maillog_file` work: daemons send their log records to
# postlogd over public/postlog, and postlogd (unprivileged=n, so root) appends to the file;
# `postfix check` refuses to start without it when maillog_file is set.
# No local/virtual/lmtp/pipe delivery and no tlsmgr: all mail leaves by SMTP to the relayhost.
# Tests add what they need (a content filter, a pipe service) with postconf_master().
_MASTER_CF = """\
# Generated by tests/integration/postfix_harness.py for a throw-away test instance.
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _system_meta_directory() -> str:
    try:
        return _run([POSTCONF, "-d", "-h", "meta_directory"], "postconf").strip() or "/etc/postfix"
    except (HarnessError, OSError):
        return "/etc/postfix"


class PostfixInstance:
    """A private Postfix instance that relays all mail it accepts to one SMTP destination.

    `relay` is an `SmtpSink`, a port on 127.0.0.1, or a literal relayhost value such as
    `"[127.0.0.1]:2525"`. `main_cf` adds or overrides main.cf settings before the first start.
    The instance lives in its own temporary directory (below `base_dir`, default the system temp
    directory); `config_dir` is what `postconf -c`, `postfix -c` and
    `postfix-archiver postfix-config --config-dir` take.

    `retry_delay` (seconds) sets queue_run_delay and minimal_backoff_time, and twice that for
    maximal_backoff_time, so deferred mail is retried within seconds.

    No alternate_config_directories or multi_instance_directories entry in /etc/postfix/main.cf
    is needed, and none is made: Postfix checks that list only when an unprivileged user names a
    non-default directory to a set-gid program (postdrop, postqueue). Everything here runs as
    root; `sendmail -C DIR` as a non-root user would need it.
    """

    def __init__(
        self,
        relay: SmtpSink | int | str,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        hostname: str = "mta.test.invalid",
        smtpd_port: int | None = None,
        retry_delay: int = 1,
        main_cf: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(relay, SmtpSink):
            self.relayhost = relay.relayhost
        elif isinstance(relay, int):
            self.relayhost = f"[{LOCALHOST}]:{relay}"
        else:
            self.relayhost = relay
        self.hostname = hostname
        self.smtpd_port = smtpd_port if smtpd_port is not None else free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="postfix-test-", dir=base_dir))
        self.queue_dir = self.base_dir / "queue"
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "maillog"
        self._config_dir = self.base_dir / "etc"
        self._removed = False
        try:
            self._write_config(retry_delay, dict(main_cf or {}))
        except BaseException:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            raise

    # ---- layout and configuration

    @property
    def config_dir(self) -> Path:
        """The instance's config_directory (main.cf, master.cf)."""
        return self._config_dir

    @property
    def smtpd_address(self) -> tuple[str, int]:
        return (LOCALHOST, self.smtpd_port)

    def _check_reachable_by_postfix(self) -> None:
        # The daemons run as the postfix user and chdir into queue_directory; a 0700 parent
        # (mkdtemp's default, pytest's tmp_path) makes every one of them die at startup.
        for directory in [self.base_dir, *self.base_dir.parents]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise HarnessError(
                    f"{directory} (mode {stat.filemode(mode)}) is not searchable by other users, "
                    f"so Postfix daemons (user postfix) cannot reach {self.queue_dir}. Put the "
                    "instance under a world-searchable directory, e.g. the default /tmp."
                )

    def _write_config(self, retry_delay: int, overrides: dict[str, str]) -> None:
        self.base_dir.chmod(0o755)
        self._check_reachable_by_postfix()
        self._config_dir.mkdir(mode=0o755)
        # postfix check creates the queue tree below queue_directory but not the directory.
        self.queue_dir.mkdir(mode=0o755)
        domain = self.hostname.split(".", 1)[1] if "." in self.hostname else "test.invalid"
        settings: dict[str, str] = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            # postfix-files (read by `postfix check` to create the queue tree) and
            # dynamicmaps.cf are the package's; read-only use.
            "meta_directory": _system_meta_directory(),
            "myhostname": self.hostname,
            "mydomain": domain,
            "myorigin": "$myhostname",
            # No local domains: every recipient, in any domain, goes to the relayhost.
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:5.1.1 local delivery is disabled in this test instance",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": "",
            "relayhost": self.relayhost,
            # Only 127.0.0.1 may relay, and it may relay anywhere.
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            # No DNS anywhere: the relayhost is a bracketed IP literal; clients are looked up
            # via /etc/hosts (native).
            "smtp_host_lookup": "native",
            "smtp_dns_support_level": "disabled",
            "lmtp_host_lookup": "native",
            "smtp_connect_timeout": "5s",
            # Test-speed queue timers.
            "queue_run_delay": f"{retry_delay}s",
            "minimal_backoff_time": f"{retry_delay}s",
            "maximal_backoff_time": f"{2 * retry_delay}s",
            "in_flow_delay": "0s",
            "smtpd_error_sleep_time": "0s",
            "delay_warning_time": "0h",
            # No syslog daemon in containers: log to a file through postlogd.
            "maillog_file": str(self.log_path),
            "maillog_file_prefixes": str(self.base_dir),
            "biff": "no",
        }
        settings.update(overrides)
        main_cf = "".join(f"{name} = {value}\n" for name, value in settings.items())
        (self._config_dir / "main.cf").write_text(
            "# Generated by tests/integration/postfix_harness.py for a throw-away test instance.\n"
            + main_cf
        )
        (self._config_dir / "master.cf").write_text(
            _MASTER_CF.format(listen=f"{LOCALHOST}:{self.smtpd_port}")
        )
        self.settle_config()

    def settle_config(self) -> None:
        """Backdate main.cf and master.cf so Postfix reads them without pausing.

        Postfix treats a configuration file modified within the last second or so as "hot"
        (possibly half-written) and re-reads it every 0.3s until it has cooled down, which
        makes every command after an edit take ~1.5s. The harness calls this after its own
        edits and before start() and reload(); call it after editing the files another way.
        """
        past = time.time() - 60
        for name in ("main.cf", "master.cf"):
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.config_dir / name, (past, past))

    def postconf(self, *settings: str) -> None:
        """Set main.cf parameters: postconf("name=value", ...). Call reload() if running."""
        for setting in settings:
            if "=" not in setting:
                raise ValueError(f"postconf setting must be name=value, got {setting!r}")
        self._postconf("-e", *settings)

    def postconf_delete(self, *names: str) -> None:
        """Remove main.cf parameters (back to the built-in default)."""
        self._postconf("-X", *names)

    def postconf_get(self, name: str) -> str:
        """The effective value of one main.cf parameter."""
        return self._postconf("-h", name).rstrip("\n")

    def postconf_master(self, *entries: str) -> None:
        """Add or replace master.cf services: postconf_master("name/type=name type ... cmd")."""
        self._postconf("-M", "-e", *entries)

    def postconf_master_param(self, *settings: str) -> None:
        """Set a service's -o parameter: postconf_master_param("name/type/param=value")."""
        self._postconf("-P", "-e", *settings)

    def postconf_master_delete(self, *services: str) -> None:
        """Remove master.cf services given as "name/type"."""
        self._postconf("-M", "-X", *services)

    def master_cf(self) -> str:
        """The effective master.cf entries, one per line (postconf -M)."""
        return self._postconf("-M")

    def _postconf(self, *args: str) -> str:
        output = _run([POSTCONF, "-c", str(self.config_dir), *args], "postconf", log=self.log_path)
        self.settle_config()
        return output

    def postfix(self, *args: str) -> str:
        """Run `postfix -c CONFIG_DIR ARGS...`; raise HarnessError with the log tail on failure."""
        return _run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            f"postfix {' '.join(args)}",
            log=self.log_path,
        )

    # ---- lifecycle

    def _recorded_master_pid(self) -> int | None:
        try:
            return int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def master_pid(self) -> int | None:
        """PID of this instance's running master process, if any."""
        pid = self._recorded_master_pid()
        if pid is None or not _pid_alive(pid):
            return None
        # Guard against a stale pid file whose PID now belongs to someone else: master runs
        # with its working directory in queue_directory.
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None
        return pid if Path(cwd) == self.queue_dir.resolve() else None

    @property
    def running(self) -> bool:
        return self.master_pid is not None

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Check the configuration, start master, and wait until smtpd listens."""
        if self._removed:
            raise HarnessError(f"{self.base_dir} was removed; create a new PostfixInstance")
        if self.running:
            return
        self.settle_config()
        if is_listening(self.smtpd_port):
            raise HarnessError(
                f"cannot start Postfix in {self.config_dir}: {LOCALHOST}:{self.smtpd_port} is "
                "already in use by another process"
            )
        # `postfix check` also creates the queue subdirectories and data_directory with the
        # owners and modes listed in $meta_directory/postfix-files (post-install
        # create-missing), so `postfix set-permissions`, which would also chown the package's
        # own files, is not needed.
        self.postfix("check")
        _live.add(self)
        try:
            self.postfix("start")
        except HarnessError:
            self.stop()
            raise
        if not wait_until(lambda: self.running and is_listening(self.smtpd_port), timeout):
            running = self.running
            self.stop()
            raise HarnessError(
                f"Postfix in {self.config_dir} "
                + ("is running but smtpd is not listening" if running else "did not stay up")
                + f" on {LOCALHOST}:{self.smtpd_port} after {timeout}s\n"
                f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
            )
        if listeners(self.smtpd_port) > 1:
            self.stop()
            raise HarnessError(
                f"{LOCALHOST}:{self.smtpd_port} was taken by another process while Postfix in "
                f"{self.config_dir} started (both bound it with SO_REUSEPORT); start again"
            )

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop master and every process it started; returns when they are all gone.

        This is what `postfix stop` does (SIGTERM to master, which passes it on to its
        process group), without the script's one-second polling, and it then makes sure: any
        daemon still alive after `timeout` is killed.
        """
        _live.discard(self)
        # master calls setsid() at startup, so its process group (same id as its PID) holds
        # it and every daemon it spawned. Sweeping the group also catches daemons that outlive
        # a master that was killed some other way.
        pid = self._recorded_master_pid()
        if pid is None:
            return
        if self.master_pid == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        elif _pid_alive(pid):
            # The recorded PID is alive but is not our master: PID reuse. Leave it alone.
            (self.queue_dir / "pid" / "master.pid").unlink(missing_ok=True)
            return
        if not wait_until(lambda: not _process_group_members(pid), timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            if not wait_until(lambda: not _process_group_members(pid), timeout):
                raise HarnessError(
                    f"Postfix processes {_process_group_members(pid)} of {self.config_dir} "
                    "survived SIGKILL"
                )
        # A later start() writes a new one; a stale one could name someone else's process.
        (self.queue_dir / "pid" / "master.pid").unlink(missing_ok=True)

    def reload(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """`postfix reload`, and wait until master logged that it re-read its configuration."""
        marker = "reload -- version"
        before = sum(marker in line for line in self.log_lines())
        self.settle_config()
        self.postfix("reload")
        if not wait_until(
            lambda: sum(marker in line for line in self.log_lines()) > before, timeout
        ):
            raise HarnessError(
                f"Postfix in {self.config_dir} did not confirm the reload within {timeout}s\n"
                f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
            )

    def cleanup(self) -> None:
        """Stop and remove the instance directory (kept if POSTFIX_HARNESS_KEEP=1)."""
        self.stop()
        if not _keep_requested() and not self._removed:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._removed = True

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PostfixInstance {LOCALHOST}:{self.smtpd_port} -> {self.relayhost} {state}>"

    # ---- mail

    def send(
        self,
        raw: bytes | str,
        sender: str,
        recipients: Iterable[str],
        *,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
        port: int | None = None,
        timeout: float = 30.0,
    ) -> str:
        """Submit one message over SMTP to smtpd; return the queue id Postfix assigned.

        Any refused recipient raises (smtplib.SMTPRecipientsRefused, after RSET, so nothing is
        queued). smtplib turns bare LF and bare CR in `raw` into CRLF and dot-stuffs lines; to
        send byte-exact or malformed SMTP, use a raw socket. `port` picks another smtpd listener
        of this instance (e.g. a reinjection port added to master.cf).
        """
        rcpts = list(recipients)
        if not rcpts:
            raise ValueError("send() needs at least one recipient")
        with smtplib.SMTP(
            LOCALHOST,
            port if port is not None else self.smtpd_port,
            local_hostname="client.test.invalid",
            timeout=timeout,
        ) as client:
            client.ehlo()
            code, reply = client.mail(sender, list(mail_options))
            if code != 250:
                client.rset()
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            refused: dict[str, tuple[int, bytes]] = {}
            for rcpt in rcpts:
                code, reply = client.rcpt(rcpt, list(rcpt_options))
                if code not in (250, 251):
                    refused[rcpt] = (code, reply)
            if refused:
                client.rset()
                raise smtplib.SMTPRecipientsRefused(refused)
            code, reply = client.data(raw)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        match = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
        return match.group(1).decode() if match else ""

    def queue(self) -> list[dict[str, Any]]:
        """The queue as `postqueue -j` reports it: one dict per message (queue_name, queue_id,
        sender, recipients=[{address, delay_reason?}], ...)."""
        output = _run(
            [POSTQUEUE, "-c", str(self.config_dir), "-j"], "postqueue -j", log=self.log_path
        )
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def flush(self) -> None:
        """`postqueue -f`: retry all deferred mail now, including to destinations marked dead."""
        _run([POSTQUEUE, "-c", str(self.config_dir), "-f"], "postqueue -f", log=self.log_path)

    def wait_queue_empty(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until no message is queued (delivered, bounced or dropped)."""
        remaining: list[dict[str, Any]] = []

        def empty() -> bool:
            nonlocal remaining
            remaining = self.queue()
            return not remaining

        if not wait_until(empty, timeout, interval=0.1):
            raise TimeoutError(
                f"Postfix queue of {self.config_dir} not empty after {timeout}s: {remaining}\n"
                f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
            )

    def wait_queued(
        self, queue_id: str, queue_name: str = "deferred", timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Wait until message `queue_id` sits in queue `queue_name`; return its queue entry."""
        entry: dict[str, Any] | None = None

        def there() -> bool:
            nonlocal entry
            entry = next((m for m in self.queue() if m.get("queue_id") == queue_id), None)
            return entry is not None and entry.get("queue_name") == queue_name

        if not wait_until(there, timeout, interval=0.1) or entry is None:
            raise TimeoutError(
                f"message {queue_id} not in the {queue_name} queue after {timeout}s "
                f"(last seen: {entry})\n--- last lines of {self.log_path} ---\n"
                f"{_tail(self.log_path)}"
            )
        return entry

    # ---- logs

    def log_lines(self) -> list[str]:
        """Every line Postfix logged so far (maillog_file via postlogd)."""
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = DEFAULT_TIMEOUT, *, start: int = 0
    ) -> str:
        """Wait for a log line matching `pattern` (re.search) at index >= `start`; return it.

        Pass `start=len(instance.log_lines())` to ignore what was logged before.
        """
        regex = re.compile(pattern)
        found: str | None = None

        def seen() -> bool:
            nonlocal found
            found = next((ln for ln in self.log_lines()[start:] if regex.search(ln)), None)
            return found is not None

        if not wait_until(seen, timeout, interval=0.1) or found is None:
            raise TimeoutError(
                f"no log line matching {regex.pattern!r} in {self.log_path} after {timeout}s\n"
                f"--- last lines ---\n{_tail(self.log_path)}"
            )
        return found
