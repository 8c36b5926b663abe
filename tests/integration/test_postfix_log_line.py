"""The archiver's line per message against a real Postfix's mail log: it begins with the
queue id Postfix gave the message (XFORWARD IDENT), and names the queue id of the
reinjected copy, which is the one Postfix's own log shows delivering it. So
``grep QUEUEID`` finds a message's whole story: Postfix's lines and ours."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from archiver_process import Archiver, until
from postfix_harness import PostfixInstance, SmtpSink

pytestmark = [pytest.mark.integration]

_LINE = re.compile(
    r"INFO (?P<qid>[0-9A-Za-z]+): archived id=(?P<id>\d+) rule=\"default\" "
    r"from=<alice@example.com> nrcpt=2 size=\d+ ms=\d+ reinjected=(?P<requeued>[0-9A-Za-z]+) "
)


def test_the_line_names_both_queue_ids_as_postfix_logs_them(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    postfix, sink = mta
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        raw = (
            b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: grep me\r\n"
            b"Message-ID: <grep-me@example.com>\r\n\r\nbody\r\n"
        )
        first = postfix.send(raw, "alice@example.com", ["bob@example.org", "carol@example.net"])
        [delivery] = sink.wait_for_deliveries(1, timeout=60)
        until(lambda: _LINE.search(arch.log()) is not None, 30, "the archiver's line")
    finally:
        arch.stop()
    match = _LINE.search(arch.log())
    assert match is not None
    assert match["qid"] == first  # Postfix's queue id of the message as submitted
    requeued = match["requeued"]
    assert requeued != first

    maillog = postfix.log_path.read_text(errors="replace")
    ours = [line for line in maillog.splitlines() if f" {requeued}: " in line]
    # the reinjected copy is the one Postfix logs receiving on the reinjection listener and
    # delivering to both recipients
    assert any("client=localhost" in line for line in ours), ours
    delivered = [line for line in ours if "status=sent" in line]
    assert len(delivered) >= 1, ours
    assert any(f" {first}: " in line for line in maillog.splitlines())
    # and the delivered copy's Received header was written by that same queue entry
    assert f"id {requeued}".encode() in delivery.content
    assert f"X-Archive-Id: {match['id']}".encode() in delivery.content


def test_the_sink_line_starts_with_the_messages_own_queue_id(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    """always_bcc puts the copy in the message's own queue file: the sink's line (from
    XFORWARD IDENT) and Postfix's lines for the message share one queue id."""
    postfix, sink = mta
    arch = Archiver(base, sink=True)
    arch.configure_postfix(postfix, "--mode", "sink")
    arch.start()
    line = re.compile(r"INFO (?P<qid>[0-9A-Za-z]+): archived id=1 .* reinjected=- \(sink\)$", re.M)
    try:
        raw = b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: bcc\r\n\r\nbody\r\n"
        queue_id = postfix.send(raw, "alice@example.com", ["bob@example.org"])
        sink.wait_for_deliveries(1, timeout=60)
        until(lambda: line.search(arch.log()) is not None, 30, "the sink's line")
    finally:
        arch.stop()
    match = line.search(arch.log())
    assert match is not None
    assert match["qid"] == queue_id
    maillog = postfix.log_path.read_text(errors="replace")
    assert any(
        f" {queue_id}: to=<archive@archive.invalid>" in entry and "status=sent" in entry
        for entry in maillog.splitlines()
    ), maillog[-3000:]
