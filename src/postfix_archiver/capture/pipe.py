"""The pipe(8) filter: one message on stdin, archived and reinjected, exit code per sysexits.

master.cf::

    archiver unix - n n - 10 pipe flags=Rq user=archiver null_sender=
      argv=/usr/local/bin/postfix-archiver filter --queue-id ${queue_id}
      --client-address ${client_address} --client-name ${client_hostname}
      --helo ${client_helo} -f ${sender} -- ${recipient}

Postfix bounces a message when a pipe command exits with anything but 0 or EX_TEMPFAIL (75)
(an uncaught Python exception exits 1, a click usage error 2, a config error 78): so
``main`` catches everything and turns it into 75, keeping the mail queued, except for a
permanent reject passed on from the reinjection listener.

The old positional form ``HOST PORT SENDER RCPT...`` of the classic ``archiver.py`` is
accepted too, so an existing master.cf line keeps working.

With ``--proxy HOST:PORT`` the message is handed to the running SMTP proxy there first
(``handoff``); only when none answers is it archived in this process. Nothing but that
hand-over is loaded before it is tried: no logging, no config, no archive.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from . import replies

if TYPE_CHECKING:
    from .pipeline import Incoming


class PipeArgs(NamedTuple):
    """What master.cf's argv says. (A named tuple, not a dataclass: ``dataclasses`` brings
    ``inspect`` with it, a start-up cost per message.)"""

    sender: str
    recipients: list[str]
    reinject: str | None
    config: str | None = None
    queue_id: str | None = None
    client_address: str | None = None
    client_name: str | None = None
    helo: str | None = None
    sink: bool = False
    proxy: str | None = None  # a running SMTP proxy to hand the message to (``handoff``)


class UsageError(Exception):
    pass


_VALUE_OPTIONS = {
    "-f": "sender",
    "--sender": "sender",
    "--config": "config",
    "--reinject": "reinject",
    "--queue-id": "queue_id",
    "--client-address": "client_address",
    "--client-name": "client_name",
    "--helo": "helo",
    "--proxy": "proxy",
}


def parse_args(argv: Sequence[str]) -> PipeArgs:
    """Both forms: ``[options] -f SENDER -- RCPT...`` and ``HOST PORT SENDER RCPT...``.

    Hand-parsed on purpose: Postfix may pass empty macro values (a null sender, an unknown
    client), which option parsers tend to misread, and nothing here may exit with a usage
    code Postfix would take as a bounce.
    """
    values: dict[str, str] = {}
    positional: list[str] = []
    sink = False
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positional.extend(args[i + 1 :])
            break
        if arg == "--sink":
            sink = True
        elif arg in _VALUE_OPTIONS:
            if i + 1 >= len(args):
                raise UsageError(f"{arg} needs a value")
            values[_VALUE_OPTIONS[arg]] = args[i + 1]
            i += 1
        elif "=" in arg and arg.split("=", 1)[0] in _VALUE_OPTIONS:
            name, value = arg.split("=", 1)
            values[_VALUE_OPTIONS[name]] = value
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg}")
        else:
            positional.append(arg)
        i += 1
    if "sender" not in values:
        # the classic archiver.py form: HOST PORT SENDER RCPT...
        if len(positional) >= 4 and positional[1].isdigit():
            host, port, sender, *rcpts = positional
            return PipeArgs(
                sender=sender,
                recipients=rcpts,
                reinject=_reinject_address(f"{host}:{port}"),
                config=values.get("config"),
                sink=sink,
                proxy=_address("--proxy", values.get("proxy")),
            )
        raise UsageError("give -f SENDER -- RECIPIENT... (or HOST PORT SENDER RECIPIENT...)")
    if not positional:
        raise UsageError("no recipients: give them after --")
    return PipeArgs(
        sender=values["sender"],
        recipients=positional,
        reinject=_reinject_address(values.get("reinject")),
        config=values.get("config"),
        queue_id=values.get("queue_id") or None,
        client_address=_known(values.get("client_address")),
        client_name=_known(values.get("client_name")),
        helo=values.get("helo") or None,
        sink=sink,
        proxy=_address("--proxy", values.get("proxy")),
    )


def _reinject_address(value: str | None) -> str | None:
    return _address("--reinject", value)


def _address(option: str, value: str | None) -> str | None:
    """Checked before anything is archived: a typo in master.cf is one clear line."""
    if value is None:
        return None
    from ..hostport import parse_hostport

    try:
        parse_hostport(value)
    except ValueError as exc:
        raise UsageError(f"{option} {exc}") from None
    return value


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "unknown") else value


def incoming(args: PipeArgs, content: bytes) -> Incoming:
    """The message as the pipe received it; the archiving is the caller's (``app``)."""
    from .pipeline import Incoming

    return Incoming(
        content=content,
        sender=args.sender,
        recipients=args.recipients,
        source="sink" if args.sink else "pipe",
        queue_id=args.queue_id,
        client_address=args.client_address,
        client_name=args.client_name,
        helo=args.helo,
        xforward=xforward_of(args),
    )


def xforward_of(args: PipeArgs) -> dict[str, str]:
    """The XFORWARD attributes (xtext) of what Postfix told the pipe about the client."""
    from .outgoing import xtext

    attrs = {
        "NAME": args.client_name,
        "ADDR": args.client_address,
        "HELO": args.helo,
        "IDENT": args.queue_id,
    }
    return {k: xtext(v) for k, v in attrs.items() if v}


def main(argv: Sequence[str], run: Callable[[PipeArgs, bytes], int]) -> int:
    """Entry point for ``postfix-archiver filter``: ``run`` archives the message (see
    ``app.run_filter``) unless a proxy named by ``--proxy`` took it; never raises, never
    exits 1 or 2."""
    try:
        try:
            args = parse_args(argv)
        except UsageError as exc:
            print(f"postfix-archiver filter: {exc}", file=sys.stderr)
            return replies.EX_TEMPFAIL
        content = sys.stdin.buffer.read()
        if args.proxy is not None and not args.sink:
            from .handoff import hand_over

            handed = hand_over(args, content)
            if handed is not None:
                return handed
        import logging  # here: a message the proxy took needs none

        logging.basicConfig(
            level=logging.WARNING, stream=sys.stderr, format="postfix-archiver: %(message)s"
        )
        from ..logs import pipe_to_syslog

        pipe_to_syslog()  # the line per message, into the mail log
        return run(args, content)
    except BaseException as exc:  # exit 1 would make Postfix bounce the mail
        if isinstance(exc, SystemExit) and exc.code in (0, replies.EX_TEMPFAIL):
            return int(exc.code or 0)
        if isinstance(exc, KeyboardInterrupt):
            return replies.EX_TEMPFAIL
        print(f"postfix-archiver filter: temporary failure: {exc}", file=sys.stderr)
        return replies.EX_TEMPFAIL
