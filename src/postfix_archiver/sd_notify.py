"""systemd's readiness protocol (``Type=notify``): a datagram to ``$NOTIFY_SOCKET``.

A few lines instead of a dependency: the protocol is one ``sendto`` of ``KEY=VALUE`` lines
to a Unix datagram socket whose path (or, with a leading ``@``, abstract name) systemd puts
in ``$NOTIFY_SOCKET``. Outside systemd the variable is unset and nothing is sent. A failure
to notify never stops the archiver: systemd then times the start out, which says more than
a traceback would.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("postfix_archiver.systemd")


def notify(*lines: str) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STOPPING=1"``, ...) to systemd; whether it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not address.startswith(("/", "@")):
        return False  # unset, or a vsock address we do not speak: not under systemd
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), target)
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address, exc.strerror or exc)
        return False
    return True


def ready(status: str | None = None) -> None:
    notify("READY=1", *([f"STATUS={status}"] if status else []))


def stopping() -> None:
    notify("STOPPING=1")


def reloading() -> None:
    """Before a reload; ``ready()`` after it. MONOTONIC_USEC is what ``Type=notify-reload``
    (systemd 253) asks for, and older versions ignore it."""
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notify("RELOADING=1", f"MONOTONIC_USEC={now}")
