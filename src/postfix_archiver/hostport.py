"""``HOST:PORT`` values, parsed once (``config`` re-exports them).

A module of its own, below ``config``: the pipe filter parses its ``--reinject`` and
``--proxy`` addresses before anything else, and handing a message to a running proxy must
not load the config parser (``tomllib``, the settings' dataclasses) for that.
"""

from __future__ import annotations


class HostPort(str):
    """``HOST:PORT`` parsed once: the text as written (it prints, compares and goes into
    Postfix's files unchanged) with ``host`` (an IPv6 literal's brackets removed) and
    ``port`` beside it. A ``str`` so every place that shows or compares an address keeps
    working; build it with ``parse_hostport``."""

    host: str
    port: int

    def __new__(cls, text: str, host: str, port: int) -> HostPort:
        self = super().__new__(cls, text)
        self.host = host
        self.port = port
        return self

    def __reduce__(self) -> tuple[type[HostPort], tuple[str, str, int]]:
        return (HostPort, (str(self), self.host, self.port))


def parse_hostport(value: str, *, any_port: bool = False) -> HostPort:
    """The one parser of ``HOST:PORT`` (``[v6]:PORT`` too); ``ValueError`` naming the value.

    The port is 1-65535 in ASCII digits (``isdigit`` takes "²", which ``int`` refuses, and
    ``int`` refuses 5,000 digits); ``any_port`` allows 0, "any free port", for a listener."""
    host, sep, port = value.rpartition(":")
    if not (sep and host and port.isascii() and port.isdigit() and len(port) <= 5):
        raise ValueError(f"{value[:60]!r} is not HOST:PORT")
    number = int(port)
    if not (0 if any_port else 1) <= number < 65536:
        raise ValueError(f"{value[:60]!r}: port {number} is out of range (1-65535)")
    return HostPort(value, host.strip("[]"), number)
