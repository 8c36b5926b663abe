"""The policy: ordered rules, first match per recipient, a default, and decision counts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..config import Config, Source
from ..envelope import Envelope
from ..message import ParsedMessage
from .conditions import Condition
from .facts import Facts
from .parse import CONDITION_KEYS, ConditionParser, unknown_key
from .patterns import check_retention
from .presets import load_preset
from .verdict import ACTIONS, DEFAULT_RULE, ERROR_RULE, Action, Decision, Verdict

log = logging.getLogger("postfix_archiver.rules")

RULE_KEYS = ("name", "action", "retention", "tags")
_RESERVED_NAMES = (DEFAULT_RULE, ERROR_RULE)


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled ``[[rules]]`` table.

    Its conditions are split by whether they depend on the recipient: the others are
    evaluated once per message and reused for every recipient.
    """

    name: str
    action: Action
    message_conditions: tuple[Condition, ...]
    recipient_conditions: tuple[Condition, ...]
    retention: str | None
    tags: tuple[str, ...]
    description: str  # the conditions in words, for ``rules check``


# Per-message cache of a rule's recipient-independent conditions: None not yet evaluated,
# False no match, else the reasons they hold.
_Shared = list[str] | Literal[False] | None


def _test_all(conditions: tuple[Condition, ...], facts: Facts) -> list[str] | Literal[False]:
    reasons: list[str] = []
    for condition in conditions:
        reason = condition.test(facts)
        if reason is None:
            return False
        reasons.append(reason)
    return reasons


class Policy:
    """Decides per envelope recipient whether a message is archived.

    Immutable once built except for the decision counters, which are guarded by a lock, so
    one policy serves every SMTP session and thread.
    """

    def __init__(
        self, rules: Sequence[Rule], default_action: Action, local_domains: Sequence[str] = ()
    ) -> None:
        self._rules = tuple(rules)
        self.default_action: Action = default_action
        self.local_domains = tuple(d.lower().lstrip("@").rstrip(".") for d in local_domains)
        self._default_reason = f"no rule matched: default {default_action}"
        self._lock = threading.Lock()
        self._counts = dict.fromkeys((*(r.name for r in self._rules), *_RESERVED_NAMES), 0)

    @property
    def rules(self) -> tuple[str, ...]:
        """Rule names in evaluation order."""
        return tuple(r.name for r in self._rules)

    @property
    def compiled_rules(self) -> tuple[Rule, ...]:
        return self._rules

    def counts(self) -> dict[str, int]:
        """Decisions (one per recipient) by rule name, plus ``default`` and ``error``."""
        with self._lock:
            return dict(self._counts)

    def direction(self, sender: str, recipient: str) -> str | None:
        """``inbound``/``outbound``/``internal``/``external`` as ``direction`` sees it.

        None without local domains or without a recipient.
        """
        facts = Facts(
            ParsedMessage(size=0, headers=[]), Envelope(sender, (recipient,)), self.local_domains
        )
        facts.set_recipient(recipient)
        return facts.direction

    def decide(self, parsed: ParsedMessage, envelope: Envelope, *, count: bool = True) -> Verdict:
        """One decision per envelope recipient. Never raises.

        If evaluation fails on some odd input the message is archived for that recipient
        (and counted as ``error``): skipping mail by accident cannot be undone, archiving
        one message too many can.
        """
        recipients = tuple(envelope.recipients) or ("",)
        try:
            facts = Facts(parsed, envelope, self.local_domains)
        except Exception as exc:
            results = [self._failed(r, exc) for r in recipients]
        else:
            cache: list[_Shared] = [None] * len(self._rules)
            results = [self._decide_one(facts, r, cache) for r in recipients]
        if count:
            with self._lock:
                for _, key in results:
                    self._counts[key] += 1
        return Verdict(tuple(d for d, _ in results))

    def _decide_one(
        self, facts: Facts, recipient: str, cache: list[_Shared]
    ) -> tuple[Decision, str]:
        """The decision for ``recipient`` and the counter it goes to."""
        try:
            facts.set_recipient(recipient)
            for i, rule in enumerate(self._rules):
                shared = cache[i]
                if shared is None:
                    shared = cache[i] = _test_all(rule.message_conditions, facts)
                if shared is False:
                    continue
                own = _test_all(rule.recipient_conditions, facts)
                if own is False:
                    continue
                decision = Decision(
                    recipient,
                    rule.action,
                    rule.name,
                    " and ".join(shared + own),
                    rule.retention,
                    rule.tags,
                )
                return decision, rule.name
        except Exception as exc:
            return self._failed(recipient, exc)
        return Decision(recipient, self.default_action, None, self._default_reason), DEFAULT_RULE

    @staticmethod
    def _failed(recipient: str, exc: Exception) -> tuple[Decision, str]:
        log.exception("rule evaluation failed for recipient %r; archiving", recipient)
        reason = f"rule evaluation failed ({type(exc).__name__}: {exc}): archived to be safe"
        return Decision(recipient, "archive", None, reason), ERROR_RULE


def compile_policy(config: Config) -> Policy:
    """The policy of ``config``; raises ``ConfigError`` naming file, line and key."""
    source = config.source
    local_domains = config.archive.local_domains
    parser = ConditionParser(source, local_domains=local_domains, presets=load_preset)
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(config.rules):
        rule = compile_rule(table, ("rules", index), parser, source)
        if rule.name in seen:
            raise source.error(
                ("rules", index, "name"),
                f"duplicate rule name {rule.name!r} (also rules[{seen[rule.name]}])",
            )
        seen[rule.name] = index
        rules.append(rule)
    default = config.archive.default_action
    if default not in ACTIONS:
        raise source.error(("archive", "default"), 'must be "archive" or "skip"')
    action: Action = "archive" if default == "archive" else "skip"
    return Policy(rules, action, local_domains)


def compile_rule(
    table: Mapping[str, Any], path: tuple[str | int, ...], parser: ConditionParser, source: Source
) -> Rule:
    """One ``[[rules]]`` table; ``path`` is where it is in the config, for errors."""
    known = (*RULE_KEYS, *CONDITION_KEYS)
    for key in table:
        if key not in known:
            raise unknown_key(source, path, key, known)
    name = _name(table, path, source)
    if "action" not in table:
        raise source.error(path, f'rule {name!r} needs action = "archive" or "skip"')
    action_value = table["action"]
    if action_value not in ACTIONS:
        raise source.error((*path, "action"), f'must be "archive" or "skip", not {action_value!r}')
    action: Action = "archive" if action_value == "archive" else "skip"
    retention = table.get("retention")
    tags = table.get("tags", [])
    if action == "skip":
        for key in ("retention", "tags"):
            if key in table:
                raise source.error(
                    (*path, key),
                    f'only an action = "archive" rule keeps mail, so {key} has no meaning here',
                )
    if retention is not None:
        try:
            check_retention(retention)
        except ValueError as exc:
            raise source.error((*path, "retention"), str(exc)) from None
    if not isinstance(tags, list) or not all(
        isinstance(t, str) and t.strip() and t.isprintable() for t in tags
    ):
        raise source.error((*path, "tags"), f"must be a list of non-empty strings, not {tags!r}")
    conditions = parser.conditions(table, path, other_keys=RULE_KEYS)
    if not conditions:
        raise source.error(
            path,
            f"rule {name!r} has no condition (give a preset or one of "
            f"{', '.join(k for k in CONDITION_KEYS if k != 'preset')}); to "
            "decide for all mail, set [archive] default instead",
        )
    return Rule(
        name=name,
        action=action,
        message_conditions=tuple(c for c in conditions if not c.per_recipient),
        recipient_conditions=tuple(c for c in conditions if c.per_recipient),
        retention=retention,
        tags=tuple(tags),
        description=" and ".join(c.description for c in conditions),
    )


def _name(table: Mapping[str, Any], path: tuple[str | int, ...], source: Source) -> str:
    name = table.get("name")
    if "name" not in table:
        raise source.error(
            path, "rule needs a name (it is shown in X-Archive-Status and counted in metrics)"
        )
    if not isinstance(name, str) or not name.strip():
        raise source.error((*path, "name"), f"must be a non-empty string, not {name!r}")
    if not name.isprintable():
        raise source.error((*path, "name"), "must not contain control characters or line breaks")
    if name in _RESERVED_NAMES:
        raise source.error(
            (*path, "name"), f"{name!r} is reserved (it counts decisions made without a rule)"
        )
    return name
