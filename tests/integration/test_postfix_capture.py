"""End to end through a real Postfix: the archiver configured by ``postfix-config --apply``,
final delivery to Postfix's ``smtp-sink``. The promise to Postfix under test: every message
is delivered, archived exactly once with every envelope recipient, and any failure of the
archiver leaves the mail queued in Postfix, never bounced."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import smtplib
import stat
import subprocess
import sys
import threading
import time
from email.utils import make_msgid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from archiver_process import Archiver, archiver_cmd, until, wait_archived
from postfix_harness import PostfixInstance, SmtpSink, free_port, wait_until
from requirements import require_root

pytestmark = [pytest.mark.integration]
Mta = tuple[PostfixInstance, SmtpSink]


def message(
    subject: str,
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.org",
    cc: str | None = "carol@example.net",
    extra: str = "",
) -> tuple[bytes, str]:
    msgid = make_msgid(domain="example.com")
    lines = [f"From: Alice <{sender}>", f"To: {to}"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines += [
        f"Subject: {subject}",
        f"Message-ID: {msgid}",
        "Date: Tue, 24 Nov 2026 10:00:00 +0000",
    ]
    if extra:
        lines.append(extra)
    lines += ["", f"Body of {subject}.", ""]
    return "\r\n".join(lines).encode(), msgid


def header(content: bytes, name: str) -> list[str]:
    head = content.split(b"\n\n", 1)[0].decode()
    return [
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.lower().startswith(name.lower() + ":")
    ]


def test_proxy_delivers_and_archives_once_with_bcc(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    postfix, sink = mta
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    assert postfix.postconf_get("content_filter").startswith("postfix-archiver:")
    arch.start()
    try:
        raw, msgid = message("quarterly figures")
        rcpts = ["bob@example.org", "carol@example.net", "dave.hidden@example.org"]
        postfix.send(raw, "alice@example.com", rcpts)
        [delivery] = sink.wait_for_deliveries(1, timeout=30)
        assert sorted(delivery.recipients) == sorted(rcpts)
        assert header(delivery.content, "X-Archive-Status") == ["Archived"]
        [archive_id] = header(delivery.content, "X-Archive-Id")
        assert b"dave.hidden" not in delivery.content  # Bcc stays hidden in the headers

        page = wait_archived(arch, 1)
        assert page["total"] == 1
        shown = arch.show(int(archive_id))
        assert shown["message_id"] == msgid.strip("<>")
        [envelope] = shown["envelopes"]
        assert sorted(envelope["recipients"]) == sorted(rcpts)  # the Bcc recipient too
        assert envelope["sender"] == "alice@example.com"
        assert envelope["queue_id"]  # from XFORWARD IDENT
        assert envelope["client_address"] == "127.0.0.1"  # the real client, via XFORWARD
        archived = arch.raw(int(archive_id))
        assert archived.startswith(b"Received: ")  # as Postfix handed it over
        assert b"X-Archive-" not in archived  # our stamp is only on the reinjected copy
        # found by the Bcc recipient
        assert arch.search("to:dave.hidden@example.org")["total"] == 1
        postfix.wait_queue_empty(10)
    finally:
        arch.stop()


def test_reconfiguring_is_idempotent(base: Path, mta: Mta) -> None:
    postfix, _ = mta
    arch = Archiver(base)
    first = arch.configure_postfix(postfix, "--mode", "proxy")
    assert "backed up" in first
    master_before = postfix.master_cf()
    second = arch.configure_postfix(postfix, "--mode", "proxy")
    assert "nothing changed" in second
    assert postfix.master_cf() == master_before
    backups = list(postfix.config_dir.glob("main.cf.postfix-archiver-*"))
    assert len(backups) == 1


def _traversable_by_others(path: Path) -> None:
    """The pipe runs as an unprivileged user: it must reach the virtualenv's command and
    the interpreter behind it (pyenv keeps it under /root, which is 0700). Adds o+x to the
    directories on the way, nothing more."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid)


def test_pipe_mode_delivers_and_archives_with_bcc(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    import pwd

    postfix, sink = mta
    nobody = pwd.getpwnam("nobody")
    arch = Archiver(base)
    arch.home.mkdir()
    _chown_tree(arch.home, nobody.pw_uid, nobody.pw_gid)
    arch.config_path.chmod(0o644)
    _traversable_by_others(Path(archiver_cmd()))
    _traversable_by_others(Path(sys.executable).resolve())
    arch.configure_postfix(postfix, "--mode", "pipe", "--user", "nobody")
    assert postfix.postconf_get("content_filter") == "postfix-archiver-pipe:dummy"
    raw, _ = message("pipe mode")
    rcpts = ["bob@example.org", "carol@example.net", "erin.hidden@example.org"]
    postfix.send(raw, "alice@example.com", rcpts)
    [delivery] = sink.wait_for_deliveries(1, timeout=30)
    assert sorted(delivery.recipients) == sorted(rcpts)
    assert header(delivery.content, "X-Archive-Status") == ["Archived"]
    page = wait_archived(arch, 1)
    [row] = page["results"]
    [envelope] = arch.show(row["id"])["envelopes"]
    assert sorted(envelope["recipients"]) == sorted(rcpts)
    assert envelope["source"] == "pipe"
    assert envelope["queue_id"]
    # the filter received the message as the pipe macros describe it
    assert envelope["client_address"] == "127.0.0.1"
    postfix.wait_queue_empty(10)


def test_pipe_mode_hands_over_to_the_running_proxy(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    """``filter --proxy``: Postfix pipes the message, the filter hands it to ``serve``,
    which archives and reinjects it; the envelope is Postfix's (queue id, client, Bcc).
    The archive is root's (``serve`` runs as root here): the filter (nobody) could not
    archive by itself, so a delivery proves the hand-over."""
    postfix, sink = mta
    arch = Archiver(base)
    arch.home.mkdir()
    _traversable_by_others(Path(archiver_cmd()))
    _traversable_by_others(Path(sys.executable).resolve())
    arch.configure_postfix(postfix, "--mode", "pipe", "--user", "nobody")
    [entry] = [line for line in postfix.master_cf().splitlines() if "postfix-archiver-pipe" in line]
    entry = entry.replace(" filter ", f" filter --proxy 127.0.0.1:{arch.listen_port} ", 1)
    postfix.postconf_master(f"postfix-archiver-pipe/unix={entry}")
    postfix.reload()
    arch.start()
    try:
        raw, _ = message("pipe mode, handed over")
        rcpts = ["bob@example.org", "erin.hidden@example.org"]
        postfix.send(raw, "alice@example.com", rcpts)
        [delivery] = sink.wait_for_deliveries(1, timeout=30)
        assert sorted(delivery.recipients) == sorted(rcpts)
        assert header(delivery.content, "X-Archive-Status") == ["Archived"]
        page = wait_archived(arch, 1)
        [row] = page["results"]
        assert header(delivery.content, "X-Archive-Id") == [str(row["id"])]
        [envelope] = arch.show(row["id"])["envelopes"]
        assert sorted(envelope["recipients"]) == sorted(rcpts)
        assert envelope["source"] == "smtp"  # archived by the proxy, not by the filter
        assert envelope["queue_id"]
        assert envelope["client_address"] == "127.0.0.1"
        postfix.wait_queue_empty(10)
    finally:
        arch.stop()


class _FakeAmavis:
    """A content filter in front of the archiver, as amavisd-new is: it takes the message,
    adds its header and hands it back to Postfix's return smtpd."""

    def __init__(self, return_port: int) -> None:
        self.return_port = return_port
        self.seen = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = b"X-Virus-Scanned: fake-amavis\r\n" + (envelope.original_content or b"")
        try:
            with smtplib.SMTP("127.0.0.1", self.return_port, timeout=30) as smtp:
                smtp.sendmail(envelope.mail_from or "", envelope.rcpt_tos, content)
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 4.3.0 return failed: {exc}"
        self.seen += 1
        return "250 2.0.0 Ok: passed"


def test_amavis_chain(base: Path, mta: Mta) -> None:
    postfix, sink = mta
    amavis_port, return_port = free_port(), free_port()
    arch = Archiver(base)
    arch.configure_postfix(
        postfix,
        "--mode",
        "proxy",
        "--amavis",
        "--amavis-address",
        f"127.0.0.1:{amavis_port}",
        "--amavis-return",
        f"127.0.0.1:{return_port}",
    )
    assert postfix.postconf_get("content_filter") == f"smtp-amavis:[127.0.0.1]:{amavis_port}"
    amavis = _FakeAmavis(return_port)
    controller = Controller(amavis, hostname="127.0.0.1", port=amavis_port)
    controller.start()
    arch.start()
    try:
        raw, _ = message("through amavis")
        postfix.send(raw, "alice@example.com", ["bob@example.org"])
        [delivery] = sink.wait_for_deliveries(1, timeout=30)
        assert amavis.seen == 1
        assert header(delivery.content, "X-Virus-Scanned") == ["fake-amavis"]
        assert header(delivery.content, "X-Archive-Status") == ["Archived"]
        [row] = wait_archived(arch, 1)["results"]
        assert b"X-Virus-Scanned: fake-amavis" in arch.raw(row["id"])  # archived after amavis
        postfix.wait_queue_empty(10)
    finally:
        arch.stop()
        controller.stop()


def _deferred(postfix: PostfixInstance) -> int:
    """Messages waiting in the queue after a temporary failure. By its delay reason, not its
    queue: the harness retries every second or so, so a deferred message moves through the
    incoming and active queues again (counting the deferred queue only was a flaky test)."""
    return sum(
        1
        for q in postfix.queue()
        if any("451 4.3.0" in str(r.get("delay_reason", "")) for r in q.get("recipients", []))
    )


def test_archiver_stopped_while_mail_flows(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    postfix, sink = mta
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    ids: list[str] = []

    def send(n: int) -> None:
        for i in range(n):
            raw, msgid = message(f"flow {len(ids)} {i}")
            postfix.send(raw, "alice@example.com", ["bob@example.org"])
            ids.append(msgid)
            time.sleep(0.02)

    sender = threading.Thread(target=send, args=(40,))
    sender.start()
    until(lambda: len(sink.deliveries()) >= 10, 30, "first deliveries")
    assert arch.stop() == 0  # graceful: transactions in flight finish first
    sender.join(60)
    # with the archiver down nothing is delivered and nothing bounces: it waits in the queue
    time.sleep(3)
    delivered_while_down = len(sink.deliveries())
    assert delivered_while_down < 40
    queued = postfix.queue()
    assert len(queued) == 40 - delivered_while_down
    assert all(q.get("queue_name") in ("deferred", "active", "incoming") for q in queued)
    arch.start()
    try:
        postfix.flush()
        deliveries = sink.wait_for_deliveries(40, timeout=60)
        delivered_ids = [header(d.content, "Message-ID")[0] for d in deliveries]
        assert sorted(delivered_ids) == sorted(ids)  # each exactly once
        page = wait_archived(arch, 40)
        assert page["total"] == 40
        arch.assert_each_archived_once(40)
        assert not [d for d in deliveries if d.sender == ""]  # no bounce anywhere
        postfix.wait_queue_empty(20)
    finally:
        arch.stop()


def _fill(disk: Path) -> Path:
    """Fill the filesystem at ``disk`` to the last byte; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_store_disk_defers_not_bounces(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    """The store's disk fills up: mail is deferred with 451, never bounced, and goes
    through once there is space again. A real full filesystem (a small tmpfs), so the
    SQLite pack and the blob files both meet ENOSPC as they would on a full disk."""
    require_root("mounting a small filesystem for the store")
    postfix, sink = mta
    disk = base / "store-disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    arch = Archiver(base, extra="")
    arch.config_path.write_text(
        arch.config_path.read_text().replace(
            "[smtp]", f'store = "file://{disk / "blobs"}"\n\n[smtp]'
        )
    )
    try:
        arch.configure_postfix(postfix, "--mode", "proxy")
        arch.start()
        try:
            first, _ = message("before the disk filled up")
            postfix.send(first, "alice@example.com", ["bob@example.org"])
            sink.wait_for_deliveries(1, timeout=30)
            filler = _fill(disk)
            # incompressible text: each needs new space in the pack (or a file of its own)
            noise = random.Random(7)
            for i, size in enumerate((60_000, 600_000)):
                head, _ = message(f"while the disk is full {i}")
                raw = head + base64.encodebytes(noise.randbytes(size)).replace(b"\n", b"\r\n")
                postfix.send(raw, "alice@example.com", ["bob@example.org"])

            if not wait_until(lambda: _deferred(postfix) == 2, 60, 0.1):
                raise AssertionError(
                    "two deferred messages expected after 60 s\n"
                    f"queue: {postfix.queue()}\narchiver log:\n{arch.log()[-4000:]}\n"
                    "postfix log:\n" + "\n".join(postfix.log_lines()[-40:])
                )
            assert len(sink.deliveries()) == 1
            log = "\n".join(postfix.log_lines())
            assert "451 4.3.0" in log
            assert "status=bounced" not in log
            assert "disk is full" in arch.log()
            # space again: the deferred mail goes through, nothing lost
            filler.unlink()
            postfix.flush()
            deliveries = sink.wait_for_deliveries(3, timeout=60)
            assert not [d for d in deliveries if d.sender == ""]
            assert wait_archived(arch, 3)["total"] == 3
        finally:
            arch.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_burst(base: Path, mta: Mta) -> None:
    postfix, sink = mta
    arch = Archiver(base)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    total = 250  # the kill at 100 deliveries lands mid-burst: 150 still to come
    ids: list[str] = []

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", postfix.smtpd_port, timeout=60) as smtp:
            for i in range(total):
                raw, msgid = message(f"burst {i}", cc=None)
                smtp.sendmail("alice@example.com", ["bob@example.org"], raw)
                ids.append(msgid)

    sender = threading.Thread(target=send)
    sender.start()
    until(lambda: len(sink.deliveries()) >= 100, 120, "100 deliveries")
    arch.kill()
    assert len(sink.deliveries()) < total  # killed mid-burst, not after it
    sender.join(120)
    assert len(ids) == total
    arch.start()
    try:
        postfix.flush()
        until(
            lambda: len({header(d.content, "Message-ID")[0] for d in sink.deliveries()}) >= total,
            180,
            "all deliveries",
        )
        delivered = {header(d.content, "Message-ID")[0] for d in sink.deliveries()}
        assert delivered == set(ids)
        page = wait_archived(arch, total, timeout=60)
        assert page["total"] == total
        archived_ids = {"<" + r["message_id"] + ">" for r in page["results"]}
        assert archived_ids == set(ids)
        done = arch.verify()
        assert done.returncode == 0, done.stdout + done.stderr
        assert not [d for d in sink.deliveries() if d.sender == ""]
        postfix.wait_queue_empty(30)
    finally:
        arch.stop()


def test_sink_mode_with_always_bcc(base: Path, mta: Mta) -> None:
    postfix, sink = mta
    arch = Archiver(base, sink=True)
    arch.configure_postfix(postfix, "--mode", "sink")
    assert postfix.postconf_get("always_bcc") == "archive@archive.invalid"
    arch.start()
    try:
        raw, _ = message("journal copy")
        postfix.send(raw, "alice@example.com", ["bob@example.org", "frank.hidden@example.org"])
        # the original goes to its recipients untouched; the copy goes to the archiver
        [delivery] = sink.wait_for_deliveries(1, timeout=30)
        assert sorted(delivery.recipients) == ["bob@example.org", "frank.hidden@example.org"]
        assert header(delivery.content, "X-Archive-Status") == []
        [row] = wait_archived(arch, 1)["results"]
        [envelope] = arch.show(row["id"])["envelopes"]
        assert envelope["source"] == "sink"
        assert "archive@archive.invalid" in envelope["recipients"]
        postfix.wait_queue_empty(20)
    finally:
        arch.stop()


RULES = """
[[rules]]
name = "system mail"
preset = "system-mail"
action = "skip"
"""


def test_rules_through_postfix_mixed_burst(
    base: Path, mta: tuple[PostfixInstance, SmtpSink]
) -> None:
    postfix, sink = mta
    arch = Archiver(base, extra=RULES)
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        business = []
        for i in range(5):
            raw, msgid = message(f"contract {i}")
            postfix.send(raw, "alice@example.com", ["bob@example.org"])
            business.append(msgid)
        for i in range(3):
            raw, _ = message(
                f"Cron <root@mta> run-parts /etc/cron.daily {i}",
                sender="root@mta.example.com",
                to="root@mta.example.com",
                cc=None,
                extra="X-Cron-Env: <SHELL=/bin/sh>",
            )
            postfix.send(raw, "root@mta.example.com", ["root@mta.example.com"])
        mixed, mixed_id = message(
            "to a person and to root", to="gina@example.org", cc="root@example.org"
        )
        postfix.send(mixed, "alice@example.com", ["gina@example.org", "root@example.org"])
        deliveries = sink.wait_for_deliveries(9, timeout=60)
        statuses = sorted(header(d.content, "X-Archive-Status")[0] for d in deliveries)
        assert statuses == ["Archived"] * 6 + ['Skipped; rule="system mail"'] * 3
        # every message is delivered to every recipient, whatever the rules say
        assert sum(len(d.recipients) for d in deliveries) == 5 + 3 + 2
        page = wait_archived(arch, 6)
        time.sleep(1)
        page = arch.search()
        assert page["total"] == 6
        archived = {"<" + r["message_id"] + ">": r["id"] for r in page["results"]}
        assert set(archived) == {*business, mixed_id}
        [envelope] = arch.show(archived[mixed_id])["envelopes"]
        assert envelope["recipients"] == ["gina@example.org"]  # root@ is not recorded
    finally:
        arch.stop()


def test_doctor_names_what_to_fix_then_passes(base: Path, mta: Mta) -> None:
    postfix, _ = mta
    arch = Archiver(base)
    args = ["doctor", "--config", str(arch.config_path), "--config-dir", str(postfix.config_dir)]
    before = arch.cli(*args, check=False)
    assert before.returncode == 1
    assert "FAIL main.cf content_filter = (empty)" in before.stdout
    assert "postfix-config --mode proxy --apply" in before.stdout
    assert f"FAIL archiver answers on 127.0.0.1:{arch.listen_port}" in before.stdout
    arch.configure_postfix(postfix, "--mode", "proxy")
    arch.start()
    try:
        after = arch.cli(*args, check=False)
        assert after.returncode == 0, after.stdout
        assert "FAIL" not in after.stdout
        assert "reinjection smtpd accepts XFORWARD" in after.stdout
    finally:
        arch.stop()
