"""The shipped presets on real-looking mail, and on ordinary mail they must leave alone."""

from __future__ import annotations

import pytest
from rules_helpers import SAMPLES, build_message, decide, make_policy

from postfix_archiver.errors import ConfigError
from postfix_archiver.rules import Decision, Policy, load_preset, preset_info, preset_names
from postfix_archiver.rules.presets import compile_preset_text


# A neutral envelope (an ordinary local sender to a team address), so that what is tested
# is the message itself; the envelope branches have their own tests below.
def _neutral(policy: Policy, raw: bytes) -> Decision:
    return decide(policy, raw, "ops@example.com", ("admins@example.com",)).decisions[0]


EXPECTED = {
    # sample: (system-mail label or None, auto-replies, bulk)
    "debian-cron": ("cron output", False, False),
    "cronie": ("cron output", False, True),  # cronie also sets Precedence: bulk
    "logwatch": ("logwatch report", False, False),
    "freebsd-security": ("periodic report", False, False),
    "freebsd-daily": ("periodic report", False, False),
    "rkhunter": ("security report", False, False),
    "apticron": ("package report", False, False),
    "unattended-upgrades": ("package report", False, False),
    "postfix-bounce": ("bounce", True, False),  # Postfix marks bounces auto-replied
    "sieve-vacation": (None, True, True),  # Pigeonhole adds Precedence: bulk
    "exchange-oof": (None, True, False),
    "oof-french": (None, True, False),
    "mailman-post": (None, False, True),
    "newsletter": (None, False, True),
    "business": (None, False, False),
    "business-oof-words": (None, False, False),
}


def _preset_policy(name: str) -> Policy:
    return make_policy(f'[[rules]]\nname = "p"\npreset = "{name}"\naction = "skip"\n')


def test_every_sample_has_expectations() -> None:
    assert set(EXPECTED) == set(SAMPLES)


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_system_mail(sample: str) -> None:
    label = EXPECTED[sample][0]
    d = _neutral(_preset_policy("system-mail"), SAMPLES[sample])
    if label is None:
        assert d.action == "archive", d.reason
    else:
        assert d.action == "skip"
        assert d.reason.startswith(f"preset system-mail ({label}): "), d.reason


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_auto_replies(sample: str) -> None:
    d = _neutral(_preset_policy("auto-replies"), SAMPLES[sample])
    assert (d.action == "skip") is EXPECTED[sample][1], d.reason


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_bulk(sample: str) -> None:
    d = _neutral(_preset_policy("bulk"), SAMPLES[sample])
    assert (d.action == "skip") is EXPECTED[sample][2], d.reason


@pytest.mark.parametrize(
    ("subject", "label"),
    [
        ("Anacron job 'cron.daily' on web1.example.com", "cron output"),
        ("obsd.example.org daily insecurity output", "periodic report"),
        ("obsd.example.org weekly output", "periodic report"),
        ("*** SECURITY information for web1.example.com ***", "security report"),
        ("[Fail2Ban] sshd: banned 203.0.113.9 from web1", "security report"),
        ("web1 2024-03-05 10:02 Security Events for su", "security report"),
        ("Daily AIDE report for web1.example.com", "security report"),
        ("SMART error (CurrentPendingSector) detected on host: db1", "hardware alert"),
        ("DegradedArray event on /dev/md/0:db1", "hardware alert"),
    ],
)
def test_system_mail_subjects(subject: str, label: str) -> None:
    d = _neutral(_preset_policy("system-mail"), build_message(subject=subject))
    assert d.reason.startswith(f"preset system-mail ({label}): ")


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Cron <root@web1> output looks wrong",  # a person replying to cron mail
        "Logwatch for the new servers?",
        "Fwd: [rkhunter] Warnings found for db1",
        "Our daily run output meeting",
        "SMART goals for 2024",
    ],
)
def test_system_mail_leaves_people_alone(subject: str) -> None:
    d = _neutral(_preset_policy("system-mail"), build_message(subject=subject))
    assert d.action == "archive", d.reason


@pytest.mark.parametrize(
    ("sender", "recipient", "label"),
    [
        ("root@web1.example.com", "alice@example.com", "system sender"),
        ("Postmaster@example.com", "alice@example.com", "system sender"),
        ("MAILER-DAEMON@mail.example.com", "alice@example.com", "system sender"),
        ("alice@example.com", "root@example.com", "mail to root"),
    ],
)
def test_system_mail_envelope(sender: str, recipient: str, label: str) -> None:
    d = decide(
        _preset_policy("system-mail"),
        build_message(),
        sender=sender,
        recipients=(recipient,),
    ).decisions[0]
    assert d.reason.startswith(f"preset system-mail ({label}): ")


def test_bounce_by_null_sender_and_dsn() -> None:
    # From header rewritten by a relay: the DSN content type with the null sender still counts.
    raw = SAMPLES["postfix-bounce"].replace(
        b"From: MAILER-DAEMON@mail.example.com (Mail Delivery System)",
        b"From: Mail Gateway <gw@example.com>",
    )
    policy = _preset_policy("system-mail")
    assert (
        decide(policy, raw, sender="", recipients=("alice@example.com",))
        .decisions[0]
        .reason.startswith("preset system-mail (bounce): null sender and header Content-Type")
    )
    # a read receipt (disposition-notification) is not a bounce
    receipt = raw.replace(b"report-type=delivery-status", b"report-type=disposition-notification")
    assert decide(policy, receipt, sender="", recipients=("alice@example.com",)).archive


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Contract",
        "Out of Office AutoReply: Contract",
        "AutoReply: Contract",
        "Auto-Response: Contract",
        "Abwesenheitsnotiz: Angebot",
        "Automatische Antwort: Angebot",
        "Respuesta automática: Oferta",
    ],
)
def test_auto_reply_subjects(subject: str) -> None:
    assert not decide(_preset_policy("auto-replies"), build_message(subject=subject)).archive


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Autoreply", "yes")],
        [("X-Autorespond", "Away")],
        [("Precedence", "auto_reply")],
        [("Auto-Submitted", "auto-notified")],
    ],
)
def test_auto_reply_headers(headers: list[tuple[str, str]]) -> None:
    assert not decide(_preset_policy("auto-replies"), build_message(headers=headers)).archive


def test_auto_generated_is_not_an_auto_reply() -> None:
    raw = build_message(headers=[("Auto-Submitted", "auto-generated")])
    assert decide(_preset_policy("auto-replies"), raw).archive


@pytest.mark.parametrize(
    ("headers", "skipped"),
    [
        ([("Precedence", "junk")], True),
        ([("Precedence", "first-class")], False),
        ([("X-Mailing-List", "<debian-user@lists.debian.org>")], True),
        ([("Mailing-List", "contact qmail-help@list.cr.yp.to; run by ezmlm")], True),
    ],
)
def test_bulk_headers(headers: list[tuple[str, str]], skipped: bool) -> None:
    assert decide(_preset_policy("bulk"), build_message(headers=headers)).archive is not skipped


def test_presets_are_listed_and_described() -> None:
    assert set(preset_names()) >= {"system-mail", "auto-replies", "bulk"}
    for name in preset_names():
        info = preset_info(name)
        assert info.description
        assert info.labels
        assert load_preset(name).name == name


def test_unknown_preset_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="system-mail"):
        load_preset("sytem-mail")


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        (
            'description = "d"\n\n[[any]]\nlabel = "a"\nheader = { Subject = "(" }\n',
            5,
            "any[0].header.Subject",
            "bad regular expression",
        ),
        ('description = "d"\n\n[[any]]\nsender = "root@"\n', 3, "any[0]", "needs a label"),
        (
            'description = "d"\n\n[[any]]\nlabel = "a"\npreset = "bulk"\n',
            5,
            "any[0].preset",
            "a preset cannot use another preset",
        ),
        (
            'description = "d"\n\n[[any]]\nlabel = "a"\ndirection = "inbound"\n',
            5,
            "any[0].direction",
            "needs [archive] local_domains",
        ),
        ('description = "d"\nmatch = []\n', 2, "match", "unknown key"),
        ('[[any]]\nlabel = "a"\nsender = "root@"\n', None, "description", "needs a description"),
    ],
)
def test_preset_file_errors_name_file_and_line(
    text: str, line: int | None, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        compile_preset_text("x", text, "presets/x.toml")
    assert (info.value.path, info.value.line, info.value.key) == ("presets/x.toml", line, key)
    assert reason in info.value.reason
