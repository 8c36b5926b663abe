"""A legal hold through a real Postfix: placed from the command line while ``serve`` runs (a
second process), it holds the matching mail already archived and the matching mail Postfix
hands the proxy afterwards, and nothing else."""

from __future__ import annotations

import json
from email.utils import make_msgid
from pathlib import Path

import pytest
from archiver_process import Archiver, wait_archived
from postfix_harness import PostfixInstance, SmtpSink

pytestmark = [pytest.mark.integration]


def message(sender: str, subject: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='example.com')}\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"
    ).encode()


def test_a_hold_placed_while_serving_holds_later_mail(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    postfix, sink = mta
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        postfix.send(message("ceo@example.com", "before the hold"), "ceo@example.com",
                     ["bob@example.org"])  # fmt: skip
        sink.wait_for_deliveries(1, timeout=30)
        wait_archived(arch, 1)
        placed = arch.cli("hold", "add", "case-17", "from:ceo@example.com", "--reason", "r")
        assert "1 messages held" in placed.stderr
        postfix.send(message("ceo@example.com", "after the hold"), "ceo@example.com",
                     ["bob@example.org"])  # fmt: skip
        postfix.send(message("intern@example.com", "not held"), "intern@example.com",
                     ["bob@example.org"])  # fmt: skip
        sink.wait_for_deliveries(3, timeout=30)
        wait_archived(arch, 3)
        hold = json.loads(arch.cli("hold", "show", "case-17", "--json").stdout)
        assert hold["messages"] == 2
        [later] = arch.search('subject:"after the hold"')["results"]
        assert [h["name"] for h in arch.show(later["id"])["holds"]] == ["case-17"]
        [free] = arch.search('subject:"not held"')["results"]
        assert arch.show(free["id"])["holds"] == []
        postfix.wait_queue_empty(10)
    finally:
        arch.stop()
