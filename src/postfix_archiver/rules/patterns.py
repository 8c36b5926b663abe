"""Compiling the values written in rules: address patterns, regexes, sizes, networks.

Each function turns one config value into something cheap to test and raises ``ValueError``
with a reason a mail administrator can act on; ``parse`` adds the file, line and key.

Address patterns (envelope sender and recipient), always compared case-insensitively:

=====================  ==================================================================
``alice@example.com``  exactly that address
``root@``              that local part at any domain (Postfix access(5) style)
``@example.com``       any address at example.com *or one of its subdomains*
                       (``@example.com`` matches ``a@mail.example.com``, never
                       ``a@badexample.com``); for the domain alone write ``*@example.com``
``*@*.example.com``    glob: ``*`` is any run of characters, ``?`` one character; nothing
                       else is special (so ``[`` in an address literal is literal)
``re:^cron-``          Python regular expression, searched (not anchored), ignoring case
=====================  ==================================================================
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .. import retention

_GLOB_CHARS = frozenset("*?")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ':'

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def compile_regex(pattern: str) -> re.Pattern[str]:
    """A user regex, searched case-insensitively."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ValueError(f"bad regular expression {pattern!r}: {exc.msg}{where}") from None


def _glob_to_regex(glob: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)


@dataclass(frozen=True, slots=True)
class AddressMatcher:
    """Compiled address patterns; ``match`` gives the pattern text that matched, or None.

    Exact addresses are a set look-up and all globs and domains are one generated regex,
    so a long list costs about as much as a short one. User ``re:`` regexes stay separate:
    joining them into one alternation would renumber their backreferences.
    """

    patterns: tuple[str, ...]
    exact: frozenset[str]
    combined: re.Pattern[str] | None
    regexes: tuple[tuple[str, re.Pattern[str]], ...]
    # (pattern text, regex) for globs and domains, to name the one that matched
    generated: tuple[tuple[str, re.Pattern[str]], ...]

    def match(self, address: str) -> str | None:
        """``address`` must already be normalised (lower case, no brackets)."""
        if address in self.exact:
            for pattern in self.patterns:
                if pattern.lower() == address:
                    return pattern
        if self.combined is not None and self.combined.fullmatch(address):
            for pattern, regex in self.generated:
                if regex.fullmatch(address):
                    return pattern
        for pattern, regex in self.regexes:
            if regex.search(address):
                return pattern
        return None


def _address_regex(pattern: str) -> str | None:
    """The anchored regex a glob, domain or ``local@`` pattern stands for, else None."""
    text = pattern.lower()
    if text.startswith("@"):
        if _GLOB_CHARS & set(text):
            return _glob_to_regex("*" + text)
        domain = text[1:].rstrip(".")
        if not domain or "@" in domain:
            raise ValueError(f'{pattern!r} is not a domain; write "@example.com"')
        return r".*@(?:[^@]*\.)?" + re.escape(domain)
    if text.endswith("@") and text.count("@") == 1:
        return _glob_to_regex(text) + r"[^@]*"
    if _GLOB_CHARS & set(text):
        return _glob_to_regex(text)
    return None


def compile_addresses(patterns: list[str]) -> AddressMatcher:
    exact: set[str] = set()
    generated: list[tuple[str, re.Pattern[str]]] = []
    regexes: list[tuple[str, re.Pattern[str]]] = []
    for pattern in patterns:
        if not pattern.strip():
            raise ValueError("empty address pattern (for bounces use null_sender = true)")
        if any(c.isspace() or ord(c) < 32 for c in pattern):
            raise ValueError(f"address pattern {pattern!r} contains white space")
        if pattern.startswith("re:"):
            regexes.append((pattern, compile_regex(pattern[3:])))
            continue
        generated_regex = _address_regex(pattern)
        if generated_regex is not None:
            generated.append((pattern, re.compile(generated_regex, re.DOTALL)))
        elif "@" not in pattern:
            raise ValueError(
                f'{pattern!r} has no "@": write "{pattern}@" for that local '
                f'part at any domain, or "{pattern}@example.com"'
            )
        else:
            exact.add(pattern.lower())
    combined = None
    if generated:
        combined = re.compile("|".join(f"(?:{r.pattern})" for _, r in generated), re.DOTALL)
    return AddressMatcher(
        tuple(patterns), frozenset(exact), combined, tuple(regexes), tuple(generated)
    )


def parse_size(value: object) -> int:
    """Bytes from an integer or a string such as ``"5M"`` (units are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a size such as 5M or 1048576, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, not {value}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f'must be a size such as "500k", "5M", "1G" or bytes, not {value!r}')


def parse_network(value: str) -> Network:
    """An address (a /32 or /128) or a network such as ``192.0.2.0/24``."""
    text = value.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network: {exc}") from None
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from None


def check_retention(value: object) -> str:
    """Retention classes: a count and a unit, ``d``/``w``/``m``/``y`` (``90d``, ``10y``)."""
    return retention.check(value)


def check_header_name(name: str) -> str:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a header name (printable ASCII, no ':' or space)")
    return name
