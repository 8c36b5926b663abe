"""Restoring from the web UI and the API into a real Dovecot, signed in as its master user:
byte-exact with the original date, nothing twice, only one's own mail into one's own mailbox
(admins: anyone's), limited per request and per hour, CSRF-checked, audited, and a mail server
that is down or a hostile id is an answer, never a 500."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from dovecot_harness import Dovecot, dovecot_server
from imap_cli import PASSWORD as IMAP_PASSWORD
from imap_cli import client
from postfix_harness import free_port
from tests.unit.web.web_helpers import CHEAP, Web, add_users, csrf_of, load_cast

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import parse_config
from postfix_archiver.web.auth import RateLimiter

pytestmark = [pytest.mark.integration]

RECEIVED = datetime(2025, 1, 7, 10, tzinfo=UTC)  # the cast's arrival time
MAILBOXES = ("bob", "carol", "dave", "admin", "audra")


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    for server in dovecot_server():
        for name in MAILBOXES:
            server.add_user(name, IMAP_PASSWORD)
        yield server


_folders = iter(range(1, 1_000_000))


@contextlib.contextmanager
def restoring(
    tmp_path: Path, dovecot: Dovecot, extra: str = "", /, **keys: str | None
) -> Iterator[Web]:
    """The web app over the test cast with ``[restore]`` pointing at ``dovecot``; each gets
    a folder of its own (the server is shared by the module); ``keys`` set or (None) drop
    ``[restore]`` keys."""
    master, secret = dovecot.master
    secret_file = tmp_path / "master.secret"
    secret_file.write_text(secret + "\n")
    lines = {
        "imap": f'"imaps://127.0.0.1:{dovecot.imaps_port}"',
        "ca_file": f'"{dovecot.ca_file}"',
        "master_user": f'"{master}"',
        "master_password_file": f'"{secret_file}"',
        "folder": f'"Restored-{next(_folders)}"',
        **keys,
    }
    text = "\n".join(f"{k} = {v}" for k, v in lines.items() if v is not None)
    home = tmp_path / "data"
    config = parse_config(
        f'[archive]\nhome = "{home}"\n[restore]\n{text}\n{extra}', str(tmp_path / "c.toml")
    )
    with (
        Archive(config) as archive,
        open_accounts(home_url(config.archive.home), hasher=CHEAP) as accounts,
    ):
        add_users(accounts)
        web = Web(config, archive, accounts, RateLimiter(), load_cast(archive))
        try:
            yield web
        finally:
            web.close()


@pytest.fixture
def web(tmp_path: Path, dovecot: Dovecot) -> Iterator[Web]:
    with restoring(tmp_path, dovecot) as w:
        yield w


def folder(dovecot: Dovecot, user: str, name: str) -> dict[bytes, datetime]:
    """What ``user``'s folder holds, as the user's own IMAP login sees it."""
    imap = client(dovecot, user)
    try:
        if not imap.folder_exists(name):
            return {}
        imap.select_folder(name, readonly=True)
        fetched = imap.fetch(imap.search(), ["BODY.PEEK[]", "INTERNALDATE"])
    finally:
        imap.logout()
    return {d[b"BODY[]"]: d[b"INTERNALDATE"] for d in fetched.values()}


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def form_post(client: Any, page: str, action: str, **fields: str) -> Any:
    """POST ``action`` as the form on ``page`` would (its CSRF token)."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf": token, **fields})


def flash_text(client: Any, response: Any) -> str:
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    start = page.text.index('id="status"')
    text: str = page.text
    return text[text.index(">", start) + 1 : text.index("</p>", start)]


def test_a_user_restores_their_message_byte_exact_once(web: Web, dovecot: Dovecot) -> None:
    bob = web.login("bob")
    report = web.cast.report
    name = web.config.restore.folder
    page = bob.get(f"/messages/{report}")
    assert f'action="/messages/{report}/restore"' in page.text
    assert 'name="mailbox"' not in page.text  # a user restores to their own mailbox only

    done = form_post(bob, f"/messages/{report}", f"/messages/{report}/restore")
    assert done.headers["location"] == f"/messages/{report}"
    assert flash_text(bob, done) == "Restored 1 message to your mailbox."
    got = folder(dovecot, "bob", name)
    assert list(got) == [crlf(web.cast.raws[report])]
    assert [when.astimezone(UTC) for when in got.values()] == [RECEIVED]

    again = form_post(bob, f"/messages/{report}", f"/messages/{report}/restore")
    assert flash_text(bob, again) == (
        "Restored 0 messages to your mailbox. 1 was there already and not restored again."
    )
    assert len(folder(dovecot, "bob", name)) == 1

    # the search's "Restore these N": bob's two messages, one of them there already
    search = bob.get("/search", params={"q": ""})
    assert "Restore these 2 to my mailbox" in search.text
    back = "/search?q=&order=-date&per=50&page=1"
    done = form_post(bob, "/search?q=", "/restore", q="", back=back)
    assert done.headers["location"] == back
    assert flash_text(bob, done) == (
        "Restored 1 message to your mailbox. 1 was there already and not restored again."
    )
    assert set(folder(dovecot, "bob", name)) == {
        crlf(web.cast.raws[i]) for i in (report, web.cast.hostile)
    }

    entries = [(e.action, e.user, e.detail) for e in web.audit() if e.action.startswith("restore")]
    assert [(a, u) for a, u, _ in entries] == [("restore.intent", "bob"), ("restore", "bob")] * 3
    first = entries[1][2]
    assert first["message"] == report
    assert first["mailbox"] == "bob"
    assert first["to"] == f"imaps://bob@127.0.0.1:{dovecot.imaps_port}/{name}"
    assert (first["restored"], first["skipped"]) == (1, 0)
    assert entries[-1][2]["query"] == ""
    assert dovecot.master[1] not in json.dumps([d for _, _, d in entries])


def test_a_user_signed_in_by_imap_restores_into_the_mailbox_of_their_login(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """IMAP sign-in names the user ``imap:bob``; the mailbox is the login ``bob`` gave."""
    extra = (
        '[web]\nauth = ["imap"]\n[auth.imap]\n'
        f'server = "imaps://127.0.0.1:{dovecot.imaps_port}"\nca_file = "{dovecot.ca_file}"\n'
        'addresses = ["{local}@example.com"]\n'
    )
    with restoring(tmp_path, dovecot, extra) as web:
        bob = web.login("bob", IMAP_PASSWORD)
        report = web.cast.report
        done = form_post(bob, f"/messages/{report}", f"/messages/{report}/restore")
        assert flash_text(bob, done) == "Restored 1 message to your mailbox."
        assert list(folder(dovecot, "bob", web.config.restore.folder)) == [
            crlf(web.cast.raws[report])
        ]
        [entry] = [e for e in web.audit() if e.action == "restore"]
        assert (entry.user, entry.detail["mailbox"]) == ("imap:bob", "bob")


def test_someone_elses_message_is_not_found(web: Web, dovecot: Dovecot) -> None:
    bob = web.login("bob")
    lunch = web.cast.lunch  # Dave to Erin
    token = csrf_of(bob.get(f"/messages/{web.cast.report}").text)
    page = bob.post(f"/messages/{lunch}/restore", data={"csrf": token})
    assert page.status_code == 404
    api = web.token_client("bob").post(f"/api/v1/messages/{lunch}/restore")
    assert api.status_code == 404
    assert api.json() == {"error": "not found"}
    assert folder(dovecot, "bob", web.config.restore.folder) == {}
    assert not [e for e in web.audit() if e.action.startswith("restore")]


def test_a_user_restores_only_into_their_own_mailbox(web: Web, dovecot: Dovecot) -> None:
    api = web.token_client("bob").post(
        f"/api/v1/messages/{web.cast.report}/restore", json={"mailbox": "carol"}
    )
    assert api.status_code == 403
    assert "another mailbox" in api.json()["error"]
    assert folder(dovecot, "carol", web.config.restore.folder) == {}


def test_an_admin_restores_into_another_users_mailbox(web: Web, dovecot: Dovecot) -> None:
    admin = web.token_client("admin")
    lunch = web.cast.lunch
    done = admin.post(f"/api/v1/messages/{lunch}/restore", json={"mailbox": "dave"})
    assert done.status_code == 200, done.text
    result = done.json()
    assert result == {
        "mailbox": "dave",
        "to": f"imaps://dave@127.0.0.1:{dovecot.imaps_port}/{web.config.restore.folder}",
        "count": 1,
        "restored": 1,
        "skipped": 0,
        "dry_run": False,
    }
    assert list(folder(dovecot, "dave", web.config.restore.folder)) == [crlf(web.cast.raws[lunch])]
    # and by query, through the page's form with a mailbox field of its own
    session = web.login("admin")
    page = session.get("/search", params={"q": "from:dave@example.org"})
    assert 'name="mailbox"' in page.text
    done = form_post(session, "/search", "/restore", q="from:dave@example.org", mailbox="dave")
    assert flash_text(session, done) == (
        "Restored 0 messages to dave. 1 was there already and not restored again."
    )
    entries = [e for e in web.audit("restore") if e.action == "restore"]
    assert [(e.user, e.detail["mailbox"]) for e in entries] == [("admin", "dave")] * 2


def test_more_than_the_limit_is_refused(tmp_path: Path, dovecot: Dovecot) -> None:
    with restoring(tmp_path, dovecot, max_messages="1") as web:
        bob = web.login("bob")
        page = bob.get("/search", params={"q": ""})
        assert "Restore these" not in page.text
        assert "narrow the search to at most 1 messages" in page.text
        refused = form_post(bob, "/search", "/restore", q="")
        assert refused.status_code == 400
        assert "2 messages match; at most 1" in refused.text
        api = web.token_client("bob").post("/api/v1/restore", json={"q": ""})
        assert api.status_code == 400
        one = web.token_client("bob").post("/api/v1/restore", json={"q": "subject:Q3"})
        assert one.status_code == 200, one.text
        assert one.json()["restored"] == 1
        assert len(folder(dovecot, "bob", web.config.restore.folder)) == 1


def test_too_many_restores_an_hour_are_429(tmp_path: Path, dovecot: Dovecot) -> None:
    with restoring(tmp_path, dovecot, requests_per_hour="2") as web:
        bob = web.token_client("bob")
        url = f"/api/v1/messages/{web.cast.report}/restore"
        assert [bob.post(url).status_code for _ in range(2)] == [200, 200]
        limited = bob.post(url)
        assert limited.status_code == 429
        assert "at most 2 restores an hour" in limited.json()["error"]
        assert 3000 < int(limited.headers["retry-after"]) <= 3600
        # a dry run sends nothing and counts nothing
        dry = bob.post(url, json={"dry_run": True})
        assert dry.status_code == 200
        assert dry.json()["dry_run"] is True
        # others are not held up by bob
        assert web.token_client("carol").post(url).status_code == 200


def test_a_post_without_the_csrf_token_is_403(web: Web, dovecot: Dovecot) -> None:
    bob = web.login("bob")
    page = bob.post(f"/messages/{web.cast.report}/restore", data={})
    assert page.status_code == 403
    api = bob.post(f"/api/v1/messages/{web.cast.report}/restore", json={})  # cookie, no header
    assert api.status_code == 403
    wrong = bob.post("/restore", data={"q": "", "csrf": "x" * 43})
    assert wrong.status_code == 403
    assert folder(dovecot, "bob", web.config.restore.folder) == {}


def test_a_mail_server_that_is_down_is_a_clear_502(tmp_path: Path, dovecot: Dovecot) -> None:
    with restoring(tmp_path, dovecot, imap=f'"imaps://127.0.0.1:{free_port()}"') as web:
        bob = web.login("bob")
        report = web.cast.report
        page = form_post(bob, f"/messages/{report}", f"/messages/{report}/restore")
        assert page.status_code == 502
        assert "The mail server failed" in page.text
        assert "the mail server did not take the messages" in page.text
        api = web.token_client("admin").post(f"/api/v1/messages/{report}/restore")
        assert api.status_code == 502
        assert "connection refused" in api.json()["error"]  # admins are told why
        failed = [e.detail for e in web.audit() if e.action == "restore"]
        assert len(failed) == 2
        assert all("connection refused" in d["error"] for d in failed)


def test_an_unreadable_master_password_is_503(tmp_path: Path, dovecot: Dovecot) -> None:
    with restoring(tmp_path, dovecot, master_password_file=f'"{tmp_path}/missing"') as web:
        api = web.token_client("bob").post(f"/api/v1/messages/{web.cast.report}/restore")
        assert api.status_code == 503
        assert "server log" in api.json()["error"]
        admin = web.token_client("admin").post(f"/api/v1/messages/{web.cast.report}/restore")
        assert admin.status_code == 503
        assert "missing: cannot read the master user's password" in admin.json()["error"]


@pytest.mark.parametrize(
    "ident",
    ["99999999999999999999999", str(10**20), "-1", "0", "٣", "%E4%FF", "1e3", "x" * 5000, "%00"],
)
def test_hostile_ids_are_never_a_500(web: Web, ident: str) -> None:
    token = web.token_client("bob")
    session = web.login("bob")
    csrf = csrf_of(session.get("/search").text)
    answers = [
        token.post(f"/api/v1/messages/{ident}/restore").status_code,
        token.post(
            f"/api/v1/messages/{ident}/restore",
            content=b'{"mailbox": "\xff\xfe"}',  # 8-bit bytes that are not UTF-8
            headers={"content-type": "application/json"},
        ).status_code,
        session.post(f"/messages/{ident}/restore", data={"csrf": csrf}).status_code,
    ]
    assert all(code in (400, 404, 422) for code in answers), answers


@pytest.mark.parametrize(
    "body",
    [
        {"q": "from:"},
        {"q": "x" * 5000},
        {"q": 10**20},
        {"q": ["a"]},
        {"q": "", "mailbox": "bob carol"},
        {"q": "", "mailbox": "a" * 2000},
        {"q": "", "dry_run": "perhaps"},
        {"q": {"a": {"b": {"c": [[[[[]]]]]}}}},
    ],
)
def test_hostile_restore_bodies_are_a_400(web: Web, body: dict[str, Any]) -> None:
    answer = web.token_client("admin").post("/api/v1/restore", json=body)
    assert answer.status_code == 400, answer.text
    assert "error" in answer.json()


class Collect:
    """An SMTP server's handler that keeps what it is given (the MTA of an SMTP restore)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


def test_smtp_redelivers_to_the_users_first_address(tmp_path: Path, dovecot: Dovecot) -> None:
    collect = Collect()
    port = free_port()
    controller = Controller(collect, hostname="127.0.0.1", port=port)
    controller.start()
    imap_off = dict.fromkeys(("imap", "ca_file", "master_user", "master_password_file", "folder"))
    try:
        with restoring(tmp_path, dovecot, smtp=f'"127.0.0.1:{port}"', **imap_off) as web:
            carol = web.token_client("carol")  # the report's Bcc recipient
            done = carol.post(f"/api/v1/messages/{web.cast.report}/restore")
            assert done.status_code == 200, done.text
            assert done.json()["to"] == "smtp:carol@example.com"
            session = web.login("carol")
            page = session.get(f"/messages/{web.cast.report}")
            assert "Restore to my mailbox" in page.text
            nobody = web.token_client("nobody").post("/api/v1/restore", json={"q": ""})
            assert nobody.status_code == 400
            assert "no mail address" in nobody.json()["error"]
    finally:
        controller.stop()
    assert collect.got == [("<>", ["carol@example.com"], crlf(web.cast.raws[web.cast.report]))]
