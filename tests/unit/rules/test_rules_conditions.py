"""Every condition kind, through a policy compiled from config text as an operator writes it."""

from __future__ import annotations

from typing import Any

import pytest
from rules_helpers import SAMPLES, build_message, decide, make_policy

from postfix_archiver.rules import Policy


def _skips(policy: Policy, raw: bytes, **kw: Any) -> bool:
    """The decision for the single recipient is skip (by rule "r")."""
    d = decide(policy, raw, **kw).decisions[0]
    return d.action == "skip" and d.rule == "r"


def _rule(conditions: str) -> str:
    return f'[[rules]]\nname = "r"\naction = "skip"\n{conditions}\n'


# --- sender / recipient address patterns ------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "address", "expected"),
    [
        ('"alice@example.com"', "Alice@Example.COM", True),
        ('"alice@example.com"', "alice@example.org", False),
        ('"root@"', "root@any.host.example", True),
        ('"root@"', "rootkit@example.com", False),
        ('"@example.com"', "bob@example.com", True),
        ('"@example.com"', "bob@mail.example.com", True),  # subdomains are included
        ('"@example.com"', "bob@badexample.com", False),  # but not look-alike domains
        ('"@example.com"', "bob@example.com.evil.test", False),
        ('"*@example.com"', "bob@mail.example.com", False),  # a glob is exact
        ('"*@*.example.com"', "bob@mail.example.com", True),
        ('"*@*.example.com"', "bob@example.com", False),
        ('"cron-?@example.com"', "cron-1@example.com", True),
        ('"cron-?@example.com"', "cron-12@example.com", False),
        ('"u@[192.0.2.1]"', "u@[192.0.2.1]", True),  # '[' is literal, not a glob class
        ('"re:^backup-\\\\d+@"', "backup-42@example.com", True),
        ('"re:^backup-\\\\d+@"', "my-backup-42@example.com", False),
        ('"re:EXAMPLE\\\\.com$"', "x@example.com", True),  # regexes ignore case
        ('["nobody@", "@partner.example"]', "bob@partner.example", True),
    ],
)
def test_sender_patterns(pattern: str, address: str, expected: bool) -> None:
    policy = make_policy(_rule(f"sender = {pattern}"))
    assert _skips(policy, build_message(), sender=address) is expected


def test_sender_with_angle_brackets_is_normalised() -> None:
    policy = make_policy(_rule('sender = "bob@partner.example"'))
    assert _skips(policy, build_message(), sender="<Bob@Partner.Example>")


def test_null_sender_never_matches_sender_patterns() -> None:
    policy = make_policy(_rule('sender = ["re:.*", "*@*"]'))
    assert not _skips(policy, build_message(), sender="")
    assert not _skips(policy, build_message(), sender="MAILER-DAEMON")
    assert _skips(policy, build_message(), sender="a@b.example")


def test_recipient_patterns_apply_to_each_recipient() -> None:
    policy = make_policy(_rule('recipient = "@hr.example.com"'))
    verdict = decide(
        policy, build_message(), recipients=("a@hr.example.com", "b@sales.example.com")
    )
    assert [d.action for d in verdict.decisions] == ["skip", "archive"]
    assert verdict.decisions[0].reason == ('recipient "a@hr.example.com" matches "@hr.example.com"')


def test_sender_reason_names_the_pattern() -> None:
    policy = make_policy(_rule('sender = ["nobody@", "root@*"]'))
    d = decide(policy, build_message(), sender="root@web1.example.com").decisions[0]
    assert d.reason == 'sender "root@web1.example.com" matches "root@*"'


# --- header ------------------------------------------------------------------------------


def test_header_regex_is_searched_ignoring_case() -> None:
    policy = make_policy(_rule('header = { Subject = "invoice" }'))
    assert _skips(policy, build_message(subject="Your INVOICE for March"))
    assert not _skips(policy, build_message(subject="Your bill for March"))


def test_header_name_is_case_insensitive() -> None:
    policy = make_policy(_rule('header = { "x-spam-flag" = "^yes$" }'))
    assert _skips(policy, build_message(headers=[("X-Spam-Flag", "YES")]))


@pytest.mark.parametrize("pattern", ['""', '".*"'])
def test_header_presence(pattern: str) -> None:
    policy = make_policy(_rule(f"header = {{ X-Cron-Env = {pattern} }}"))
    assert _skips(policy, build_message(headers=[("X-Cron-Env", "<SHELL=/bin/sh>")]))
    assert _skips(policy, build_message(headers=[("X-Cron-Env", "")]))
    assert not _skips(policy, build_message())


def test_header_matches_any_of_repeated_headers() -> None:
    policy = make_policy(_rule('header = { Received = "from mx\\\\.partner\\\\.example" }'))
    raw = build_message(
        headers=[
            ("Received", "from localhost by mail.example.com"),
            ("Received", "from mx.partner.example by mail.example.com"),
        ]
    )
    assert _skips(policy, raw)


def test_header_is_matched_decoded() -> None:
    policy = make_policy(_rule('header = { Subject = "^Réponse automatique" }'))
    raw = build_message(subject="=?iso-8859-1?q?R=E9ponse_automatique_:_x?=")
    assert _skips(policy, raw)


def test_header_folded_value_is_one_line() -> None:
    policy = make_policy(_rule('header = { Subject = "quarterly report$" }'))
    assert _skips(policy, build_message(subject="The\r\n quarterly report"))


def test_header_table_needs_every_name() -> None:
    policy = make_policy(_rule('header = { Subject = "^report", X-Mailer = "reportgen" }'))
    assert _skips(policy, build_message(subject="report 1", headers=[("X-Mailer", "reportgen")]))
    assert not _skips(policy, build_message(subject="report 1"))
    assert not _skips(policy, build_message(subject="hello", headers=[("X-Mailer", "reportgen")]))


def test_header_list_of_tables_needs_any() -> None:
    policy = make_policy(_rule('header = [{ List-Id = "" }, { Precedence = "^bulk$" }]'))
    assert _skips(policy, build_message(headers=[("List-Id", "<a.lists.example>")]))
    assert _skips(policy, build_message(headers=[("Precedence", "bulk")]))
    assert not _skips(policy, build_message(headers=[("Precedence", "bulky")]))


def test_header_list_of_regexes_needs_any() -> None:
    policy = make_policy(_rule('header = { Precedence = ["^bulk$", "^junk$"] }'))
    assert _skips(policy, build_message(headers=[("Precedence", "junk")]))
    assert not _skips(policy, build_message(headers=[("Precedence", "list")]))


def test_header_reason_shows_value_and_pattern() -> None:
    policy = make_policy(_rule('header = { Subject = "^Cron <" }'))
    d = decide(policy, build_message(subject="Cron <root@h> ls")).decisions[0]
    assert d.reason == 'header Subject "Cron <root@h> ls" matches "^Cron <"'


# --- direction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "recipient", "direction"),
    [
        ("bob@partner.example", "alice@example.com", "inbound"),
        ("alice@example.com", "bob@partner.example", "outbound"),
        ("alice@example.com", "carol@hr.example.com", "internal"),  # subdomain is local
        ("bob@partner.example", "dave@customer.example", "external"),
        ("alice@badexample.com", "carol@example.com", "inbound"),
        ("", "alice@example.com", "inbound"),  # a bounce to a local user
        ("", "bob@partner.example", "outbound"),
        ("root", "alice@example.com", "internal"),  # locally submitted, no domain
    ],
)
def test_direction(sender: str, recipient: str, direction: str) -> None:
    policy = make_policy(_rule(f'direction = "{direction}"'))
    assert policy.direction(sender, recipient) == direction
    assert _skips(policy, build_message(), sender=sender, recipients=(recipient,))
    others = [d for d in ("inbound", "outbound", "internal", "external") if d != direction]
    other_policy = make_policy(_rule(f"direction = {others!r}".replace("'", '"')))
    assert not _skips(other_policy, build_message(), sender=sender, recipients=(recipient,))


def test_direction_is_per_recipient() -> None:
    policy = make_policy(_rule('direction = "internal"'))
    verdict = decide(
        policy,
        build_message(),
        sender="alice@example.com",
        recipients=("bob@partner.example", "carol@example.com"),
    )
    assert [d.action for d in verdict.decisions] == ["archive", "skip"]
    assert verdict.archived_recipients == ("bob@partner.example",)


def test_direction_never_matches_without_recipients() -> None:
    policy = make_policy(_rule('direction = ["inbound", "outbound", "internal", "external"]'))
    assert not _skips(policy, build_message(), recipients=())


# --- size ----------------------------------------------------------------------------------


def test_size_over_and_under() -> None:
    over = make_policy(_rule('size_over = "1k"'))
    under = make_policy(_rule("size_under = 1024"))
    small = build_message(body="x" * 100)
    big = build_message(body="x" * 2000)
    assert not _skips(over, small)
    assert _skips(over, big)
    assert _skips(under, small)
    assert not _skips(under, big)


def test_size_limits_are_strict() -> None:
    raw = build_message()
    exact = len(raw)
    assert not _skips(make_policy(_rule(f"size_over = {exact}")), raw)
    assert _skips(make_policy(_rule(f"size_over = {exact - 1}")), raw)
    assert not _skips(make_policy(_rule(f"size_under = {exact}")), raw)
    assert _skips(make_policy(_rule(f"size_under = {exact + 1}")), raw)


def test_size_window() -> None:
    policy = make_policy(_rule('size_over = "1k"\nsize_under = "2k"'))
    assert _skips(policy, build_message(body="x" * 1500))
    assert not _skips(policy, build_message(body="x" * 2500))


# --- null_sender ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "is_null"),
    [
        ("", True),
        ("<>", True),
        ("MAILER-DAEMON", True),
        ("mailer-daemon@example.com", False),
        ("alice@example.com", False),
    ],
)
def test_null_sender(sender: str, is_null: bool) -> None:
    assert (
        _skips(make_policy(_rule("null_sender = true")), build_message(), sender=sender) is is_null
    )
    assert (
        _skips(make_policy(_rule("null_sender = false")), build_message(), sender=sender)
        is not is_null
    )


# --- client --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("192.0.2.77", True),
        ("[192.0.2.77]", True),
        ("10.1.2.3", True),
        ("10.1.2.4", False),
        ("198.51.100.1", False),
        ("2001:db8::25", True),
        ("IPv6:2001:db8::25", True),  # how XFORWARD ADDR spells IPv6
        ("::ffff:192.0.2.9", True),  # IPv4-mapped
        ("2001:db9::1", False),
        ("fe80::1%eth0", False),
        ("unknown", False),
        (None, False),
        ("not an address", False),
    ],
)
def test_client(client: str | None, expected: bool) -> None:
    policy = make_policy(_rule('client = ["192.0.2.0/24", "10.1.2.3", "2001:db8::/32"]'))
    assert _skips(policy, build_message(), client=client) is expected


def test_client_reason() -> None:
    policy = make_policy(_rule('client = "192.0.2.0/24"'))
    assert decide(policy, build_message(), client="IPv6:::ffff:192.0.2.1").decisions[0].reason == (
        "client 192.0.2.1 in 192.0.2.0/24"
    )


# --- not / any / preset combinations -------------------------------------------------------


def test_not_negates_a_table() -> None:
    policy = make_policy(_rule('recipient = "@example.com"\nnot = { sender = "@example.com" }'))
    inbound = decide(
        policy, build_message(), sender="bob@partner.example", recipients=("alice@example.com",)
    )
    internal = decide(
        policy, build_message(), sender="carol@example.com", recipients=("alice@example.com",)
    )
    assert inbound.decisions[0].action == "skip"
    assert 'not (sender "@example.com")' in inbound.decisions[0].reason
    assert internal.decisions[0].action == "archive"


def test_not_table_fails_only_when_all_of_it_holds() -> None:
    policy = make_policy(_rule('not = { sender = "root@", size_over = "1k" }'))
    assert _skips(policy, build_message(), sender="root@h.example")  # small
    assert not _skips(policy, build_message(body="x" * 2000), sender="root@h.example")


def test_not_list_means_none_of_them() -> None:
    policy = make_policy(_rule('not = [{ sender = "root@" }, { sender = "cron@" }]'))
    assert not _skips(policy, build_message(), sender="root@h.example")
    assert not _skips(policy, build_message(), sender="cron@h.example")
    assert _skips(policy, build_message(), sender="alice@example.com")


def test_any_list() -> None:
    policy = make_policy(_rule('any = [{ sender = "root@" }, { size_over = "1k" }]'))
    assert _skips(policy, build_message(), sender="root@h.example")
    assert _skips(policy, build_message(body="x" * 2000))
    assert not _skips(policy, build_message())


def test_preset_with_other_conditions_needs_both() -> None:
    policy = make_policy(_rule('preset = "bulk"\nrecipient = "@lists.example.com"'))
    post = SAMPLES["mailman-post"]
    assert _skips(policy, post, recipients=("x@lists.example.com",))
    assert not _skips(policy, post, recipients=("x@example.com",))
    assert not _skips(policy, SAMPLES["business"], recipients=("x@lists.example.com",))


def test_not_preset() -> None:
    policy = make_policy(
        '[[rules]]\nname = "people"\naction = "archive"\n'
        'not = { preset = ["system-mail", "bulk"] }\n',
        default="skip",
    )
    assert decide(policy, SAMPLES["business"]).archive
    assert not decide(policy, SAMPLES["mailman-post"]).archive
    assert not decide(policy, SAMPLES["logwatch"]).archive


def test_all_conditions_of_a_rule_must_hold() -> None:
    policy = make_policy(
        _rule('sender = "root@"\nheader = { Subject = "^Cron" }\nnull_sender = false')
    )
    assert _skips(policy, build_message(subject="Cron <root@h> x"), sender="root@h.example")
    assert not _skips(policy, build_message(subject="Hello"), sender="root@h.example")
    assert not _skips(policy, build_message(subject="Cron <root@h> x"), sender="a@h.example")
    d = decide(policy, build_message(subject="Cron <root@h> x"), sender="root@h.example").decisions[
        0
    ]
    assert d.reason.count(" and ") == 2
