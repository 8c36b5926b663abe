"""The rules in the proxy: skipped mail is reinjected (stamped) but not archived."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from postfix_archiver.archive import Archive

from .capture_helpers import Listener, Proxy, archived, crlf, home_config, make_message

RULES = """
[[rules]]
name = "system mail"
preset = "system-mail"
action = "skip"

[[rules]]
name = "postmaster"
recipient = ["postmaster@*"]
action = "skip"
"""

CRON = crlf(
    "From: root@web1.example.com (Cron Daemon)\n"
    "To: admins@example.com\n"
    "Subject: Cron <root@web1> run-parts --report /etc/cron.daily\n"
    "X-Cron-Env: <SHELL=/bin/sh>\n"
    "Date: Mon, 4 Mar 2024 06:25:01 +0100\n"
    "Message-Id: <20240304052501.4F1D2C0A1B@web1.example.com>\n"
    "\n"
    "/etc/cron.daily/logrotate: ok\n"
)


def _proxy(
    tmp_path: Path, start_proxy: Callable[..., Proxy], listener: Listener
) -> tuple[Proxy, Archive]:
    config = home_config(tmp_path / "rules-home", RULES)
    archive = Archive(config)
    try:
        return start_proxy(listener.address, config=config, archive=archive), archive
    except BaseException:
        archive.close()
        raise


def test_skipped_mail_is_reinjected_stamped_and_not_archived(
    tmp_path: Path, start_proxy: Callable[..., Proxy], listener: Listener
) -> None:
    proxy, archive = _proxy(tmp_path, start_proxy, listener)
    try:
        code, text = proxy.send(CRON, "root@web1.example.com", ["admins@example.com"])
        assert code == 250, text
        assert text.startswith("2.0.0 Ok: skipped, queued as 4ReInJ1")
        assert archived(archive) == []
        got = listener.handler.messages[0]
        assert got.content == b'X-Archive-Status: Skipped; rule="system mail"\r\n' + CRON
        assert got.recipients == ["admins@example.com"]

        # the same proxy still archives ordinary mail
        code, text = proxy.send(make_message("business"))
        assert code == 250, text
        assert len(archived(archive)) == 1
    finally:
        proxy.close()
        archive.close()


def test_mixed_recipients_archive_only_the_kept_ones_and_reinject_to_all(
    tmp_path: Path, start_proxy: Callable[..., Proxy], listener: Listener
) -> None:
    proxy, archive = _proxy(tmp_path, start_proxy, listener)
    try:
        content = make_message("to a user and the postmaster", cc=None)
        recipients = ["bob@example.com", "postmaster@example.com"]

        code, text = proxy.send(content, "alice@example.com", recipients)

        assert code == 250, text
        (message,) = archived(archive)
        assert list(message.envelopes[0].envelope.recipients) == ["bob@example.com"]
        got = listener.handler.messages[0]
        assert got.recipients == recipients
        assert got.content.startswith(
            b"X-Archive-Status: Archived\r\nX-Archive-Id: %d\r\n" % message.row.id
        )
    finally:
        proxy.close()
        archive.close()


def test_default_skip_stamps_the_default_rule(
    tmp_path: Path, start_proxy: Callable[..., Proxy], listener: Listener
) -> None:
    config = home_config(tmp_path / "skip-home", "default = 'skip'\n")
    with Archive(config) as archive:
        proxy = start_proxy(listener.address, config=config, archive=archive)
        try:
            code, text = proxy.send(make_message("nobody wants this"))
        finally:
            proxy.close()
        assert code == 250, text
        assert archived(archive) == []
    assert listener.handler.messages[0].content.startswith(
        b"X-Archive-Status: Skipped; rule=default\r\nReceived: "
    )
