"""IMAP account URLs: what is read from them, and one clear error for anything else."""

from __future__ import annotations

import pytest

from postfix_archiver.errors import SourceError
from postfix_archiver.importers.imap_url import ImapUrl, is_imap_url, parse_imap_url


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "imaps://alice@mail.example.com/INBOX",
            ImapUrl("imaps", "alice", "mail.example.com", 993, "INBOX"),
        ),
        ("imap://alice@mail.example.com", ImapUrl("imap", "alice", "mail.example.com", 143, None)),
        ("IMAPS://a@h:10993/", ImapUrl("imaps", "a", "h", 10993, None)),
        # the user's own @ as is (the last @ ends the user) or as %40
        (
            "imaps://alice@example.com@mx.example.com/Sent",
            ImapUrl("imaps", "alice@example.com", "mx.example.com", 993, "Sent"),
        ),
        (
            "imaps://alice%40example.com@mx/Archive%2F2020",
            ImapUrl("imaps", "alice@example.com", "mx", 993, "Archive/2020"),
        ),
        ("imaps://a@h/Archive/2020", ImapUrl("imaps", "a", "h", 993, "Archive/2020")),
        ("imaps://a@h/%EB%B3%B4%EA%B4%80%ED%95%A8", ImapUrl("imaps", "a", "h", 993, "보관함")),
        ("imaps://a@[::1]:1993/INBOX", ImapUrl("imaps", "a", "::1", 1993, "INBOX")),
    ],
)
def test_parses(spec: str, expected: ImapUrl) -> None:
    assert is_imap_url(spec)
    assert parse_imap_url(spec) == expected


def test_account_names_no_secret() -> None:
    assert parse_imap_url("imaps://a@h:1/x").account == "imaps://a@h:1"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("imaps://mail.example.com/INBOX", "name the user"),
        ("imaps://@mail.example.com/INBOX", "name the user"),
        ("imaps://alice:hunter2@mail.example.com/INBOX", "no password in the URL"),
        ("imaps://a@h:99999/INBOX", "bad host or port"),
        ("imaps://a@h:-1/INBOX", "bad host or port"),
        ("imaps://a@h:٩٩٣/INBOX", "bad host or port"),
        ("imaps://a@h:" + "9" * 400 + "/INBOX", "bad host or port"),
        ("imaps://a@/INBOX", "no host name"),
        ("imaps://a@[::1/INBOX", "bad host or port"),
        ("imaps://a@h/\udcff\udcfe", "non-UTF-8"),
        ("imaps://a@h/%FF", "non-UTF-8"),
        ("imaps://a@h/IN%0D%0ABOX", "control"),
        ("imaps://a\r\nb@h/INBOX", "control"),
    ],
)
def test_refuses_with_the_fix(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message) as caught:
        parse_imap_url(spec)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "spec", ["/var/mail/alice", "imap:/x", "maildir://x", "imapx://a@h", "./imaps://a@h"]
)
def test_other_sources_are_not_imap(spec: str) -> None:
    assert not is_imap_url(spec)
