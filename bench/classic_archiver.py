#!/usr/bin/python3
"""The baseline for the pipe filter: a Python 3 rendering of the classic ``archiver.py``.

It archives nothing. It reads the message from stdin, adds ``X-Archive-Status: Archived``,
and hands it back to Postfix with ``smtplib`` ``sendmail`` to the host and port from argv,
once per recipient; it exits 0, or 75 (EX_TEMPFAIL) on any exception, so Postfix keeps the
mail queued. ``bench/postfix_throughput.py`` runs it from master.cf exactly as it runs
``postfix-archiver filter`` (pipe(8), same user, same argv shape)::

    argv=/usr/bin/python3 bench/classic_archiver.py HOST PORT ${sender} ${recipient}

Only the standard library, and nothing the script does not use: its start-up is what the pipe
filter is measured against.
"""

import smtplib
import sys

EX_TEMPFAIL = 75


def main(argv: list[str]) -> int:
    try:
        host, port, sender, *recipients = argv
        message = b"X-Archive-Status: Archived\n" + sys.stdin.buffer.read()
        with smtplib.SMTP(host, int(port)) as smtp:
            for recipient in recipients:
                smtp.sendmail(sender, [recipient], message)
        return 0
    except Exception as exc:
        print(f"classic archiver: {exc}", file=sys.stderr)
        return EX_TEMPFAIL


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
