"""``postfix-archiver restore QUERY --to imaps://…|smtp:…`` against a real Dovecot and a real
SMTP listener: byte-exact, the original date, nothing twice, audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from dovecot_harness import Dovecot, dovecot_server
from imap_cli import PASSWORD, Run, append, client, message, new_user
from postfix_harness import free_port

pytestmark = [pytest.mark.integration]

START = datetime(2018, 7, 9, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from dovecot_server()


@pytest.fixture
def run(tmp_path: Path, dovecot: Dovecot) -> Run:
    return Run(tmp_path, dovecot)


@pytest.fixture
def archived(run: Run, dovecot: Dovecot, request: pytest.FixtureRequest) -> list[bytes]:
    """Three messages archived from one mailbox (then gone from it: the user lost them)."""
    source = new_user(dovecot, request)
    raws = [message(1), message(2), message(3, b"line with LF only\n\xe4 8-bit\r\n")]
    append(dovecot, source, "INBOX", raws, START)
    done = run.imap(run.url(source, "INBOX"))
    assert done.returncode == 0, done.stderr
    return raws


def folder_contents(dovecot: Dovecot, user: str, folder: str) -> dict[bytes, datetime]:
    imap = client(dovecot, user)
    try:
        if not imap.folder_exists(folder):
            return {}
        imap.select_folder(folder, readonly=True)
        fetched = imap.fetch(imap.search(), ["BODY.PEEK[]", "INTERNALDATE", "FLAGS"])
    finally:
        imap.logout()
    return {d[b"BODY[]"]: d[b"INTERNALDATE"] for d in fetched.values()}


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_restores_to_a_folder_with_the_original_date_once(
    run: Run, dovecot: Dovecot, archived: list[bytes], request: pytest.FixtureRequest
) -> None:
    target = new_user(dovecot, request) + "x"
    dovecot.add_user(target, PASSWORD)
    url = run.url(target, "Restored")

    dry = run("restore", "quokka", "--to", url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would restore 3 messages" in dry.stderr
    assert folder_contents(dovecot, target, "Restored") == {}

    done = run("restore", "quokka", "--to", url, "--password-stdin", "--ca-file", dovecot.ca_file)
    assert done.returncode == 0, done.stderr
    assert "restored 3 messages" in done.stderr
    got = folder_contents(dovecot, target, "Restored")
    assert {crlf(raw) for raw in got} == {crlf(raw) for raw in archived}
    # each with the date it first arrived (the archive's INTERNALDATE from its import)
    assert {when.astimezone(UTC) for when in got.values()} == {
        START + timedelta(hours=i) for i in range(3)
    }

    again = run("restore", "quokka", "--to", url, "--password-stdin", "--ca-file", dovecot.ca_file)
    assert again.returncode == 0, again.stderr
    assert "restored 0 messages" in again.stderr
    assert "3 already there" in again.stderr
    assert len(folder_contents(dovecot, target, "Restored")) == 3

    audit = json.loads(run.quick("audit", "--json"))
    actions = [(e["action"], e["detail"]) for e in audit["entries"]]
    restores = [d for a, d in actions if a == "restore"]
    assert [d["restored"] for d in restores][-2:] == [3, 0]
    assert all(PASSWORD not in json.dumps(d) for _, d in actions)
    assert any(a == "restore.intent" for a, _ in actions)


def test_a_master_user_restores_into_someone_elses_mailbox(
    run: Run, dovecot: Dovecot, archived: list[bytes], request: pytest.FixtureRequest
) -> None:
    target = new_user(dovecot, request) + "m"
    dovecot.add_user(target, "the users own password")
    master, secret = dovecot.master
    done = run(
        "restore", "id:1", "--to", run.url(target, "Restored"), "--master-user", master,
        "--password-stdin", "--ca-file", dovecot.ca_file, password=secret,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    imap_pw = "the users own password"
    dovecot.add_user(target, PASSWORD)  # so the test's own client can look
    assert len(folder_contents(dovecot, target, "Restored")) == 1
    wrong = run(
        "restore", "id:1", "--to", run.url(target, "Restored"), "--master-user", master,
        "--password-stdin", "--ca-file", dovecot.ca_file, password=imap_pw,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert f"refused master user {master!r}" in wrong.stderr
    assert imap_pw not in wrong.stderr


class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.got.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)  # type: ignore[attr-defined]
        )
        return "250 OK"


def test_smtp_redelivers_the_original_bytes(run: Run, archived: list[bytes]) -> None:
    collect = Collect()
    port = free_port()
    controller = Controller(collect, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        done = run(
            "restore", "quokka", "--to", "smtp:bob@example.com", "--smtp", f"127.0.0.1:{port}"
        )
    finally:
        controller.stop()
    assert done.returncode == 0, done.stderr
    assert "restored 3 messages to smtp:bob@example.com" in done.stderr
    assert {(sender, tuple(rcpts)) for sender, rcpts, _ in collect.got} == {
        ("<>", ("bob@example.com",))  # aiosmtpd's name for the null sender
    }
    # SMTP carries CR LF line ends; otherwise the bytes are the archived ones
    assert {crlf(raw) for _, _, raw in collect.got} == {crlf(raw) for raw in archived}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["quokka", "--to", "smtp:not an address"], "give one address"),
        (["quokka", "--to", "ftp://x"], "give imaps://USER@HOST/FOLDER"),
        (["quokka", "--to", "smtp:bob@example.com", "--smtp", "127.0.0.1:٢٥"], "--smtp"),
        (["quokka", "--to", "smtp:bob@example.com", "--password-stdin"], "are for IMAP"),
        (["from:", "--to", "smtp:bob@example.com"], "from:"),
    ],
)
def test_bad_restores_are_one_line(
    run: Run, archived: list[bytes], args: list[str], expected: str
) -> None:
    done = run("restore", *args)
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_listening_for_smtp_is_one_line(run: Run, archived: list[bytes]) -> None:
    done = run(
        "restore", "id:1", "--to", "smtp:bob@example.com", "--smtp", f"127.0.0.1:{free_port()}"
    )
    assert done.returncode != 0
    assert "unavailable" in done.stderr
    assert "Traceback" not in done.stderr
