"""The Postfix test harness against Debian's real Postfix, with no content filter in between."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from postfix_harness import (
    POSTFIX,
    SMTP_SINK,
    HarnessError,
    PostfixInstance,
    SmtpSink,
    free_port,
    is_listening,
    parse_sink_dump,
)
from requirements import REQUIRE_ENV, require_binary, require_root

SENDER = "alice@example.org"
TO = "bob@example.com"
CC = "carol@example.net"
HIDDEN = "dave@elsewhere.test"  # an envelope-only recipient, like a Bcc

RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Cc: Carol <carol@example.net>\r\n"
    b"Subject: harness check\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <harness-check@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".this line starts with a dot and is dot-stuffed on the wire\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\n"
)


def lf(raw: bytes) -> bytes:
    """What smtp-sink stores for `raw`: it drops every CR."""
    return raw.replace(b"\r\n", b"\n")


@pytest.fixture
def postfix_installed() -> None:
    require_binary(POSTFIX, "Postfix")
    require_binary(SMTP_SINK, "Postfix smtp-sink")
    require_root("a private Postfix instance")


@pytest.fixture
def sink(postfix_installed: None) -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
def mta(sink: SmtpSink) -> Iterator[PostfixInstance]:
    with PostfixInstance(sink) as running:
        yield running


@pytest.mark.integration
def test_relays_with_every_envelope_recipient_and_body_intact(
    sink: SmtpSink, mta: PostfixInstance
) -> None:
    queue_id = mta.send(RAW, SENDER, [TO, CC, HIDDEN])
    assert queue_id

    [delivery] = sink.wait_for_deliveries(1)
    mta.wait_queue_empty()

    assert delivery.sender == SENDER
    assert sorted(delivery.recipients) == sorted([TO, CC, HIDDEN])
    # Postfix adds only its Received: header on top; everything else arrives as sent.
    assert delivery.content.startswith(b"Received: from client.test.invalid")
    assert delivery.content.endswith(b"\n" + lf(RAW))
    assert f"with ESMTP id {queue_id}".encode() in delivery.content
    assert HIDDEN.encode() not in delivery.content
    message = delivery.message()
    assert message["Subject"] == "harness check"
    assert message.get_content() == (
        "Hello Bob,\n.this line starts with a dot and is dot-stuffed on the wire\n\nGrüße\n"
    )
    assert sink.messages() == [delivery.content]

    # The log reaches the file through postlogd (asynchronously, hence the wait).
    mta.wait_for_log(rf"qmgr\[\d+\]: {queue_id}: removed")
    sent = [ln for ln in mta.log_lines() if f"{queue_id}: to=<" in ln and "status=sent" in ln]
    assert len(sent) == 3, mta.log_tail()


@pytest.mark.integration
def test_mail_stays_deferred_while_destination_is_down_and_flush_delivers_it(
    sink: SmtpSink,
) -> None:
    # Long retry timers: after the first failed attempt only flush() can deliver the message.
    with PostfixInstance(sink, retry_delay=300) as mta:
        sink.stop()
        queue_id = mta.send(RAW, SENDER, [TO, HIDDEN])

        entry = mta.wait_queued(queue_id, "deferred")
        reasons = [r.get("delay_reason", "") for r in entry["recipients"]]
        assert sorted(r["address"] for r in entry["recipients"]) == sorted([TO, HIDDEN])
        assert all("Connection refused" in reason for reason in reasons), reasons

        sink.start()
        assert [m["queue_id"] for m in mta.queue()] == [queue_id]
        assert sink.deliveries() == []

        mta.flush()
        [delivery] = sink.wait_for_deliveries(1)
        mta.wait_queue_empty()
        assert delivery.sender == SENDER
        assert sorted(delivery.recipients) == sorted([TO, HIDDEN])
        assert delivery.content.endswith(b"\n" + lf(RAW))


@pytest.mark.integration
def test_two_instances_run_side_by_side(postfix_installed: None) -> None:
    with (
        SmtpSink() as sink_a,
        SmtpSink() as sink_b,
        PostfixInstance(sink_a, hostname="a.test.invalid") as mta_a,
        PostfixInstance(sink_b, hostname="b.test.invalid") as mta_b,
    ):
        assert mta_a.smtpd_port != mta_b.smtpd_port
        assert mta_a.config_dir != mta_b.config_dir
        mta_a.send(RAW, SENDER, ["one@example.com"])
        mta_b.send(RAW, SENDER, ["two@example.com"])
        assert [d.recipients for d in sink_a.wait_for_deliveries(1)] == [["one@example.com"]]
        assert [d.recipients for d in sink_b.wait_for_deliveries(1)] == [["two@example.com"]]
        assert b"by a.test.invalid (Postfix)" in sink_a.messages()[0]
        assert b"by b.test.invalid (Postfix)" in sink_b.messages()[0]
        pids = (mta_a.master_pid, mta_b.master_pid)
    assert None not in pids
    assert not mta_a.running
    assert not mta_b.running
    assert not mta_a.base_dir.exists()


@pytest.mark.integration
def test_stop_stops_everything_and_config_edits_survive_restart(sink: SmtpSink) -> None:
    mta = PostfixInstance(sink)
    try:
        mta.postconf("message_size_limit=2048")
        mta.start()
        # Make an smtpd process exist, so stop() has more than master to take down.
        mta.send(RAW, SENDER, [TO])
        sink.wait_for_deliveries(1)
        master = mta.master_pid
        assert master is not None
        mta.stop()
        assert not mta.running
        assert not is_listening(mta.smtpd_port)

        mta.start()
        assert mta.postconf_get("message_size_limit") == "2048"
        with pytest.raises(smtplib.SMTPException) as refused:
            mta.send(RAW + b"x" * 4096 + b"\r\n", SENDER, [TO])
        assert "552" in str(refused.value) or "size" in str(refused.value).lower()
    finally:
        mta.cleanup()
    assert not mta.running


@pytest.mark.integration
def test_reload_applies_master_cf_changes(mta: PostfixInstance, sink: SmtpSink) -> None:
    port = free_port()
    mta.postconf_master(f"127.0.0.1:{port}/inet=127.0.0.1:{port} inet n - n - - smtpd")
    mta.postconf_master_param(f"127.0.0.1:{port}/inet/syslog_name=postfix/second")
    mta.reload()
    assert mta.postconf_get("message_size_limit")  # still readable after the edit

    queue_id = mta.send(RAW, SENDER, [TO], port=port)
    mta.wait_for_log(rf"postfix/second/smtpd\[\d+\]: {queue_id}: client=")
    sink.wait_for_deliveries(1)


@pytest.mark.integration
def test_port_clash_is_refused_not_shared(sink: SmtpSink) -> None:
    # master binds with SO_REUSEPORT, so without the harness's check a second instance on the
    # same port would start fine and silently take half of the connections.
    with PostfixInstance(sink) as blocker:
        clash = PostfixInstance(sink, smtpd_port=blocker.smtpd_port)
        try:
            with pytest.raises(HarnessError, match="already in use"):
                clash.start()
            assert not clash.running
        finally:
            clash.cleanup()
        assert blocker.running


@pytest.mark.integration
def test_start_failure_raises_with_the_log(sink: SmtpSink) -> None:
    broken = PostfixInstance(sink)
    try:
        broken.postconf_master_delete("postlog/unix-dgram")
        with pytest.raises(HarnessError, match="missing 'postlog' service") as failure:
            broken.start()
        assert str(broken.log_path) in str(failure.value)
        assert not broken.running
    finally:
        broken.cleanup()


def test_sink_dump_parsing() -> None:
    dump = (
        b"X-Client-Addr: 127.0.0.1\n"
        b"X-Client-Proto: ESMTP\n"
        b"X-Helo-Args: mta.test.invalid\n"
        b"X-Mail-Args: <> SIZE=42 BODY=8BITMIME\n"
        b'X-Rcpt-Args: <"odd>local"@example.com> ORCPT=rfc822;x@example.com\n'
        b"X-Rcpt-Args: <b@example.com>\n"
        b"Received: from mta.test.invalid ([127.0.0.1])\n"
        b"\tby sink.test.invalid (smtp-sink) with ESMTP id 1a2b3c4d;\n"
        b"\tMon, 1 Jan 2024 10:00:00 +0000 (UTC)\n"
        b"Subject: x\n\nbody\n\n"
    )
    delivery = parse_sink_dump(dump)
    assert delivery.sender == ""
    assert delivery.recipients == ['"odd>local"@example.com', "b@example.com"]
    assert delivery.helo == "mta.test.invalid"
    assert delivery.mail_args == "<> SIZE=42 BODY=8BITMIME"
    assert delivery.content == b"Subject: x\n\nbody\n"


@pytest.mark.parametrize("required", ["", "1"])
def test_require_binary_skips_or_fails(monkeypatch: pytest.MonkeyPatch, required: str) -> None:
    monkeypatch.setenv(REQUIRE_ENV, required)
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="Nothing is not installed"):
        require_binary("/nonexistent/bin/nothing", "Nothing")
