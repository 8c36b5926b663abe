"""``postfix-archiver doctor``: is Postfix configured as the archiver expects, do the ports
answer, can the archive be written? Each check says what to fix."""

from __future__ import annotations

import os
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import postfix
from .config import Config, HostPort
from .errors import ArchiverError


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    fix: str = ""


def _ehlo(address: HostPort) -> tuple[bool, str, set[str]]:
    try:
        with smtplib.SMTP(address.host, address.port, timeout=5) as smtp:
            code, _ = smtp.ehlo()
            return code == 250, "", set(smtp.esmtp_features)
    except (OSError, smtplib.SMTPException) as exc:
        return False, str(exc) or type(exc).__name__, set()


def run_checks(config: Config, config_dir: Path, mode: str | None) -> Iterator[Check]:
    try:
        main_now = postfix.current_main(
            config_dir, ["content_filter", "always_bcc", "transport_maps"]
        )
        services = postfix.current_services(config_dir)
    except ArchiverError as exc:
        yield Check(
            f"read the Postfix configuration in {config_dir}",
            False,
            f"{exc} (give --config-dir if Postfix lives elsewhere)",
        )
        return
    cf = main_now["content_filter"]
    if mode is None:
        mode = (
            "sink"
            if postfix.SINK_ADDRESS in main_now["always_bcc"]
            else "pipe"
            if cf.startswith(postfix.PIPE_TRANSPORT)
            else "proxy"
        )
    expected = postfix.plan(config, mode, user="nobody")
    want_main = dict(expected.main)
    for key in ("content_filter", "always_bcc"):
        if key in want_main:
            value = main_now[key]
            good = value == want_main[key] or (
                key == "content_filter"
                and value.startswith(
                    (postfix.TRANSPORT + ":", postfix.PIPE_TRANSPORT + ":", "amavisfeed:")
                )
            )
            yield Check(
                f"main.cf {key} = {value or '(empty)'}",
                good,
                "postfix-archiver postfix-config --mode "
                f"{mode} --apply   (or set {key} = {want_main[key]})",
            )
    for service in expected.services:
        if service.command.startswith("pipe"):
            present = service.key in services
            yield Check(
                f"master.cf has the {service.name} pipe transport",
                present,
                "postfix-archiver postfix-config --mode pipe --user USER --apply",
            )
            continue
        line = " ".join(services.get(service.key, "").split())
        missing = [f"{k}={v}" for k, v in service.options if f"-o {k}={v}" not in line]
        yield Check(
            f"master.cf {service.key}"
            + (f" is missing {', '.join(missing)}" if line and missing else ""),
            bool(line) and not missing,
            f"postfix-archiver postfix-config --mode {mode} --apply",
        )
    ok, why, _ = _ehlo(config.smtp.listen)
    yield Check(
        f"archiver answers on {config.smtp.listen}",
        ok,
        f"start it: postfix-archiver serve{' --sink' if mode == 'sink' else ''} ({why})",
    )
    if mode != "sink":
        ok, why, features = _ehlo(config.smtp.reinject)
        yield Check(
            f"reinjection smtpd answers on {config.smtp.reinject}",
            ok,
            f"postfix-archiver postfix-config --apply, then postfix reload ({why})",
        )
        if ok:
            yield Check(
                "reinjection smtpd accepts XFORWARD from the archiver",
                "xforward" in features,
                "add -o smtpd_authorized_xforward_hosts=127.0.0.0/8 to its master.cf entry",
            )
    home = config.archive.home
    target = home if home.exists() else home.parent
    yield Check(
        f"archive directory {home.absolute()} is writable",
        os.access(target, os.W_OK | os.X_OK),
        f"chown the directory to the user the archiver runs as ({socket.gethostname()})",
    )
