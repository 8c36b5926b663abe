"""Faults of the Postfix side, against a real Postfix configured by ``postfix-config --apply``:
the reinjection smtpd hanging up on idle pooled connections (a short ``smtpd_timeout``), and
8-bit envelope addresses from a Postfix with ``smtputf8_enable = no``. The promise under test:
each message is delivered on the first try (no 451, no deferral) and archived once."""

from __future__ import annotations

import pwd
import smtplib
import sys
import threading
import time
from pathlib import Path

import pytest
from archiver_process import Archiver, archiver_cmd, wait_archived
from postfix_harness import PostfixInstance, SmtpSink
from test_postfix_capture import _chown_tree, _traversable_by_others, header, message

pytestmark = [pytest.mark.integration]
Mta = tuple[PostfixInstance, SmtpSink]

SMTPD_TIMEOUT = 2  # seconds; Postfix takes 1s at the least


def short_reinjection_timeout(postfix: PostfixInstance, arch: Archiver) -> None:
    """The reinjection smtpd hangs up on a client idle for SMTPD_TIMEOUT seconds."""
    postfix.postconf_master_param(
        f"127.0.0.1:{arch.reinject_port}/inet/smtpd_timeout={SMTPD_TIMEOUT}s"
    )
    postfix.reload()


def send_at_once(postfix: PostfixInstance, subjects: list[str]) -> list[str]:
    """Submit the messages in parallel, so the proxy reinjects them over several connections."""
    ids: list[str] = []

    def send(subject: str) -> None:
        raw, msgid = message(subject, cc=None)
        postfix.send(raw, "alice@example.com", ["bob@example.org"])
        ids.append(msgid)

    threads = [threading.Thread(target=send, args=(s,)) for s in subjects]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == len(subjects)
    return ids


def reinjection_log(postfix: PostfixInstance, what: str) -> list[str]:
    return [ln for ln in postfix.log_lines() if "archiver-reinject/smtpd" in ln and what in ln]


def assert_first_try(postfix: PostfixInstance, arch: Archiver, ids: list[str]) -> None:
    """Every message delivered and archived exactly once, none ever deferred."""
    log = "\n".join(postfix.log_lines())
    assert "status=deferred" not in log
    assert "status=bounced" not in log
    assert "reinjection failed" not in arch.log()
    page = wait_archived(arch, len(ids))
    assert page["total"] == len(ids)
    assert sorted("<" + r["message_id"] + ">" for r in page["results"]) == sorted(ids)
    arch.assert_each_archived_once(len(ids))
    postfix.wait_queue_empty(10)


def test_pooled_connections_the_reinjection_smtpd_timed_out_are_replaced(
    base: Path, mta: Mta
) -> None:
    postfix, sink = mta
    arch = Archiver(base)  # reinject_idle left at its default, far above SMTPD_TIMEOUT
    arch.configure_postfix(postfix, "--mode", "proxy")
    short_reinjection_timeout(postfix, arch)
    arch.start()
    try:
        ids = send_at_once(postfix, [f"before the quiet spell {i}" for i in range(5)])
        sink.wait_for_deliveries(5, timeout=30)
        # the quiet spell: Postfix says 421 to every connection in the proxy's pool
        postfix.wait_for_log(r"archiver-reinject/smtpd.*timeout after", SMTPD_TIMEOUT + 10)
        time.sleep(1)
        ids += send_at_once(postfix, [f"after the quiet spell {i}" for i in range(5)])
        sink.wait_for_deliveries(10, timeout=30)
        assert_first_try(postfix, arch, ids)
    finally:
        arch.stop()


def test_pooled_connections_are_closed_before_the_smtpd_times_out(base: Path, mta: Mta) -> None:
    postfix, sink = mta
    arch = Archiver(base, extra='reinject_idle = "1s"\n')  # in [smtp], below SMTPD_TIMEOUT
    arch.configure_postfix(postfix, "--mode", "proxy")
    short_reinjection_timeout(postfix, arch)
    arch.start()
    try:
        ids = send_at_once(postfix, ["before the quiet spell"])
        sink.wait_for_deliveries(1, timeout=30)
        postfix.wait_for_log(r"archiver-reinject/smtpd.*disconnect from .* quit=1", 10)
        time.sleep(SMTPD_TIMEOUT + 1)
        ids += send_at_once(postfix, ["after the quiet spell"])
        sink.wait_for_deliveries(2, timeout=30)
        assert reinjection_log(postfix, "timeout after") == []  # we said QUIT first
        assert_first_try(postfix, arch, ids)
    finally:
        arch.stop()


# böb@example.org and zoë@example.org in UTF-8, without SMTPUTF8
SENDER_8BIT = b"b\xc3\xb6b@example.org"
RCPT_8BIT = b"zo\xc3\xab@example.org"


def send_8bit(postfix: PostfixInstance, subject: str) -> str:
    """A client that writes 8-bit addresses without asking for SMTPUTF8."""
    raw, msgid = message(subject, cc=None)
    with smtplib.SMTP("127.0.0.1", postfix.smtpd_port, timeout=30) as smtp:
        smtp.ehlo("client.test.invalid")
        for command in (b"MAIL FROM:<" + SENDER_8BIT + b">", b"RCPT TO:<" + RCPT_8BIT + b">"):
            smtp.send(command + b"\r\n")
            code, text = smtp.getreply()
            assert code == 250, (command, code, text)
        code, text = smtp.data(raw)
        assert code == 250, text
    return msgid


def without_smtputf8(postfix: PostfixInstance) -> None:
    postfix.postconf("smtputf8_enable=no")
    postfix.reload()


def assert_8bit_delivered_and_archived(
    postfix: PostfixInstance, sink: SmtpSink, arch: Archiver, msgid: str
) -> dict[str, object]:
    [delivery] = sink.wait_for_deliveries(1, timeout=30)
    # smtp-sink writes each 8-bit byte of a command as "?" in its dump...
    assert (delivery.sender, delivery.recipients) == ("b??b@example.org", ["zo??@example.org"])
    assert "SMTPUTF8" not in delivery.mail_args.upper()
    # ...the reinjection smtpd's Received header has the bytes it was given, as the first
    # smtpd's below it does
    assert delivery.content.count(b"for <" + RCPT_8BIT + b">") == 2
    assert header(delivery.content, "X-Archive-Status") == ["Archived"]
    [row] = wait_archived(arch, 1)["results"]
    assert "<" + row["message_id"] + ">" == msgid
    [envelope] = arch.show(row["id"])["envelopes"]
    assert envelope["sender"].encode() == SENDER_8BIT
    assert [r.encode() for r in envelope["recipients"]] == [RCPT_8BIT]
    assert "status=deferred" not in "\n".join(postfix.log_lines())
    postfix.wait_queue_empty(10)
    result: dict[str, object] = envelope
    return result


def test_8bit_envelope_without_smtputf8_through_the_proxy(base: Path, mta: Mta) -> None:
    postfix, sink = mta
    without_smtputf8(postfix)
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        msgid = send_8bit(postfix, "8-bit envelope through the proxy")
        assert_8bit_delivered_and_archived(postfix, sink, arch, msgid)
        assert "reinjection failed" not in arch.log()
    finally:
        arch.stop()


def test_8bit_envelope_without_smtputf8_through_the_pipe(base: Path, mta: Mta) -> None:
    postfix, sink = mta
    without_smtputf8(postfix)
    nobody = pwd.getpwnam("nobody")
    arch = Archiver(base)
    arch.home.mkdir()
    _chown_tree(arch.home, nobody.pw_uid, nobody.pw_gid)
    arch.config_path.chmod(0o644)
    _traversable_by_others(Path(archiver_cmd()))
    _traversable_by_others(Path(sys.executable).resolve())
    arch.configure_postfix(postfix, "--mode", "pipe", "--user", "nobody")
    msgid = send_8bit(postfix, "8-bit envelope through the pipe")
    envelope = assert_8bit_delivered_and_archived(postfix, sink, arch, msgid)
    assert envelope["source"] == "pipe"
