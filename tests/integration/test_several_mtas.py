"""Several MTAs, one archive: two real ``serve`` processes (sink mode, different ports, as two
MX hosts would run them) write to ONE PostgreSQL catalog and ONE S3 bucket (moto) at the same
time. Mail arrives at both at once: messages of their own, the same bytes at both (one
message, an envelope from each), and the same Postfix queue id retried at the other node
after a deferral (one envelope). Afterwards: no lost or duplicated rows, one chain of events
in order, and ``verify`` clean.
"""

from __future__ import annotations

import itertools
import smtplib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from archiver_process import Archiver, wait_archived
from tests.pg_cluster import postgresql_url
from tests.s3_helpers import S3

pytestmark = [pytest.mark.integration]

OWN = 15  # messages only one node sees, per node
SHARED = 8  # the same bytes at both nodes, each with its own queue id
RETRIED = 6  # the same queue id, sender and recipients at both: a retry at the other node


def message(tag: str) -> bytes:
    return (
        f"From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.org>\r\nDate: Tue, 01 Dec 2026 01:00:00 +0000\r\n\r\n"
        f"body of {tag}\r\n"
    ).encode()


def send(port: int, raw: bytes, queue_id: str) -> tuple[int, bytes]:
    """One message in one SMTP session, its queue id given as Postfix gives it (XFORWARD)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.ehlo("mx.example.org")
        code, text = smtp.docmd("XFORWARD", f"IDENT={queue_id}")
        assert code == 250, text
        smtp.mail("sender@example.org")
        smtp.rcpt("rcpt@example.net")
        return smtp.data(raw)


def node(base: Path, name: str, catalog: str, s3: S3, prefix: str) -> Archiver:
    (base / name).mkdir()
    archiver = Archiver(base / name, sink=True)
    archiver.config_path.write_text(
        f'[archive]\nhome = "{archiver.home}"\ncatalog = "{catalog}"\n'
        f'store = "s3://{s3.bucket}/{prefix}"\n\n'
        f'[smtp]\nlisten = "127.0.0.1:{archiver.listen_port}"\n'
        f'reinject = "127.0.0.1:{archiver.reinject_port}"\n\n'
        f'[s3]\nendpoint = "{s3.server.endpoint}"\n'
    )
    return archiver


@pytest.fixture
def nodes(tmp_path: Path, moto_s3: S3) -> Iterator[tuple[Archiver, Archiver, str]]:
    catalog = postgresql_url()
    prefix = f"mx-{tmp_path.name}"
    one = node(tmp_path, "mx1", catalog, moto_s3, prefix)
    two = node(tmp_path, "mx2", catalog, moto_s3, prefix)
    try:
        one.start(timeout=120)
        two.start(timeout=120)
        yield one, two, catalog
    finally:
        one.kill()
        two.kill()


def test_two_nodes_one_catalog_one_bucket(nodes: tuple[Archiver, Archiver, str]) -> None:
    one, two, catalog = nodes
    jobs: list[tuple[int, bytes, str]] = []
    for n in range(OWN):
        jobs.append((one.listen_port, message(f"mx1-{n}"), f"A1{n:04X}"))
        jobs.append((two.listen_port, message(f"mx2-{n}"), f"B2{n:04X}"))
    for n in range(SHARED):
        jobs.append((one.listen_port, message(f"both-{n}"), f"A3{n:04X}"))
        jobs.append((two.listen_port, message(f"both-{n}"), f"B4{n:04X}"))
    for n in range(RETRIED):
        jobs.append((one.listen_port, message(f"retry-{n}"), f"C5{n:04X}"))
        jobs.append((two.listen_port, message(f"retry-{n}"), f"C5{n:04X}"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda job: send(*job), jobs))
    assert [code for code, _ in answers] == [250] * len(jobs), answers

    messages = 2 * OWN + SHARED + RETRIED
    envelopes = 2 * OWN + 2 * SHARED + RETRIED
    page = wait_archived(one, messages, timeout=180)
    assert page["total"] == messages
    assert page["not_indexed"] == 0
    assert one.stop() == 0
    assert two.stop() == 0

    with psycopg.connect(catalog) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(DISTINCT sha256) FROM "
            "messages), (SELECT count(*) FROM envelopes), (SELECT count(DISTINCT "
            "(message, env_key)) FROM envelopes), (SELECT count(*) FROM events)"
        ).fetchone()
        assert counts == (messages, messages, envelopes, envelopes, envelopes)
        # one chain: every event follows the one before it, in order, from both nodes
        events = conn.execute("SELECT seq, prev_hash, hash FROM events ORDER BY seq").fetchall()
        assert [e[0] for e in events] == list(range(1, envelopes + 1))
        assert all(e[1] == prev[2] for prev, e in itertools.pairwise(events))
        # the same bytes at both nodes: one message, an envelope from each
        shared = conn.execute(
            "SELECT count(*) FROM envelopes e JOIN messages m ON m.id = e.message "
            "WHERE m.subject LIKE 'both-%%' GROUP BY m.id"
        ).fetchall()
        assert shared == [(2,)] * SHARED
        sources = conn.execute("SELECT count(DISTINCT client_address) FROM envelopes").fetchone()
        assert sources is not None

    done = one.verify()
    assert done.returncode == 0, done.stdout + done.stderr
    done = two.verify()
    assert done.returncode == 0, done.stdout + done.stderr
    # either node reads what the other archived, from the one bucket
    mx2 = list(one.search("subject:mx2-3")["results"])
    assert len(mx2) == 1
    assert one.raw(mx2[0]["id"]) == message("mx2-3")
