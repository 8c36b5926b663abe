"""A catalog locked by another process (a backup, a ``sqlite3`` shell in a write transaction)
behind a real Postfix, the archiver configured by ``postfix-config --apply``: each message is
answered 451 within ``answer_timeout`` and waits in Postfix's queue (deferred, never bounced);
once the lock is gone, a queue flush delivers and archives every message exactly once."""

from __future__ import annotations

import re
import sqlite3
from email.utils import make_msgid
from pathlib import Path

import pytest
from archiver_process import Archiver, until, wait_archived
from postfix_harness import PostfixInstance, SmtpSink

pytestmark = [pytest.mark.integration]

BOUND = 3.0  # answer_timeout, seconds
SLACK = 3.0
MESSAGES = 6


def message(subject: str) -> tuple[bytes, str]:
    msgid = make_msgid(domain="example.com")
    lines = [
        "From: Alice <alice@example.com>",
        "To: bob@example.org",
        f"Subject: {subject}",
        f"Message-ID: {msgid}",
        "Date: Tue, 24 Nov 2026 10:00:00 +0000",
        "",
        f"Body of {subject}.",
        "",
    ]
    return "\r\n".join(lines).encode(), msgid


def message_id(content: bytes) -> str:
    m = re.search(rb"^Message-ID: (\S+)", content, re.M | re.I)
    assert m, content[:500]
    return m.group(1).decode()


def test_locked_catalog_defers_within_the_bound_then_delivers_once(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    postfix, sink = mta
    arch = Archiver(base, extra=f'answer_timeout = "{BOUND:g}s"\n')
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        first, first_id = message("before the lock")
        postfix.send(first, "alice@example.com", ["bob@example.org"])
        sink.wait_for_deliveries(1, timeout=30)

        lock = sqlite3.connect(arch.home / "catalog.sqlite", isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            start = len(postfix.log_lines())
            sent: dict[str, str] = {}
            for i in range(MESSAGES):
                raw, msgid = message(f"while the catalog is locked {i}")
                sent[postfix.send(raw, "alice@example.com", ["bob@example.org"])] = msgid
            # the archiver's answer came within the bound: the last of Postfix's delays
            # (a/b/c/d) is the time of the session with it, the wait for the final dot included
            took: dict[str, float] = {}
            for qid in sent:
                line = postfix.wait_for_log(
                    rf"{qid}: to=<bob@example\.org>, relay=127\.0\.0\.1.*"
                    r"status=deferred.*451 4\.3\.0",
                    timeout=2 * BOUND + 2 * SLACK,
                    start=start,
                )
                m = re.search(r"delays=[\d.]+/[\d.]+/[\d.]+/([\d.]+)", line)
                assert m, line
                took[qid] = float(m.group(1))
            assert max(took.values()) < BOUND + SLACK, took
            queued = {q["queue_id"]: q["queue_name"] for q in postfix.queue()}
            assert set(sent) <= set(queued)  # waiting in the queue, not bounced
            assert len(sink.deliveries()) == 1
            lock.execute("ROLLBACK")
        finally:
            lock.close()

        postfix.flush()
        deliveries = sink.wait_for_deliveries(1 + MESSAGES, timeout=60)
        delivered = sorted(message_id(d.content) for d in deliveries)
        assert delivered == sorted([first_id, *sent.values()])  # each exactly once
        assert not [d for d in deliveries if d.sender == ""]  # no bounce
        page = wait_archived(arch, 1 + MESSAGES)
        assert page["total"] == 1 + MESSAGES
        arch.assert_each_archived_once(1 + MESSAGES)
        until(lambda: not postfix.queue(), 20, "an empty queue")
        log = "\n".join(postfix.log_lines())
        assert "status=bounced" not in log
        assert "locked by another process" in arch.log()
    finally:
        arch.stop()
