"""What the policy decided: one ``Decision`` per envelope recipient, one ``Verdict`` per message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Action = Literal["archive", "skip"]
ACTIONS: tuple[Action, ...] = ("archive", "skip")

DEFAULT_RULE = "default"  # counts key and skip_rule value when no rule matched
ERROR_RULE = "error"  # counts key when evaluation failed and the message was kept

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")  # RFC 2045 token characters
_MAX_NAME = 200


def header_value(name: str) -> str:
    """``name`` safe inside a header: one 7-bit line, quoted unless it is a plain token.

    Rule names are checked when the config is loaded; this is the second line of defence,
    because a CR or LF here would let a config value inject headers into archived mail.
    """
    text = _UNSAFE.sub(" ", name).strip()
    text = text.encode("ascii", "replace").decode("ascii")[:_MAX_NAME]
    if _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one envelope recipient.

    ``rule`` is None when no rule matched and the default action applied; ``reason`` says
    in words which condition made the decision.
    """

    recipient: str
    action: Action
    rule: str | None
    reason: str
    retention: str | None = None
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "retention": self.retention,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decisions for every recipient of one message.

    The message is archived if any recipient's decision is ``archive``, and only those
    recipients are recorded with it. A message without envelope recipients has one
    decision for the recipient ``""``; it is archived or skipped by that decision and has no
    archived recipients.
    """

    decisions: tuple[Decision, ...]

    @property
    def archive(self) -> bool:
        return any(d.action == "archive" for d in self.decisions)

    @property
    def archived_recipients(self) -> tuple[str, ...]:
        return tuple(d.recipient for d in self.decisions if d.action == "archive" and d.recipient)

    @property
    def skip_rule(self) -> str | None:
        """The rule that skipped the whole message (the first recipient's), else None."""
        if self.archive:
            return None
        first = self.decisions[0].rule if self.decisions else None
        return first or DEFAULT_RULE

    def status_header(self) -> str:
        """The ``X-Archive-Status`` value: ``Archived`` or ``Skipped; rule=NAME``."""
        skip_rule = self.skip_rule
        if skip_rule is None:
            return "Archived"
        return f"Skipped; rule={header_value(skip_rule)}"

    def to_json(self) -> dict[str, object]:
        return {
            "archive": self.archive,
            "status": self.status_header(),
            "skip_rule": self.skip_rule,
            "archived_recipients": list(self.archived_recipients),
            "decisions": [d.to_json() for d in self.decisions],
        }
