"""Security: headers on every response, CSRF, rate limiting, hostile mail, traversal,
the append-only audit log."""

from __future__ import annotations

import logging
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import Config
from postfix_archiver.web.app import PAGE_CSP, SECURITY_HEADERS
from postfix_archiver.web.auth import RateLimiter
from postfix_archiver.web.pages import FRAME_CSP
from postfix_archiver.web.render import content_disposition, safe_filename, sanitize_html

from .web_helpers import CHEAP, HOSTILE_HTML, PASSWORD, REMOTE_IMAGE, Web, csrf_of, sql

SRC = Path(__file__).parents[3] / "src" / "postfix_archiver"


class Elements(HTMLParser):
    """What a browser would build from a page: tags, attributes, script text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(html: str, *, page: bool = False) -> None:
    """No element of ``html`` can run script or fetch from elsewhere. Our own ``page``s have
    forms and meta tags; sanitized mail has neither."""
    forbidden = {"script", "object", "embed", "base", "math", "frame", "applet"}
    if not page:  # our pages have forms, icons, meta tags and the mail frame; mail has none
        forbidden |= {"form", "input", "button", "textarea", "meta", "link", "style", "iframe",
                      "svg"}  # fmt: skip
    for tag, attrs in Elements(html).tags:
        assert tag not in forbidden, tag
        values = dict(attrs)
        assert "http-equiv" not in values, tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert not (value or "").strip().lower().startswith(("javascript:", "vbscript:")), (
                tag,
                name,
            )
            if name in ("src", "href", "action", "formaction", "background", "srcset", "poster"):
                remote = re.match(r"\s*(https?:)?//", value or "", re.I)
                assert not remote or (tag == "a" and name == "href"), (tag, name, value)


# -- headers -----------------------------------------------------------------------------


def routes(web: Web) -> list[str]:
    m = web.cast.hostile
    return [
        "/login", "/healthz", "/static/style.css", "/static/favicon.svg", "/search",
        "/search?q=from:", f"/messages/{m}", "/stats", "/audit", "/users", "/nowhere",
        "/api/v1/messages", f"/api/v1/messages/{m}", f"/api/v1/messages/{m}/raw",
        f"/api/v1/messages/{m}/attachments/2", "/api/v1/export", "/api/v1/nowhere",
        "/api/v1/openapi.json", "/messages/999999",
    ]  # fmt: skip


def assert_security_headers(response: object, frame: bool = False) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in SECURITY_HEADERS.items():
        if frame and name == "content-security-policy":
            assert headers[name] == FRAME_CSP
        elif not (frame and name == "x-frame-options"):
            assert headers[name] == value, name
    assert headers["x-frame-options"] == ("SAMEORIGIN" if frame else "DENY")
    assert "server" not in headers


def test_security_headers_on_every_response(web: Web) -> None:
    for client in (web.client(), web.login("admin"), web.login("bob")):
        for route in routes(web):
            response = client.get(route)
            assert_security_headers(response)
            cache = response.headers["cache-control"]
            assert cache == (
                "private, max-age=3600" if route.startswith("/static/") else "no-store"
            )
        for method, route in (("POST", "/logout"), ("PUT", "/search"), ("DELETE", "/api/v1/me")):
            assert_security_headers(client.request(method, route))
    frame = web.login("bob").get(f"/messages/{web.cast.hostile}/body")
    assert_security_headers(frame, frame=True)


def test_security_headers_on_server_errors(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(web.archive, "search", broken)
    client = web.login("admin", raise_server_exceptions=False)
    response = client.get("/search")
    assert response.status_code == 500
    assert_security_headers(response)
    assert "disk on fire" not in response.text


def test_page_csp_allows_no_script_and_nothing_from_elsewhere() -> None:
    directives = dict(d.strip().split(" ", 1) for d in PAGE_CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "http" not in PAGE_CSP
    assert "*" not in PAGE_CSP
    assert "unsafe" not in PAGE_CSP
    frame = dict(([*d.strip().split(" ", 1), ""])[:2] for d in FRAME_CSP.split(";"))
    assert frame["default-src"] == "'none'"
    assert frame["img-src"] == "data:"
    assert "script-src" not in frame
    assert frame["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"


def test_secure_cookies_behind_tls(tmp_path: Path) -> None:
    config = make_config(tmp_path / "home", "[web]\nsecure_cookies = true\nsession_hours = 1\n")
    with (
        Archive(config) as archive,
        open_accounts(home_url(config.archive.home), hasher=CHEAP) as accounts,
    ):
        accounts.add_user("bob", "user", PASSWORD, ["bob@example.com"])
        web = Web(config, archive, accounts, RateLimiter(), cast=None)  # type: ignore[arg-type]
        try:
            client = web.client(base_url="https://testserver")
            form = client.get("/login")
            assert form.headers["set-cookie"].startswith("__Host-pa_login=")
            assert "Secure" in form.headers["set-cookie"]
            assert form.headers["strict-transport-security"] == "max-age=31536000"
            response = client.post(
                "/login", data={"name": "bob", "password": PASSWORD, "csrf": csrf_of(form.text)}
            )
            assert response.status_code == 303
            (session,) = [c for c in response.headers.get_list("set-cookie") if "pa_session" in c]
            assert session.startswith("__Host-pa_session=")
            assert "Secure" in session
            assert "HttpOnly" in session
            assert "Max-Age=3600" in session
            assert client.get("/search").status_code == 200
        finally:
            web.close()


# -- CSRF --------------------------------------------------------------------------------


def test_forms_without_the_right_csrf_token_are_refused(web: Web) -> None:
    admin = web.login("admin")
    other = web.login("audra")
    foreign = csrf_of(other.get("/search").text)  # a valid token, of another session
    for data in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": foreign}):
        for route, fields in (
            ("/logout", {}),
            ("/users", {"name": "eve", "role": "admin", "password": "eve's password"}),
            ("/users/bob", {"role": "admin", "addresses": ""}),
            ("/users/bob/password", {"password": "taken over!"}),
            ("/users/bob/delete", {}),
        ):
            response = admin.post(route, data={**fields, **data})
            assert response.status_code == 403, (route, data)
            assert "CSRF" in response.text
    assert web.accounts.get_user("eve") is None
    assert web.accounts.require_user("bob").role == "user"
    assert admin.get("/search").status_code == 200  # still logged in


def test_csrf_header_works_for_scripts_with_a_session(web: Web) -> None:
    admin = web.login("admin")
    token = csrf_of(admin.get("/users").text)
    response = admin.post("/users/bob", data={"role": "auditor"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 303
    assert web.accounts.require_user("bob").role == "auditor"


def test_bearer_requests_need_no_csrf_token(web: Web) -> None:
    response = web.token_client("admin").post("/users/bob", data={"role": "auditor"})
    assert response.status_code == 303
    assert web.accounts.require_user("bob").role == "auditor"


def test_login_form_needs_its_own_token(web: Web) -> None:
    client = web.client()
    form = client.get("/login")
    no_field = client.post("/login", data={"name": "bob", "password": PASSWORD})
    assert no_field.status_code == 403
    assert "The form expired" in no_field.text
    stranger = web.client()  # a page elsewhere posting to us has the field but not the cookie
    forged = stranger.post(
        "/login", data={"name": "bob", "password": PASSWORD, "csrf": csrf_of(form.text)}
    )
    assert forged.status_code == 403
    assert [e.detail["reason"] for e in web.audit("login")] == ["CSRF check failed"] * 2


# -- rate limiting -----------------------------------------------------------------------


def test_login_rate_limit(web: Web) -> None:
    now = [0.0]
    web.limiter.clock = lambda: now[0]
    client = web.client()
    for _ in range(5):
        assert web.post_login(client, "bob", "wrong password").status_code == 401
    limited = web.post_login(client, "bob", PASSWORD)  # even the right password now waits
    assert limited.status_code == 429
    assert "Too many failed logins for bob from your address: try again in 15 minutes" in (
        limited.text
    )
    assert int(limited.headers["retry-after"]) == 900
    # another user from the same address, and bob from another address, are not blocked
    assert web.post_login(web.client(), "carol", PASSWORD).status_code == 303
    elsewhere = web.client(client=("198.51.100.7", 40000))
    assert web.post_login(elsewhere, "bob", PASSWORD).status_code == 303
    now[0] += 15 * 60
    assert web.post_login(client, "bob", PASSWORD).status_code == 303
    reasons = [e.detail.get("reason") for e in web.audit("login") if e.user == "bob"]
    assert reasons == ["wrong password"] * 5 + ["rate limited", None, None]


def test_success_resets_the_count(web: Web) -> None:
    client = web.client()
    for _ in range(4):
        web.post_login(client, "bob", "wrong password")
    assert web.post_login(client, "bob", PASSWORD).status_code == 303
    client.cookies.clear()
    for _ in range(4):
        assert web.post_login(client, "bob", "wrong password").status_code == 401
    assert web.post_login(client, "bob", PASSWORD).status_code == 303


def test_a_name_attacked_from_everywhere_is_limited_too() -> None:
    limiter = RateLimiter(limit=5, user_limit=50, clock=lambda: 0.0)
    for n in range(50):
        assert limiter.retry_after("bob", f"203.0.113.{n}") is None
        limiter.failure("bob", f"203.0.113.{n}")
    assert limiter.retry_after("bob", "203.0.113.200") == 900
    assert limiter.retry_after("carol", "203.0.113.200") is None


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(max_keys=100, clock=lambda: 0.0)
    for n in range(1000):
        limiter.failure(f"user{n}", "203.0.113.1")
    assert len(limiter._failures) <= 100


# -- hostile mail ------------------------------------------------------------------------


def test_sanitizer_removes_everything_active() -> None:
    clean = sanitize_html(HOSTILE_HTML)
    assert_inert(clean.html)
    lowered = clean.html.lower()
    for bad in ("<script", "onerror", "onload", "onclick", "javascript:", "<iframe", "<form",
                "<style", "<meta", "<base", "<link", "<svg", "url(", "evil.example",
                "images.example.net", "pwned"):  # fmt: skip
        assert bad not in lowered, bad
    assert clean.remote_images == 1
    link = (
        '<a href="https://example.com/ok" target="_blank" rel="noopener noreferrer">fine link</a>'
    )
    assert link in clean.html
    assert '<div style="color:red">red</div>' in clean.html


@pytest.mark.parametrize(
    "markup",
    [
        '<img src="//images.example.net/x.png">',
        '<img src=" https://images.example.net/x.png">',
        "<img src='HTTP://images.example.net/x.png'>",
        '<img srcset="http://images.example.net/x.png 2x">',
        '<table background="http://images.example.net/bg.png"><tr><td>x</td></tr></table>',
        '<td style="background: url(http://images.example.net/bg.png)">x</td>',
        '<p style="list-style-image:url(http://images.example.net/b.png)">x</p>',
        '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=">',
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        '<a href="/api/v1/messages/1/raw">relative</a>',
        "<video poster=http://images.example.net/p.png></video>",
        "<object data=http://evil.example/x></object>",
        "<!--<script>alert(1)</script>-->",
        "<scr<script>ipt>alert(1)</script>",
        "<img src=x onerror=alert(1)//",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    ],
)
def test_sanitizer_blocks_remote_loads_and_tricks(markup: str) -> None:
    clean = sanitize_html(markup).html
    assert_inert(clean)
    assert "images.example.net" not in clean
    assert "evil.example" not in clean
    assert "onerror" not in clean
    assert "data:image/svg" not in clean


def test_sanitizer_keeps_data_images_and_inline_cid_images() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    kept = sanitize_html(f'<img src="{png}" alt="x">')
    assert f'src="{png}"' in kept.html
    inline = sanitize_html('<img src="cid:Logo@Example">', {"logo@example": png})
    assert f'src="{png}"' in inline.html
    assert inline.inline_images == 1
    unknown = sanitize_html('<img src="cid:nothing@example">', {})
    assert "src" not in unknown.html


def test_hostile_message_pages_run_nothing(web: Web) -> None:
    hostile = web.cast.hostile
    client = web.login("bob")
    for route in ("/search", f"/messages/{hostile}", f"/messages/{hostile}/body"):
        page = client.get(route)
        assert page.status_code == 200
        assert_inert(page.text, page=True)
        if route.endswith("/body"):
            assert_inert(page.text.split("<body>", 1)[1])
        assert "<script" not in page.text.lower()
    message = client.get(f"/messages/{hostile}").text
    # hostile header values are shown as text
    assert (
        "&lt;/title&gt;&lt;script&gt;alert(7)&lt;/script&gt; &lt;img src=x onerror=alert(8)&gt;"
        in (message)
    )
    assert "&#34;&gt;&lt;script&gt;alert(12)&lt;/script&gt;.html" in message
    assert "&lt;b onmouseover=alert(10)&gt;hover&lt;/b&gt;" in message
    assert "invoice\ufffdfdp.exe" in message  # the right-to-left override is made visible
    body = client.get(f"/messages/{hostile}/body")
    assert REMOTE_IMAGE not in body.text
    assert "PWNED" not in body.text


def test_hostile_attachment_names_download_safely(web: Web) -> None:
    hostile = web.cast.hostile
    client = web.login("bob")
    listed = client.get(f"/api/v1/messages/{hostile}/attachments").json()["attachments"]
    names = [a["filename"] for a in listed]
    assert names == [
        "../../etc/passwd",
        '"><script>alert(12)</script>.html',
        "invoice\u202efdp.exe",
    ]
    dispositions = []
    for a in listed:
        response = client.get(a["url"])
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["x-content-type-options"] == "nosniff"
        dispositions.append(response.headers["content-disposition"])
    assert dispositions == [
        "attachment; filename=\"passwd\"; filename*=UTF-8''passwd",
        # a name with a slash is a path: only its last part is offered
        "attachment; filename=\"script_.html\"; filename*=UTF-8''script%3E.html",
        "attachment; filename=\"invoicefdp.exe\"; filename*=UTF-8''invoicefdp.exe",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/etc/shadow", "shadow"),
        ("..", "fallback.bin"),
        ("", "fallback.bin"),
        (".bashrc", "bashrc"),
        ("a\r\nContent-Type: text/html", "html"),
        ("résumé.pdf", "résumé.pdf"),
        ("x" * 300 + ".pdf", "x" * 140 + ".pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, "fallback.bin") == expected
    header = content_disposition(name, "fallback.bin")
    assert "\r" not in header
    assert "\n" not in header
    assert header.isascii()
    ascii_part = header.split('filename="', 1)[1].split('"', 1)[0]
    assert re.fullmatch(r"[A-Za-z0-9._()+,=@ -]+", ascii_part)
    assert not ascii_part.startswith(".")


# -- traversal and odd ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../web.sqlite",
        "/static/%2e%2e/%2e%2e/%2e%2e/web.sqlite",
        "/static/..%2f..%2f..%2fconfig.py",
        "/static/%2e%2e%2fapp.py",
        "/static//etc/passwd",
        "/static/../templates/base.html",
        "/static/..%5c..%5capp.py",
        "/api/v1/messages/..%2f..%2fetc%2fpasswd/raw",
        "/api/v1/messages/1%2f..%2f2/raw",
        "/api/v1/messages/1/attachments/..%2f1",
        "/api/v1/messages/1/attachments/-1",
        "/api/v1/messages/1/attachments/99999999999999999999999",
        "/api/v1/messages/99999999999999999999999/raw",
        "/api/v1/messages/-1",
        "/api/v1/messages/0",
        "/api/v1/messages/1.0",
        "/api/v1/messages/%00",
        "/messages/..%2f..%2fweb.sqlite",
        "/messages/1e3",
    ],
)
def test_no_traversal_and_no_odd_ids(web: Web, path: str) -> None:
    response = web.login("audra").get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert b"SQLite" not in response.content
    assert b"import " not in response.content
    assert b"root:" not in response.content


def test_message_ids_reveal_nothing(web: Web) -> None:
    client = web.login("carol")
    answers = {client.get(f"/messages/{i}").text for i in (web.cast.lunch, 999_999, 0)}
    assert len(answers) == 1


# -- storage -----------------------------------------------------------------------------


def test_audit_log_is_append_only_in_the_database(web: Web) -> None:
    web.login("bob")
    conn = sqlite3.connect(web.accounts_path)
    try:
        for statement in (
            "UPDATE audit SET user = 'someone else'",
            "DELETE FROM audit",
            "DELETE FROM audit WHERE id = 1",
            "INSERT OR REPLACE INTO audit (id, time, user, client, action, detail, prev_hash,"
            " hash) VALUES (1, 'now', 'x', 'x', 'login', '{}', 'x', 'x')",
            "INSERT INTO audit (id, time, user, client, action, detail, prev_hash, hash) "
            "VALUES (1, 'now', 'x', 'x', 'login', '{}', 'x', 'y') ON CONFLICT(id) DO UPDATE "
            "SET user = 'x'",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement)
        conn.rollback()
    finally:
        conn.close()
    assert web.accounts.verify_audit().ok


def test_a_tampered_audit_log_fails_verification(web: Web, tmp_path: Path) -> None:
    for name in ("bob", "carol", "dave"):
        web.login(name)
    assert web.accounts.verify_audit().ok
    # someone with the file and the sqlite3 shell: drops the guard, edits history
    sql(web.accounts_path, "DROP TRIGGER audit_no_update")
    sql(web.accounts_path, "UPDATE audit SET user = 'mallory' WHERE id = 2")
    check = web.accounts.verify_audit()
    assert not check.ok
    assert check.problem == "entry 2 was altered"


def test_no_code_updates_or_deletes_the_audit_log() -> None:
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"UPDATE\s+audit\b", text, re.I), path
        assert not re.search(r"DELETE\s+FROM\s+audit\b", text, re.I), path
        assert not re.search(r"REPLACE\s+INTO\s+audit\b", text, re.I), path


def test_secrets_are_stored_hashed_and_never_logged(
    web: Web, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, token = web.accounts.create_token("bob", "cli")
    client = web.login("bob")
    session = client.cookies.get("pa_session")
    assert session
    client.headers["Authorization"] = f"Bearer {token}"
    client.get("/api/v1/messages")
    web.accounts.close()  # checkpoint the WAL into the file
    stored = b"".join(p.read_bytes() for p in Path(config.archive.home).glob("web.sqlite*"))
    for secret in (token, session, PASSWORD):
        assert secret.encode() not in stored
        assert secret not in caplog.text
    assert b"$argon2id$" in stored
    assert (Path(config.archive.home) / "web.sqlite").stat().st_mode & 0o077 == 0
