"""From the TOML tables of ``[[rules]]`` (and preset files) to compiled conditions.

Every mistake is a ``ConfigError`` naming file, line and key, e.g.
``archiver.toml:14: rules[2].header.Subject: bad regular expression '(': missing ), ...``,
so ``serve`` refuses a broken policy instead of archiving by a policy nobody wrote.
The condition syntax is described in ``postfix_archiver.rules``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import KeyPath, Source
from ..errors import ConfigError
from .conditions import (
    AllOf,
    AnyOf,
    ClientIn,
    Condition,
    DirectionIs,
    HeaderMatches,
    Not,
    NullSender,
    RecipientIs,
    SenderIs,
    SizeOver,
    SizeUnder,
)
from .facts import DIRECTIONS
from .patterns import (
    AddressMatcher,
    Network,
    check_header_name,
    compile_addresses,
    compile_regex,
    parse_network,
    parse_size,
)

CONDITION_KEYS = (
    "sender",
    "recipient",
    "header",
    "direction",
    "size_over",
    "size_under",
    "null_sender",
    "client",
    "not",
    "any",
    "preset",
)

PresetLookup = Callable[[str], Condition]


def unknown_key(source: Source, path: KeyPath, key: str, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return source.error((*path, key), f"unknown key (known: {', '.join(known)}){hint}")


class ConditionParser:
    """Compiles condition tables; ``presets`` resolves ``preset = ...`` (None: not allowed)."""

    def __init__(
        self, source: Source, *, local_domains: Sequence[str], presets: PresetLookup | None
    ) -> None:
        self.source = source
        self.local_domains = tuple(local_domains)
        self.presets = presets

    def error(self, path: KeyPath, reason: str) -> ConfigError:
        return self.source.error(path, reason)

    def conditions(
        self, table: Mapping[str, Any], path: KeyPath, other_keys: Sequence[str] = ()
    ) -> list[Condition]:
        """The conditions of ``table`` (all must hold); ``other_keys`` are left to the caller.

        Raises for unknown keys; an empty result is the caller's to judge.
        """
        known = (*other_keys, *CONDITION_KEYS)
        for key in table:
            if key not in known:
                raise unknown_key(self.source, path, key, known)
        # in the order written, so the reasons read like the config and the author can put
        # the cheapest or most selective condition first
        result = [
            self._condition(key, value, (*path, key))
            for key, value in table.items()
            if key in CONDITION_KEYS
        ]
        self._check_sizes(table, path)
        return result

    def table(self, value: object, path: KeyPath) -> Condition:
        """One non-empty table of conditions as a single condition."""
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table of conditions, not {value!r}")
        parts = self.conditions(value, path)
        if not parts:
            raise self.error(
                path, f"empty table: give at least one condition ({', '.join(CONDITION_KEYS)})"
            )
        return parts[0] if len(parts) == 1 else AllOf(parts)

    def _condition(self, key: str, value: object, path: KeyPath) -> Condition:
        if key in ("sender", "recipient"):
            matcher = self._addresses(value, path)
            return SenderIs(matcher) if key == "sender" else RecipientIs(matcher)
        if key == "header":
            return self._header(value, path)
        if key == "direction":
            return self._direction(value, path)
        if key in ("size_over", "size_under"):
            limit, shown = self._size(value, path)
            return SizeOver(limit, shown) if key == "size_over" else SizeUnder(limit, shown)
        if key == "null_sender":
            if not isinstance(value, bool):
                raise self.error(path, f"must be true or false, not {value!r}")
            return NullSender(value)
        if key == "client":
            items = self._strings(value, path)
            return ClientIn(
                [self._network(v, self._at(path, value, i)) for i, v in enumerate(items)]
            )
        if key == "not":
            return Not(self._tables(value, path))
        if key == "any":
            if not isinstance(value, list):
                raise self.error(
                    path,
                    "must be a list of condition tables, "
                    'e.g. any = [{ sender = "a@" }, { size_over = "5M" }]',
                )
            return self._tables(value, path)
        if key == "preset":
            return self._preset(value, path)
        raise AssertionError(key)  # pragma: no cover - CONDITION_KEYS lists every key

    def _strings(self, value: object, path: KeyPath) -> list[str]:
        """A string or a non-empty list of strings ("lists mean any of")."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise self.error(
                path, f"must be a string or a non-empty list of strings, not {value!r}"
            )
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.error((*path, i), f"must be a string, not {item!r}")
        return list(items)

    @staticmethod
    def _at(path: KeyPath, value: object, index: int) -> KeyPath:
        """Where item ``index`` of ``value`` is: indexed only if a list was written."""
        return (*path, index) if isinstance(value, list) else path

    def _tables(self, value: object, path: KeyPath) -> Condition:
        """A table (all of it) or a non-empty list of tables (any of them)."""
        if isinstance(value, list):
            if not value:
                raise self.error(path, "empty list of condition tables")
            parts = [self.table(v, (*path, i)) for i, v in enumerate(value)]
            return parts[0] if len(parts) == 1 else AnyOf(parts)
        return self.table(value, path)

    def _addresses(self, value: object, path: KeyPath) -> AddressMatcher:
        patterns = self._strings(value, path)
        for i, pattern in enumerate(patterns):
            try:
                compile_addresses([pattern])
            except ValueError as exc:
                raise self.error(self._at(path, value, i), str(exc)) from None
        return compile_addresses(patterns)

    def _header(self, value: object, path: KeyPath) -> Condition:
        if isinstance(value, list):
            if not value:
                raise self.error(path, "empty list of header tables")
            parts = [self._header_table(v, (*path, i)) for i, v in enumerate(value)]
            return parts[0] if len(parts) == 1 else AnyOf(parts)
        return self._header_table(value, path)

    def _header_table(self, value: object, path: KeyPath) -> Condition:
        if not isinstance(value, dict) or not value:
            raise self.error(
                path,
                "must be a table of header names and regexes, "
                'e.g. header = { Subject = "^Cron <" }',
            )
        parts: list[Condition] = []
        for name, patterns in value.items():
            hpath = (*path, name)
            try:
                check_header_name(name)
            except ValueError as exc:
                raise self.error(hpath, str(exc)) from None
            alternatives: list[Condition] = []
            for i, pattern in enumerate(self._strings(patterns, hpath)):
                where = self._at(hpath, patterns, i)
                try:
                    regex = None if pattern in ("", ".*") else compile_regex(pattern)
                except ValueError as exc:
                    raise self.error(where, str(exc)) from None
                alternatives.append(HeaderMatches(name, pattern, regex))
            parts.append(alternatives[0] if len(alternatives) == 1 else AnyOf(alternatives))
        return parts[0] if len(parts) == 1 else AllOf(parts)

    def _direction(self, value: object, path: KeyPath) -> Condition:
        directions = self._strings(value, path)
        for i, d in enumerate(directions):
            if d not in DIRECTIONS:
                where = self._at(path, value, i)
                raise self.error(where, f"unknown direction {d!r} (known: {', '.join(DIRECTIONS)})")
        if not self.local_domains:
            raise self.error(
                path,
                "direction needs [archive] local_domains to tell local addresses from remote ones",
            )
        return DirectionIs(directions)

    def _size(self, value: object, path: KeyPath) -> tuple[int, str]:
        try:
            limit = parse_size(value)
        except ValueError as exc:
            raise self.error(path, str(exc)) from None
        return limit, (value if isinstance(value, str) else f"{limit} bytes")

    def _check_sizes(self, table: Mapping[str, Any], path: KeyPath) -> None:
        if "size_over" in table and "size_under" in table:
            over = parse_size(table["size_over"])
            under = parse_size(table["size_under"])
            if under <= over + 1:
                raise self.error(
                    (*path, "size_under"),
                    "no size is both over "
                    f"{table['size_over']!r} and under {table['size_under']!r}",
                )

    def _network(self, value: str, path: KeyPath) -> Network:
        try:
            return parse_network(value)
        except ValueError as exc:
            raise self.error(path, str(exc)) from None

    def _preset(self, value: object, path: KeyPath) -> Condition:
        if self.presets is None:
            raise self.error(path, "a preset cannot use another preset")
        names = self._strings(value, path)
        parts = []
        for i, name in enumerate(names):
            try:
                parts.append(self.presets(name))
            except KeyError as exc:
                raise self.error(self._at(path, value, i), str(exc.args[0])) from None
        return parts[0] if len(parts) == 1 else AnyOf(parts)
