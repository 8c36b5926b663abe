"""``postfix-archiver import imaps://…`` against a real Dovecot: byte-exact, INTERNALDATE,
folders, resuming, and one clear line for every way it can go wrong."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dovecot_harness import Dovecot, dovecot_server
from imap_cli import PASSWORD, Run, append, message, new_user

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from dovecot_server()


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> str:
    return new_user(dovecot, request)


@pytest.fixture
def run(tmp_path: Path, dovecot: Dovecot) -> Run:
    return Run(tmp_path, dovecot)


def test_imports_byte_exact_with_internaldate_and_folder(
    run: Run, dovecot: Dovecot, mailbox: str
) -> None:
    odd = (
        b"From: =?broken \xff\xfe\r\nSubject: 8-bit \xe4\xf6 and broken MIME\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n--never-closed\r\n'
        b"Content-Type: text/plain\r\n\r\nquokka in a part that never ends\r\n"
    )
    raws = [message(1), message(2), odd]
    start = datetime(2019, 5, 17, 8, 30, tzinfo=UTC)
    append(dovecot, mailbox, "INBOX", raws, start)

    done = run.imap(run.url(mailbox, "INBOX"))
    assert done.returncode == 0, done.stderr
    assert "3 messages read, 3 new" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout

    found = run.search("quokka")
    assert len(found) == 3
    for hit in found:
        doc = json.loads(run.quick("show", "--json", str(hit["id"])))
        received = datetime.fromisoformat(str(doc["envelopes"][0]["received"]))
        assert received in {start + timedelta(hours=i) for i in range(3)}
        assert "imported from INBOX UID " in run.quick("show", str(hit["id"]))
    # byte for byte: every archived original equals what was appended
    assert {run.raw(hit["id"]) for hit in found} == set(raws)


def test_a_rerun_fetches_only_new_mail(run: Run, dovecot: Dovecot, mailbox: str) -> None:
    start = datetime(2021, 1, 1, tzinfo=UTC)
    append(dovecot, mailbox, "INBOX", [message(i) for i in range(3)], start)
    first = run.imap(run.url(mailbox))
    assert first.returncode == 0, first.stderr
    assert "3 messages read, 3 new" in first.stderr

    again = run.imap(run.url(mailbox))
    assert again.returncode == 0, again.stderr
    assert "0 messages read" in again.stderr

    append(dovecot, mailbox, "INBOX", [message(i) for i in range(10, 12)], start)
    last = run.imap(run.url(mailbox))
    assert last.returncode == 0, last.stderr
    assert "2 messages read, 2 new" in last.stderr
    assert len(run.search("quokka")) == 5


def test_all_folders_with_non_ascii_names(run: Run, dovecot: Dovecot, mailbox: str) -> None:
    start = datetime(2022, 6, 1, tzinfo=UTC)
    append(dovecot, mailbox, "INBOX", [message(1)], start)
    append(dovecot, mailbox, "Archive/2020", [message(2), message(3)], start)
    append(dovecot, mailbox, "보관함", [message(4)], start)

    done = run.imap(run.url(mailbox), "--all-folders")
    assert done.returncode == 0, done.stderr
    assert "4 messages read, 4 new" in done.stderr
    folders = set()
    for hit in run.search("quokka"):
        shown = run.quick("show", str(hit["id"]))
        origin = shown.split("imported from ", 1)[1].split(" UID ", 1)[0]
        folders.add(origin)
    assert folders == {"INBOX", "Archive/2020", "보관함"}


def test_starttls_on_plain_imap(run: Run, dovecot: Dovecot, mailbox: str) -> None:
    append(dovecot, mailbox, "INBOX", [message(1)], datetime(2020, 1, 1, tzinfo=UTC))
    url = f"imap://{mailbox}@127.0.0.1:{dovecot.imap_port}/INBOX"
    done = run.imap(url)
    assert done.returncode == 0, done.stderr
    assert "1 messages read, 1 new" in done.stderr


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad password", "refused the login (check the user name and password)"),
        ("missing folder", "no folder 'Nope' (there are: INBOX)"),
        ("untrusted certificate", "TLS certificate is not trusted"),
        ("nothing listening", "connection refused"),
    ],
)
def test_failures_are_one_clear_line(
    run: Run, dovecot: Dovecot, mailbox: str, case: str, expected: str
) -> None:
    append(dovecot, mailbox, "INBOX", [message(1)], datetime(2020, 1, 1, tzinfo=UTC))
    url, extra, password = run.url(mailbox, "INBOX"), ["--ca-file", str(dovecot.ca_file)], PASSWORD
    if case == "bad password":
        password = "wrong-password-123"
    elif case == "missing folder":
        url = run.url(mailbox, "Nope")
    elif case == "untrusted certificate":
        extra = []
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = run.url(mailbox, port=s.getsockname()[1])
    done = run("import", url, "--password-stdin", *extra, password=password)
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert password not in done.stderr + done.stdout
    assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1


def test_password_never_on_the_command_line(run: Run, mailbox: str) -> None:
    done = run("import", f"imaps://{mailbox}:hunter2@127.0.0.1/INBOX", "--password-stdin")
    assert done.returncode != 0
    assert "no password in the URL" in done.stderr
    assert "hunter2" not in done.stderr
    missing = run("import", run.url(mailbox))
    assert missing.returncode != 0
    assert "--password-stdin or --password-file" in missing.stderr


class CuttingProxy:
    """A TCP relay to ``target``; the first connection is dropped once the server has sent
    ``limit`` bytes (a connection lost in the middle of an import), later ones relay all."""

    def __init__(self, target: int, limit: int) -> None:
        self.target = target
        self.limit: int | None = limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                limit, self.limit = self.limit, None
                threading.Thread(target=self._relay, args=(conn, limit), daemon=True).start()

    def _relay(self, conn: socket.socket, limit: int | None) -> None:
        with conn, socket.create_connection(("127.0.0.1", self.target)) as upstream:

            def pump(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
                sent = 0
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        sent += len(data)
                        if limit is not None and sent > limit:
                            break
                        dst.sendall(data)
                for s in (conn, upstream):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

            back = threading.Thread(target=pump, args=(conn, upstream, None), daemon=True)
            back.start()
            pump(upstream, conn, limit)
            back.join(10)

    def close(self) -> None:
        self.listener.close()


def test_connection_lost_mid_import_keeps_what_came_and_resumes(
    run: Run, dovecot: Dovecot, mailbox: str
) -> None:
    filler = b"x" * 76 + b"\r\n"
    raws = [message(i, filler * 250) for i in range(250)]  # about 20 kB each
    append(dovecot, mailbox, "INBOX", raws, datetime(2023, 3, 1, tzinfo=UTC))
    # the first fetch of 100 messages (2 MB) passes; the second is cut half way
    proxy = CuttingProxy(dovecot.imaps_port, limit=3_000_000)

    done = run.imap(run.url(mailbox, "INBOX", port=proxy.port))
    assert done.returncode != 0
    assert "connection lost" in done.stderr
    assert "Traceback" not in done.stderr
    kept = len(run.search("quokka"))
    assert 100 <= kept < 250

    # the resume point belongs to the account as named (host and port): the same again
    again = run.imap(run.url(mailbox, "INBOX", port=proxy.port))
    proxy.close()
    assert again.returncode == 0, again.stderr
    assert f"{250 - kept} messages read, {250 - kept} new" in again.stderr
    assert len(run.search("quokka")) == 250
