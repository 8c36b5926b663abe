"""First match, the default, per-recipient splitting, counts and the verdict's outward forms."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import build_message, decide, make_policy

from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import ParsedMessage, parse_message
from postfix_archiver.rules import Action, Decision, Policy, Verdict, compile_policy

HR_NOT_ROOT = """
[[rules]]
name = "never root"
recipient = "root@"
action = "skip"

[[rules]]
name = "hr"
recipient = "@hr.example.com"
action = "archive"
retention = "10y"
tags = ["hr", "personnel"]
"""


def test_first_matching_rule_decides() -> None:
    policy = make_policy("""
        [[rules]]
        name = "first"
        sender = "@example.com"
        action = "skip"

        [[rules]]
        name = "second"
        sender = "alice@example.com"
        action = "archive"
        """)
    d = decide(policy, build_message(), sender="alice@example.com").decisions[0]
    assert (d.rule, d.action) == ("first", "skip")
    assert policy.rules == ("first", "second")


def test_order_matters() -> None:
    policy = make_policy("""
        [[rules]]
        name = "second"
        sender = "alice@example.com"
        action = "archive"

        [[rules]]
        name = "first"
        sender = "@example.com"
        action = "skip"
        """)
    d = decide(policy, build_message(), sender="alice@example.com").decisions[0]
    assert (d.rule, d.action) == ("second", "archive")
    assert decide(policy, build_message(), sender="bob@example.com").decisions[0].rule == "first"


@pytest.mark.parametrize("default", ["archive", "skip"])
def test_default_applies_when_nothing_matches(default: Action) -> None:
    policy = make_policy(
        '[[rules]]\nname = "r"\nsender = "x@y.example"\naction = "skip"\n', default=default
    )
    d = decide(policy, build_message()).decisions[0]
    assert d == Decision(
        "bob@partner.example", default, None, f"no rule matched: default {default}"
    )


def test_message_to_hr_and_root_is_archived_for_hr_only() -> None:
    policy = make_policy(HR_NOT_ROOT, default="skip")
    verdict = decide(
        policy,
        build_message(),
        sender="bob@partner.example",
        recipients=("root@example.com", "jane@hr.example.com", "x@partner.example"),
    )
    assert verdict.archive
    assert verdict.archived_recipients == ("jane@hr.example.com",)
    assert [(d.recipient, d.action, d.rule) for d in verdict.decisions] == [
        ("root@example.com", "skip", "never root"),
        ("jane@hr.example.com", "archive", "hr"),
        ("x@partner.example", "skip", None),
    ]
    hr = verdict.decisions[1]
    assert (hr.retention, hr.tags) == ("10y", ("hr", "personnel"))
    assert verdict.status_header() == "Archived"
    assert verdict.skip_rule is None


def test_message_skipped_for_every_recipient() -> None:
    policy = make_policy(HR_NOT_ROOT, default="skip")
    verdict = decide(
        policy, build_message(), recipients=("root@example.com", "root@hr.example.com")
    )
    assert not verdict.archive
    assert verdict.archived_recipients == ()
    assert verdict.skip_rule == "never root"
    assert verdict.status_header() == 'Skipped; rule="never root"'


def test_skipped_by_default() -> None:
    verdict = decide(make_policy(HR_NOT_ROOT, default="skip"), build_message())
    assert verdict.skip_rule == "default"
    assert verdict.status_header() == "Skipped; rule=default"


def test_recipient_independent_results_are_reused_correctly() -> None:
    # the sender condition is evaluated once per message; the recipient part per recipient
    policy = make_policy(
        """
        [[rules]]
        name = "a"
        sender = "@partner.example"
        recipient = "sales@example.com"
        action = "skip"

        [[rules]]
        name = "b"
        sender = "@partner.example"
        action = "archive"
        tags = ["partner"]
        """,
        default="skip",
    )
    verdict = decide(
        policy,
        build_message(),
        sender="bob@partner.example",
        recipients=("sales@example.com", "ceo@example.com", "sales@example.com"),
    )
    assert [d.rule for d in verdict.decisions] == ["a", "b", "a"]
    other = decide(
        policy,
        build_message(),
        sender="eve@other.example",
        recipients=("sales@example.com", "ceo@example.com"),
    )
    assert [d.rule for d in other.decisions] == [None, None]


def test_no_recipients_decides_once_with_empty_recipient() -> None:
    policy = make_policy("""
        [[rules]]
        name = "to root"
        recipient = "re:.*"
        action = "skip"

        [[rules]]
        name = "root cron"
        sender = "root@"
        action = "skip"
        """)
    archived = decide(policy, build_message(), recipients=())
    assert [d.recipient for d in archived.decisions] == [""]
    assert archived.archive  # the recipient rule cannot match "", the default archives
    assert archived.archived_recipients == ()
    skipped = decide(policy, build_message(), sender="root@h.example", recipients=())
    assert skipped.skip_rule == "root cron"


def test_counts_per_rule_and_default() -> None:
    policy = make_policy(HR_NOT_ROOT)
    assert policy.counts() == {"never root": 0, "hr": 0, "default": 0, "error": 0}
    decide(
        policy, build_message(), recipients=("root@example.com", "a@hr.example.com", "b@x.example")
    )
    decide(policy, build_message(), recipients=("root@example.com",))
    assert policy.counts() == {"never root": 2, "hr": 1, "default": 1, "error": 0}


def test_decide_can_leave_counts_alone() -> None:
    policy = make_policy(HR_NOT_ROOT)
    policy.decide(
        parse_message(build_message()), Envelope("a@b.example", ("root@x.example",)), count=False
    )
    assert sum(policy.counts().values()) == 0


def test_counts_are_thread_safe() -> None:
    policy = make_policy(HR_NOT_ROOT)
    parsed = parse_message(build_message())
    envelope = Envelope("a@b.example", ("root@x.example", "c@hr.example.com", "d@e.example"))

    def work() -> None:
        for _ in range(500):
            policy.decide(parsed, envelope)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert policy.counts() == {"never root": 4000, "hr": 4000, "default": 4000, "error": 0}


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("system", "Skipped; rule=system"),
        ("system mail", 'Skipped; rule="system mail"'),
        ("a;b", 'Skipped; rule="a;b"'),
        ('say "hi"', 'Skipped; rule="say \\"hi\\""'),
        ("evil\r\nBcc: x@y", 'Skipped; rule="evil Bcc: x@y"'),
        ("Übersicht", 'Skipped; rule="?bersicht"'),
    ],
)
def test_status_header_is_safe(name: str, header: str) -> None:
    verdict = Verdict((Decision("a@b.example", "skip", name, "r"),))
    assert verdict.status_header() == header
    assert "\r" not in verdict.status_header()
    assert "\n" not in verdict.status_header()


def test_to_json_is_stable_and_serialisable() -> None:
    verdict = decide(
        make_policy(HR_NOT_ROOT),
        build_message(),
        recipients=("root@example.com", "a@hr.example.com"),
    )
    data = verdict.to_json()
    assert list(data) == ["archive", "status", "skip_rule", "archived_recipients", "decisions"]
    assert data["archived_recipients"] == ["a@hr.example.com"]
    decisions = data["decisions"]
    assert isinstance(decisions, list)
    assert decisions[0] == {
        "recipient": "root@example.com",
        "action": "skip",
        "rule": "never root",
        "reason": 'recipient "root@example.com" matches "root@"',
        "retention": None,
        "tags": [],
    }
    assert json.loads(json.dumps(data)) == data


def test_policy_without_rules_applies_the_default() -> None:
    policy = make_policy("", default="skip")
    assert policy.rules == ()
    assert decide(policy, build_message()).skip_rule == "default"


class _ExplodingHeaders(list[tuple[str, str]]):
    def __iter__(self) -> Iterator[tuple[str, str]]:
        raise RuntimeError("boom")


def test_evaluation_failure_archives_and_counts_error(caplog: pytest.LogCaptureFixture) -> None:
    policy = make_policy(HR_NOT_ROOT, default="skip")
    parsed = ParsedMessage(size=10, headers=_ExplodingHeaders())
    verdict = policy.decide(parsed, Envelope("a@b.example", ("root@example.com",)))
    assert verdict.archive
    assert verdict.decisions[0].rule is None
    assert "archived to be safe" in verdict.decisions[0].reason
    assert policy.counts()["error"] == 1
    assert "rule evaluation failed" in caplog.text


_ODD = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    [
        "",
        "<>",
        "@",
        "a@b@c",
        "root@",
        "<root@example.com>",
        "IPv6:",
        "IPv6:zz::1",
        "[",
        "%",
        "::ffff:192.0.2.1",
        "192.0.2.300",
        "fe80::1%eth0",
        "x@example.com.",
        "\x00",
        "\r\n",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    sender=_ODD,
    recipients=st.lists(_ODD, max_size=4),
    client=st.none() | _ODD,
    headers=st.lists(st.tuples(_ODD, _ODD), max_size=6),
    size=st.integers(min_value=0, max_value=10**10),
)
def test_decide_never_raises(
    sender: str,
    recipients: list[str],
    client: str | None,
    headers: list[tuple[str, str]],
    size: int,
) -> None:
    policy = _RICH
    envelope = Envelope(sender, tuple(recipients), client_address=client)
    verdict = policy.decide(ParsedMessage(size=size, headers=headers), envelope)
    assert len(verdict.decisions) == max(1, len(recipients))
    assert not any("evaluation failed" in d.reason for d in verdict.decisions)
    assert policy.counts()["error"] == 0
    verdict.status_header()
    json.dumps(verdict.to_json())


def _rich_policy() -> Policy:
    # one rule with every condition kind, and every preset, so odd input reaches them all
    text = """
[archive]
local_domains = ["example.com"]

[[rules]]
name = "everything"
sender = ["root@", "@example.com", "*x*", "re:^a"]
recipient = ["@example.com", "re:b$"]
header = [{ Subject = "x", From = "" }, { "X-Y" = "" }]
direction = ["inbound", "external"]
size_over = 10
size_under = "1G"
null_sender = false
client = ["192.0.2.0/24", "::/0"]
not = { preset = "bulk" }
action = "skip"

[[rules]]
name = "presets"
preset = ["system-mail", "auto-replies", "bulk"]
action = "skip"
"""
    return compile_policy(parse_config(text, "rich.toml"))


_RICH = _rich_policy()
