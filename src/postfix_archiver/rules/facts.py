"""What the conditions look at: one message and one of its envelope recipients.

Everything a condition needs is normalised here once per message (lower-cased addresses,
a header index, the client as an ``ipaddress`` object) so that evaluating hundreds of rules
is a series of dictionary look-ups and regex searches. Building facts never raises: odd
envelope values become "unknown" (``None``/``""``), which simply matches nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..envelope import Envelope
from ..message import ParsedMessage

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DIRECTIONS = ("inbound", "outbound", "internal", "external")

# The pipe(8) ${sender} macro spells the null sender "MAILER-DAEMON" unless master.cf sets
# null_sender=; a real envelope sender always has a domain after cleanup's rewriting, so
# the bare name can only mean the null sender.
_NULL_SENDERS = frozenset({"", "<>", "mailer-daemon"})


def normalize_address(value: str) -> str:
    """Lower-cased address without surrounding spaces or angle brackets."""
    text = value.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text.lower()


def domain_of(address: str) -> str:
    """Domain part of a normalised address ("" when there is none)."""
    _, at, domain = address.rpartition("@")
    return domain.rstrip(".") if at else ""


def in_domains(domain: str, domains: Iterable[str]) -> bool:
    """True if ``domain`` is one of ``domains`` or a subdomain of one."""
    return any(domain == d or domain.endswith("." + d) for d in domains)


def parse_client(value: str | None) -> IPAddress | None:
    """The client IP from XFORWARD or the pipe macros, in any of the spellings Postfix uses.

    XFORWARD writes IPv6 as ``IPv6:2001:db8::1``; some paths add ``[...]`` or a zone
    (``fe80::1%eth0``); IPv4 may arrive mapped into IPv6. ``unknown`` and junk give None.
    """
    if not value:
        return None
    text = value.strip().strip("[]")
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def header_index(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Decoded header values by lower-cased name, in message order."""
    index: dict[str, list[str]] = {}
    for name, value in headers:
        index.setdefault(str(name).strip().lower(), []).append(str(value))
    return index


class Facts:
    """The normalised view of one message; ``set_recipient`` moves it to the next recipient.

    Mutable on purpose: one object per ``Policy.decide`` call, re-pointed at each recipient,
    so that per-recipient evaluation allocates nothing.
    """

    __slots__ = (
        "client",
        "direction",
        "headers",
        "is_null_sender",
        "local_domains",
        "recipient",
        "recipient_domain",
        "recipient_raw",
        "sender",
        "sender_domain",
        "sender_is_local",
        "sender_raw",
        "size",
    )

    def __init__(
        self, parsed: ParsedMessage, envelope: Envelope, local_domains: tuple[str, ...]
    ) -> None:
        self.local_domains = local_domains
        self.sender_raw = str(envelope.sender or "")
        self.sender = normalize_address(self.sender_raw)
        self.is_null_sender = self.sender in _NULL_SENDERS
        if self.is_null_sender:
            self.sender = ""
        self.sender_domain = domain_of(self.sender)
        # A sender without a domain was submitted locally (sendmail before rewriting).
        self.sender_is_local = not self.is_null_sender and (
            not self.sender_domain or in_domains(self.sender_domain, local_domains)
        )
        self.headers = header_index(parsed.headers)
        self.size = int(parsed.size)
        self.client = parse_client(envelope.client_address)
        self.recipient_raw = ""
        self.recipient = ""
        self.recipient_domain = ""
        self.direction: str | None = None

    def set_recipient(self, recipient: str) -> None:
        self.recipient_raw = str(recipient or "")
        self.recipient = normalize_address(self.recipient_raw)
        self.recipient_domain = domain_of(self.recipient)
        self.direction = self._direction()

    def _direction(self) -> str | None:
        if not self.recipient or not self.local_domains:
            return None
        rcpt_local = not self.recipient_domain or in_domains(
            self.recipient_domain, self.local_domains
        )
        if self.is_null_sender:
            # Bounces and auto-replies: which way they travel is the recipient's side.
            return "inbound" if rcpt_local else "outbound"
        if self.sender_is_local:
            return "internal" if rcpt_local else "outbound"
        return "inbound" if rcpt_local else "external"
