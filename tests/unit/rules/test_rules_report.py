"""What `rules test` and `rules check` print, from the functions the CLI calls."""

from __future__ import annotations

import json

from rules_helpers import SAMPLES, build_message, make_policy

from postfix_archiver.rules import (
    evaluate_raw,
    format_policy,
    format_presets,
    format_verdict,
    verdict_json,
)

RULES = """
[[rules]]
name = "system mail"
preset = "system-mail"
action = "skip"

[[rules]]
name = "hr"
recipient = "@hr.example.com"
action = "archive"
retention = "10y"
tags = ["hr"]
"""


def test_rules_test_output_names_rule_and_condition() -> None:
    policy = make_policy(RULES)
    verdict = evaluate_raw(
        policy,
        SAMPLES["debian-cron"],
        "deploy@web1.example.com",
        ["root@example.com", "jane@hr.example.com", "x@partner.example"],
    )
    lines = format_verdict(verdict).splitlines()
    assert lines == [
        'root@example.com: skip by rule "system mail": preset system-mail (mail to root): '
        'recipient "root@example.com" matches "root@"',
        'jane@hr.example.com: skip by rule "system mail": preset system-mail (cron output): '
        "header X-Cron-Env present",
        'x@partner.example: skip by rule "system mail": preset system-mail (cron output): '
        "header X-Cron-Env present",
        'X-Archive-Status: Skipped; rule="system mail"',
    ]


def test_rules_test_shows_retention_tags_and_default() -> None:
    policy = make_policy(RULES)
    verdict = evaluate_raw(
        policy,
        SAMPLES["business"],
        "alice@example.com",
        ["jane@hr.example.com", "bob@partner.example"],
    )
    assert format_verdict(verdict).splitlines() == [
        'jane@hr.example.com: archive by rule "hr" retention=10y tags=hr: '
        'recipient "jane@hr.example.com" matches "@hr.example.com"',
        "bob@partner.example: archive by default: no rule matched: default archive",
        "X-Archive-Status: Archived",
    ]


def test_rules_test_does_not_count() -> None:
    policy = make_policy(RULES)
    evaluate_raw(policy, SAMPLES["business"], "alice@example.com", ["a@hr.example.com"])
    assert sum(policy.counts().values()) == 0


def test_rules_test_uses_the_client() -> None:
    policy = make_policy('[[rules]]\nname = "scanner"\nclient = "192.0.2.0/24"\naction = "skip"\n')
    verdict = evaluate_raw(
        policy, build_message(), "a@b.example", ["c@example.com"], client_address="192.0.2.10"
    )
    assert verdict.skip_rule == "scanner"


def test_rules_test_json() -> None:
    verdict = evaluate_raw(make_policy(RULES), SAMPLES["business"], "alice@example.com", [])
    data = json.loads(verdict_json(verdict))
    assert data["archive"] is True
    assert data["archived_recipients"] == []
    assert data["decisions"][0]["recipient"] == ""
    assert format_verdict(verdict).startswith("(no recipient): archive by default")


def test_rules_check_lists_rules_in_order() -> None:
    text = format_policy(make_policy(RULES, default="skip"))
    assert text.splitlines() == [
        "2 rule(s), default skip, local domains: example.com",
        "  1. system mail: skip if preset system-mail",
        '  2. hr: archive retention=10y tags=hr if recipient "@hr.example.com"',
        "  *. otherwise skip",
    ]


def test_presets_listing() -> None:
    text = format_presets()
    assert "system-mail: " in text
    assert "matches: system sender, mail to root, cron output" in text
