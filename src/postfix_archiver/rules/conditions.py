"""Compiled conditions: each tests one fact of a message for one recipient.

``test`` returns the reason the condition holds (text for ``rules test`` and the logs) or
None. Reasons are built only on a match, which is rare, so the common path is a regex
search or a set look-up. ``per_recipient`` says whether the answer can change from one
envelope recipient to the next; the policy evaluates the others once per message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .facts import Facts
from .patterns import AddressMatcher, Network

_MAX_SHOWN = 60  # header values in reasons are cut to this length


def _quote(text: str) -> str:
    shown = text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
    # only quotes are escaped: regexes stay as written in the config, backslashes and all
    return '"' + shown.replace('"', '\\"') + '"'


def _list(items: Sequence[str]) -> str:
    quoted = [_quote(i) for i in items]
    return quoted[0] if len(quoted) == 1 else "[" + ", ".join(quoted) + "]"


class Condition:
    """A compiled condition; subclasses set ``per_recipient`` and ``description``."""

    __slots__ = ("description", "per_recipient")

    def __init__(self, description: str, per_recipient: bool) -> None:
        self.description = description
        self.per_recipient = per_recipient

    def test(self, facts: Facts) -> str | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class SenderIs(Condition):
    __slots__ = ("matcher",)

    def __init__(self, matcher: AddressMatcher) -> None:
        super().__init__(f"sender {_list(matcher.patterns)}", per_recipient=False)
        self.matcher = matcher

    def test(self, facts: Facts) -> str | None:
        if facts.is_null_sender:
            return None
        pattern = self.matcher.match(facts.sender)
        if pattern is None:
            return None
        return f"sender {_quote(facts.sender_raw)} matches {_quote(pattern)}"


class RecipientIs(Condition):
    __slots__ = ("matcher",)

    def __init__(self, matcher: AddressMatcher) -> None:
        super().__init__(f"recipient {_list(matcher.patterns)}", per_recipient=True)
        self.matcher = matcher

    def test(self, facts: Facts) -> str | None:
        if not facts.recipient:
            return None  # a message without recipients: recipient conditions never hold
        pattern = self.matcher.match(facts.recipient)
        if pattern is None:
            return None
        return f"recipient {_quote(facts.recipient_raw)} matches {_quote(pattern)}"


class HeaderMatches(Condition):
    """Header ``name`` (lower case) has a value in which ``regex`` is found.

    ``regex`` None only asks for the header to be present (the parser passes None for an
    empty pattern or ``.*``, which saves a regex search).
    """

    __slots__ = ("name", "pattern", "regex", "shown_name")

    def __init__(self, name: str, pattern: str, regex: re.Pattern[str] | None) -> None:
        description = (
            f"header {name} present" if regex is None else f"header {name} ~ {_quote(pattern)}"
        )
        super().__init__(description, per_recipient=False)
        self.shown_name = name
        self.name = name.lower()
        self.pattern = pattern
        self.regex = regex

    def test(self, facts: Facts) -> str | None:
        values = facts.headers.get(self.name)
        if not values:
            return None
        if self.regex is None:
            return f"header {self.shown_name} present"
        for value in values:
            if self.regex.search(value):
                return f"header {self.shown_name} {_quote(value)} matches {_quote(self.pattern)}"
        return None


class DirectionIs(Condition):
    __slots__ = ("directions",)

    def __init__(self, directions: Sequence[str]) -> None:
        super().__init__(f"direction {' or '.join(directions)}", per_recipient=True)
        self.directions = frozenset(directions)

    def test(self, facts: Facts) -> str | None:
        if facts.direction in self.directions:
            return f"direction {facts.direction}"
        return None


class SizeOver(Condition):
    __slots__ = ("limit", "shown")

    def __init__(self, limit: int, shown: str) -> None:
        super().__init__(f"size over {shown}", per_recipient=False)
        self.limit = limit
        self.shown = shown

    def test(self, facts: Facts) -> str | None:
        if facts.size > self.limit:
            return f"size {facts.size} over {self.shown}"
        return None


class SizeUnder(Condition):
    __slots__ = ("limit", "shown")

    def __init__(self, limit: int, shown: str) -> None:
        super().__init__(f"size under {shown}", per_recipient=False)
        self.limit = limit
        self.shown = shown

    def test(self, facts: Facts) -> str | None:
        if facts.size < self.limit:
            return f"size {facts.size} under {self.shown}"
        return None


class NullSender(Condition):
    __slots__ = ("wanted",)

    def __init__(self, wanted: bool) -> None:
        super().__init__("null sender" if wanted else "sender not null", per_recipient=False)
        self.wanted = wanted

    def test(self, facts: Facts) -> str | None:
        return self.description if facts.is_null_sender == self.wanted else None


class ClientIn(Condition):
    __slots__ = ("networks",)

    def __init__(self, networks: Sequence[Network]) -> None:
        super().__init__(f"client {_list([str(n) for n in networks])}", per_recipient=False)
        self.networks = tuple(networks)

    def test(self, facts: Facts) -> str | None:
        ip = facts.client
        if ip is None:
            return None
        for net in self.networks:
            # comparing an IPv4 address with an IPv6 network is False, not an error
            if ip in net:
                return f"client {ip} in {net}"
        return None


class AllOf(Condition):
    """Every condition holds (the conditions of one table)."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Condition]) -> None:
        super().__init__(
            " and ".join(p.description for p in parts),
            per_recipient=any(p.per_recipient for p in parts),
        )
        self.parts = tuple(parts)

    def test(self, facts: Facts) -> str | None:
        reasons = []
        for part in self.parts:
            reason = part.test(facts)
            if reason is None:
                return None
            reasons.append(reason)
        return " and ".join(reasons)


class AnyOf(Condition):
    """At least one alternative holds (a list of tables: ``any`` and ``not`` lists)."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Condition]) -> None:
        super().__init__(
            "any of (" + "; ".join(p.description for p in parts) + ")",
            per_recipient=any(p.per_recipient for p in parts),
        )
        self.parts = tuple(parts)

    def test(self, facts: Facts) -> str | None:
        for part in self.parts:
            reason = part.test(facts)
            if reason is not None:
                return reason
        return None


class Preset(Condition):
    """A shipped, named set of alternatives; the reason names the preset and the branch.

    Each alternative has a label (``cron output``, ``logwatch report``) so that
    ``rules test`` can say *why* a message counts as system mail.
    """

    __slots__ = ("labels", "name", "parts")

    def __init__(self, name: str, parts: Sequence[Condition], labels: Sequence[str]) -> None:
        super().__init__(f"preset {name}", per_recipient=any(p.per_recipient for p in parts))
        self.name = name
        self.parts = tuple(parts)
        self.labels = tuple(labels)

    def test(self, facts: Facts) -> str | None:
        for part, label in zip(self.parts, self.labels, strict=True):
            reason = part.test(facts)
            if reason is not None:
                return f"preset {self.name} ({label}): {reason}"
        return None


class Not(Condition):
    __slots__ = ("inner",)

    def __init__(self, inner: Condition) -> None:
        super().__init__(f"not ({inner.description})", per_recipient=inner.per_recipient)
        self.inner = inner

    def test(self, facts: Facts) -> str | None:
        return self.description if self.inner.test(facts) is None else None
