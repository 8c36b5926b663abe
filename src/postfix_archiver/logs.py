"""The archiver's log lines: the per-message line's fields made safe, and the JSON format.

The per-message line (``capture.pipeline``) starts with Postfix's queue id, as Postfix's own
lines do, so ``grep QUEUEID /var/log/mail.log`` finds both. Its values come partly from the
client (XFORWARD IDENT, the sender) and must not forge a log line: in text every byte outside
printable ASCII is escaped and each value is cut short; in JSON ``json.dumps`` escapes them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

# the most of one value a line carries: a huge IDENT or sender is cut, not copied whole
MAX_VALUE = 256
# a Postfix queue id: short or long form (hex, or base 52 with a separator)
_QUEUE_ID = re.compile(r"[0-9A-Za-z]{1,64}\Z")
# quotes and backslashes too (a value may stand in quotes; an escape must be ours), and
# spaces unless asked: a value is one token on the line
_UNSAFE = re.compile(r'[^\x21-\x7e]|["\\]')
_UNSAFE_SPACED = re.compile(r'[^\x20-\x7e]|["\\]')


def safe(value: object, limit: int = MAX_VALUE, *, spaces: bool = False) -> str:
    """``value`` as printable ASCII (anything else as ``\\xNN``/``\\uNNNN``; spaces too
    unless ``spaces``: then it is one token on the line), at most ``limit`` characters of
    it (then ``...``)."""
    text = str(value)
    cut = len(text) > limit
    unsafe = _UNSAFE_SPACED if spaces else _UNSAFE
    text = unsafe.sub(_escape, text[:limit])
    return text + "..." if cut else text


def _escape(m: re.Match[str]) -> str:
    n = ord(m.group())
    return f"\\x{n:02x}" if n < 256 else f"\\u{n:04x}" if n < 65536 else f"\\U{n:08x}"


def queue_id(value: str | None) -> str:
    """A queue id for the front of the line: as it is when it looks like Postfix's, else
    escaped (it is what the client said, not necessarily what Postfix logs)."""
    if not value:
        return "-"
    return value if _QUEUE_ID.match(value) else safe(value, 64)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, pid, message, and a record's ``fields``
    (the per-message line's queue ids, decision, rule, ...) at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for key, value in fields.items():
                data[key] = value[: MAX_VALUE * 4] if isinstance(value, str) else value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=True, default=str)


TEXT_FORMAT = "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"


def setup(format: str = "text", *, verbose: bool = False) -> None:
    """The long-running commands' logging on stderr (systemd's journal, and from there the
    mail log: the units say SyslogFacility=mail)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # aiosmtpd logs every SMTP command at INFO: far too much for a mail server's log
    logging.getLogger("mail.log").setLevel(logging.WARNING)


SYSLOG_SOCKET = "/dev/log"
ENV_SYSLOG = "POSTFIX_ARCHIVER_SYSLOG"  # another socket (a chroot's, a test's)


def pipe_to_syslog(ident: str = "postfix-archiver/filter") -> None:
    """The pipe filter's per-message line into the mail log, beside Postfix's own lines.

    pipe(8) throws a command's output away when it succeeds (and puts it into the defer
    reason when it fails): only syslog, facility mail, reaches the mail log. No syslog socket,
    no line; stderr keeps the warnings and errors, for the defer reason."""
    path = os.environ.get(ENV_SYSLOG) or SYSLOG_SOCKET
    from logging.handlers import SysLogHandler

    try:
        handler = SysLogHandler(address=path, facility=SysLogHandler.LOG_MAIL)
    except OSError:
        return
    handler.ident = f"{ident}[{os.getpid()}]: "
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    for existing in root.handlers:
        existing.setLevel(max(existing.level, logging.WARNING))
    root.addHandler(handler)
    logging.getLogger("postfix_archiver.smtp").setLevel(logging.INFO)
