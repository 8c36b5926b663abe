"""What ``postfix-archiver rules test`` and ``rules check`` print; the CLI only calls these."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..config import Config
from ..envelope import Envelope
from ..message import parse_message
from .policy import Policy, compile_policy
from .presets import preset_info, preset_names
from .verdict import Verdict


def evaluate_raw(
    policy: Policy,
    raw: bytes,
    sender: str,
    recipients: Sequence[str],
    client_address: str | None = None,
) -> Verdict:
    """Decide for ``raw`` as if Postfix handed it over with this envelope (not counted)."""
    envelope = Envelope(sender=sender, recipients=tuple(recipients), client_address=client_address)
    return policy.decide(parse_message(raw), envelope, count=False)


def format_verdict(verdict: Verdict) -> str:
    """One line per recipient: decision, rule and reason; then the status header."""
    lines = []
    for d in verdict.decisions:
        who = d.recipient or "(no recipient)"
        rule = f'rule "{d.rule}"' if d.rule is not None else "default"
        extra = ""
        if d.retention:
            extra += f" retention={d.retention}"
        if d.tags:
            extra += f" tags={','.join(d.tags)}"
        lines.append(f"{who}: {d.action} by {rule}{extra}: {d.reason}")
    lines.append(f"X-Archive-Status: {verdict.status_header()}")
    return "\n".join(lines)


def verdict_json(verdict: Verdict) -> str:
    return json.dumps(verdict.to_json(), indent=2, ensure_ascii=False)


def check_rules(config: Config) -> Policy:
    """Compile the rules of ``config``; raises ``ConfigError`` on the first problem."""
    return compile_policy(config)


def format_policy(policy: Policy) -> str:
    """The rules in evaluation order, for ``rules check``."""
    lines = [
        f"{len(policy.rules)} rule(s), default {policy.default_action}, local domains: "
        f"{', '.join(policy.local_domains) or '(none)'}"
    ]
    for i, rule in enumerate(policy.compiled_rules, start=1):
        extra = f" retention={rule.retention}" if rule.retention else ""
        if rule.tags:
            extra += f" tags={','.join(rule.tags)}"
        lines.append(f"{i:3}. {rule.name}: {rule.action}{extra} if {rule.description}")
    lines.append(f"  *. otherwise {policy.default_action}")
    return "\n".join(lines)


def format_presets() -> str:
    lines = []
    for name in preset_names():
        info = preset_info(name)
        lines.append(f"{name}: {info.description}")
        lines.append(f"    matches: {', '.join(dict.fromkeys(info.labels))}")
    return "\n".join(lines)
