"""Postfix configuration for the archiver: what to put in main.cf and master.cf, applied
idempotently through ``postconf``, and checked by ``doctor``.

The shapes follow Postfix's FILTER_README ("advanced content filter"): a filter transport
with XFORWARD on and MIME conversion off, and a reinjection smtpd on 127.0.0.1:10026 with
``content_filter=`` empty so mail is not filtered twice, and with the checks already done
before the filter switched off.
"""

from __future__ import annotations

import itertools
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .errors import ArchiverError

MODES = ("proxy", "pipe", "sink")
TRANSPORT = "postfix-archiver"
PIPE_TRANSPORT = "postfix-archiver-pipe"
SINK_TRANSPORT = "postfix-archiver-sink"
SINK_DOMAIN = "archive.invalid"
SINK_ADDRESS = f"archive@{SINK_DOMAIN}"
AMAVIS_TRANSPORT = "smtp-amavis"  # the name Debian's amavisd-new documentation uses


@dataclass(frozen=True)
class Service:
    """One master.cf entry: ``name type private unpriv chroot wakeup maxproc command``."""

    name: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name}/{self.type}"

    def entry(self) -> str:
        return " ".join(
            (
                self.name,
                self.type,
                self.private,
                self.unpriv,
                self.chroot,
                self.wakeup,
                self.maxproc,
                self.command,
            )
        )

    def render(self) -> str:
        lines = [self.entry()]
        lines += [f"    -o {k}={v}" for k, v in self.options]
        return "\n".join(lines)


@dataclass
class PostfixPlan:
    mode: str
    main: list[tuple[str, str]] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        out = [f"# postfix-archiver: {self.mode} mode", "", "# --- /etc/postfix/main.cf ---"]
        out += [f"{k} = {v}" for k, v in self.main]
        out += ["", "# --- /etc/postfix/master.cf ---"]
        out += [s.render() for s in self.services]
        if self.notes:
            out += [""] + [f"# {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def _split(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host, port


def reinject_service(config: Config, maxproc: int) -> Service:
    host, port = _split(config.smtp.reinject)
    return Service(
        f"{host}:{port}",
        "inet",
        "n",
        "-",
        "n",
        "-",
        str(maxproc),
        "smtpd",
        (
            ("syslog_name", "postfix/archiver-reinject"),
            ("content_filter", ""),
            (
                "receive_override_options",
                "no_unknown_recipient_checks,no_header_body_checks,no_milters",
            ),
            ("smtpd_helo_restrictions", ""),
            ("smtpd_client_restrictions", ""),
            ("smtpd_sender_restrictions", ""),
            ("smtpd_relay_restrictions", ""),
            ("smtpd_recipient_restrictions", "permit_mynetworks,reject"),
            ("smtpd_data_restrictions", ""),
            ("smtpd_end_of_data_restrictions", ""),
            ("mynetworks", "127.0.0.0/8"),
            ("smtpd_authorized_xforward_hosts", "127.0.0.0/8"),
        ),
    )


def _filter_transport(name: str, maxproc: int) -> Service:
    return Service(
        name,
        "unix",
        "-",
        "-",
        "n",
        "-",
        str(maxproc),
        "smtp",
        (
            ("syslog_name", f"postfix/{name}"),
            ("smtp_send_xforward_command", "yes"),
            ("disable_mime_output_conversion", "yes"),
            ("smtp_generic_maps", ""),
            # archiving happens before the final reply: give it time
            ("smtp_data_done_timeout", "1200s"),
        ),
    )


def plan(
    config: Config,
    mode: str,
    *,
    amavis: bool = False,
    maxproc: int = 10,
    executable: str | None = None,
    config_file: str | None = None,
    user: str | None = None,
    amavis_address: str = "127.0.0.1:10024",
    amavis_return: str = "127.0.0.1:10025",
) -> PostfixPlan:
    """What main.cf and master.cf need for ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ArchiverError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    listen_host, listen_port = _split(config.smtp.listen)
    p = PostfixPlan(mode)
    if mode == "sink":
        p.main += [
            ("always_bcc", SINK_ADDRESS),
            (
                "transport_maps",
                f"inline:{{ {SINK_DOMAIN}={SINK_TRANSPORT}:[{listen_host}]:{listen_port} }}",
            ),
        ]
        p.services.append(_filter_transport(SINK_TRANSPORT, maxproc))
        p.notes += [
            "always_bcc sends a copy of every message to the sink; for a selection use "
            "sender_bcc_maps / recipient_bcc_maps instead.",
            f"start the sink with: postfix-archiver serve --sink (listens on {config.smtp.listen})",
        ]
        return p
    if mode == "proxy":
        target = f"{TRANSPORT}:[{listen_host}]:{listen_port}"
        p.services.append(_filter_transport(TRANSPORT, maxproc))
    else:
        exe = executable or shutil.which("postfix-archiver") or "/usr/local/bin/postfix-archiver"
        if not user:
            raise ArchiverError(
                "pipe mode runs the filter as an unprivileged user: give --user "
                "NAME (the owner of the archive directory)"
            )
        argv = [exe, "filter"]
        if config_file:
            argv += ["--config", config_file]
        argv += [
            "--reinject",
            config.smtp.reinject,
            "--queue-id",
            "${queue_id}",
            "--client-address",
            "${client_address}",
            "--client-name",
            "${client_hostname}",
            "--helo",
            "${client_helo}",
            "-f",
            "${sender}",
            "--",
            "${recipient}",
        ]
        command = f"pipe flags=Rq user={user} null_sender= argv=" + " ".join(
            shlex.quote(a) if "$" not in a else a for a in argv
        )
        p.services.append(
            Service(PIPE_TRANSPORT, "unix", "-", "n", "n", "-", str(maxproc), command)
        )
        p.main.append((f"{PIPE_TRANSPORT}_destination_recipient_limit", "1000"))
        target = f"{PIPE_TRANSPORT}:dummy"
    if amavis:
        if amavis_return == config.smtp.listen:
            raise ArchiverError(
                f"the archiver listens on {config.smtp.listen}, where amavis returns mail: "
                'set [smtp] listen = "127.0.0.1:10027" in the archiver config'
            )
        r_host, r_port = _split(amavis_return)
        a_host, a_port = _split(amavis_address)
        p.main += [
            ("content_filter", f"{AMAVIS_TRANSPORT}:[{a_host}]:{a_port}"),
            ("receive_override_options", "no_address_mappings"),
        ]
        p.services.append(
            Service(
                AMAVIS_TRANSPORT,
                "unix",
                "-",
                "-",
                "n",
                "-",
                "2",
                "smtp",
                (
                    ("syslog_name", f"postfix/{AMAVIS_TRANSPORT}"),
                    ("smtp_data_done_timeout", "1200s"),
                    ("smtp_send_xforward_command", "yes"),
                    ("disable_mime_output_conversion", "yes"),
                    ("max_use", "20"),
                ),
            )
        )
        # amavis hands mail back here; this smtpd sends it on to the archiver
        ret = reinject_service(config, maxproc)
        ret_opts = tuple((k, target if k == "content_filter" else v) for k, v in ret.options)
        ret_opts = tuple(
            (k, "postfix/amavis-return" if k == "syslog_name" else v) for k, v in ret_opts
        )
        p.services.append(
            Service(f"{r_host}:{r_port}", "inet", "n", "-", "n", "-", "10", "smtpd", ret_opts)
        )
        p.notes.append(
            f"amavisd.conf: $forward_method = 'smtp:[{r_host}]:{r_port}'; "
            f"$notify_method = $forward_method;"
        )
    else:
        p.main += [("content_filter", target), ("receive_override_options", "no_address_mappings")]
    p.services.append(reinject_service(config, maxproc))
    p.notes.append(
        "receive_override_options=no_address_mappings in main.cf leaves alias and "
        "canonical mapping to the reinjection smtpd, after the filter "
        "(Postfix FILTER_README)."
    )
    return p


# -- applying ---------------------------------------------------------------------------------


def _postconf(config_dir: Path, *args: str) -> str:
    cmd = ["postconf", "-c", str(config_dir), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        raise ArchiverError("postconf not found: is Postfix installed?") from None
    if done.returncode != 0:
        raise ArchiverError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def current_main(config_dir: Path, names: Sequence[str]) -> dict[str, str]:
    out = _postconf(config_dir, "-n")
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(" = ")
        if sep and key in names:
            values[key] = value
    for name in names:
        values.setdefault(name, "")
    return values


def current_services(config_dir: Path) -> dict[str, str]:
    """master.cf entries as ``postconf -M`` prints them, keyed ``name/type``."""
    out = _postconf(config_dir, "-Mf")
    services: dict[str, str] = {}
    block: list[str] = []
    for line in [*out.splitlines(), ""]:
        if line and line[0].isspace():
            block.append(line.strip())
            continue
        if block:
            fields = block[0].split()
            services[f"{fields[0]}/{fields[1]}"] = " ".join(block)
        block = [line] if line else []
    return services


def _normalized(service: Service) -> str:
    return " ".join([service.entry()] + [f"-o {k}={v}" for k, v in service.options])


def changes(config_dir: Path, p: PostfixPlan) -> tuple[list[tuple[str, str]], list[Service]]:
    main_now = current_main(config_dir, [k for k, _ in p.main])
    main_todo = [(k, v) for k, v in p.main if main_now.get(k, "") != v]
    services_now = current_services(config_dir)
    svc_todo = [
        s for s in p.services if " ".join(services_now.get(s.key, "").split()) != _normalized(s)
    ]
    return main_todo, svc_todo


def apply(config_dir: Path, p: PostfixPlan, *, reload: bool = True) -> list[str]:
    """Apply ``p`` to the Postfix config in ``config_dir``; returns what was done."""
    main_todo, svc_todo = changes(config_dir, p)
    if not main_todo and not svc_todo:
        return ["Postfix is already configured as planned; nothing changed."]
    done: list[str] = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("main.cf", "master.cf"):
        src = config_dir / name
        if src.exists():
            backup = config_dir / f"{name}.postfix-archiver-{stamp}"
            shutil.copy2(src, backup)
            done.append(f"backed up {src} to {backup}")
    if main_todo:
        _postconf(config_dir, "-e", *[f"{k}={v}" for k, v in main_todo])
        done += [f"main.cf: {k} = {v}" for k, v in main_todo]
    for s in svc_todo:
        _postconf(config_dir, "-M", f"{s.key}={s.entry()}")
        # replace the options wholesale so a stale one does not linger
        tokens = current_services(config_dir).get(s.key, "").split()
        for flag, option in itertools.pairwise(tokens):
            name = option.split("=", 1)[0]
            if flag == "-o" and name not in dict(s.options):
                _postconf(config_dir, "-PX", f"{s.key}/{name}")
        for k, v in s.options:
            _postconf(config_dir, "-P", f"{s.key}/{k}={v}")
        done.append(f"master.cf: {s.entry()}")
    if reload:
        status = subprocess.run(
            ["postfix", "-c", str(config_dir), "status"], capture_output=True, check=False
        )
        if status.returncode == 0:
            r = subprocess.run(
                ["postfix", "-c", str(config_dir), "reload"],
                capture_output=True,
                text=True,
                check=False,
            )
            done.append("postfix reload: " + ("ok" if r.returncode == 0 else r.stderr.strip()))
    return done
