"""The one place that turns outcomes into SMTP replies and pipe(8) exit codes.

The promise to Postfix: success only when the archived copy is durable and the reinjection
listener accepted the message; a permanent failure only when the reinjection listener itself
rejected permanently (its own reply is passed on); everything else is temporary, so Postfix
keeps the message queued and retries.
"""

from __future__ import annotations

from ..errors import PermanentFailure

OK_SINK = "250 2.0.0 Ok: archived"
TEMPFAIL = "451 4.3.0 Error: archiving failed, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# sysexits.h, as pipe(8) reads them
EX_OK = 0
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def smtp_reply(exc: BaseException) -> str:
    """The reply for a failed transaction: the listener's own 5xx, else 451."""
    if isinstance(exc, PermanentFailure):
        return f"{exc.code} {_one_line(exc.text)}"
    return TEMPFAIL


def exit_code(exc: BaseException) -> int:
    """The pipe exit code for a failure: a bounce code only for a permanent reject."""
    if isinstance(exc, PermanentFailure):
        return EX_UNAVAILABLE
    return EX_TEMPFAIL
