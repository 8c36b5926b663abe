"""The pipe filter handing its message to a running SMTP proxy, as spamc hands mail to spamd.

A process per message pays for its start-up on every message: importing and opening what
archiving needs (the config parser, the rules, SQLite, zstd, the email parser, the archive)
costs several times the whole of the classic ``archiver.py``, and every process opens,
syncs and checkpoints the catalog and the blob pack on its own. The proxy (``serve``) has
all of that loaded and open, and commits concurrent messages together.

With ``--proxy HOST:PORT`` the filter connects there first. When a proxy greets (its
greeting names postfix-archiver), the message goes to it over SMTP with the envelope and
the client attributes (XFORWARD) Postfix gave the pipe, unstamped; the proxy archives it,
stamps it and reinjects it to its own reinjection listener before it answers, exactly as
for mail from Postfix's ``content_filter``. Its answer becomes the exit code: 250 with
"queued" (reinjected) 0, a 5xx EX_UNAVAILABLE, anything else 75. A proxy that answers 250
without reinjecting is a sink: 75, so the mail stays queued rather than vanish.

When nothing listens there, or something else does, nothing has been sent: the caller
archives the message in its own process as without ``--proxy``.
"""

from __future__ import annotations

import socket
import sys

from . import replies
from .outgoing import NothingSent, Outgoing, send_over
from .pipe import PipeArgs, xforward_of

# a proxy on this host accepts, greets and answers EHLO at once; one that does not within
# this is not taking mail (nothing is sent yet: the filter archives the message itself)
GREETING_TIMEOUT = 10.0
# each wait after that: the proxy answers the final dot once the message is archived and
# reinjected (its answer_timeout and its reinjection's own time); giving up before it
# answers would have Postfix send a message the proxy may have reinjected already again
REPLY_TIMEOUT = 900.0
GREETING_WORD = "postfix-archiver"


def hand_over(args: PipeArgs, content: bytes) -> int | None:
    """The exit code for the message handed to the proxy at ``args.proxy``; ``None`` when
    no proxy took any of it (archive it here)."""
    from ..hostport import parse_hostport

    assert args.proxy is not None
    target = parse_hostport(args.proxy)
    # an ASCII host as bytes: a str is encoded with the idna codec, whose import (stringprep,
    # unicodedata) costs more than the connection
    host = target.host.encode() if target.host.isascii() else target.host
    try:
        sock = socket.create_connection((host, target.port), GREETING_TIMEOUT)  # type: ignore[arg-type]
    except OSError:
        return None  # no proxy running: the usual case when only the filter is set up
    msg = Outgoing(
        sender=args.sender, recipients=args.recipients, content=content, xforward=xforward_of(args)
    )
    try:
        # EHLO localhost: the client's own HELO goes in XFORWARD; no resolver lookup
        reply = send_over(
            sock, args.proxy, msg, helo="localhost", greeted_by=GREETING_WORD, timeout=REPLY_TIMEOUT
        )
    except NothingSent as exc:
        _say(f"no proxy taking mail ({exc}): archiving here")
        return None
    except Exception as exc:
        _say(f"the proxy at {args.proxy} did not take the message: {exc}")
        return replies.exit_code(exc)
    if "queued" not in reply:
        _say(
            f"the archiver at {args.proxy} archived the message but did not reinject it "
            f"({reply[:120]!r}): is it a sink? Point --proxy at the SMTP proxy"
        )
        return replies.EX_TEMPFAIL
    return replies.EX_OK


def _say(text: str) -> None:
    print(f"postfix-archiver filter: {text}", file=sys.stderr)
