"""The HTML pages: log in and out, search, message, statistics, audit log, users."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from postfix_archiver.accounts import home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope

from .web_helpers import CHEAP, PASSWORD, Web, csrf_of


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]


# -- logging in and out ------------------------------------------------------------------


def test_pages_send_a_stranger_to_the_login_form(web: Web) -> None:
    client = web.client()
    for path in ("/search?q=a%20b", "/messages/1", "/stats", "/audit", "/users", "/"):
        response = client.get(path)
        assert response.status_code == 303, path
        if path != "/":
            assert response.headers["location"].startswith("/login?next=")
    assert (
        client.get("/search?q=a%20b").headers["location"] == "/login?next=%2Fsearch%3Fq%3Da%2520b"
    )


def test_login_sets_a_strict_http_only_session_cookie_and_goes_next(web: Web) -> None:
    client = web.client()
    form = client.get("/login?next=/stats")
    assert form.status_code == 200
    assert 'name="next" value="/stats"' in form.text
    login_cookie = form.headers["set-cookie"]
    assert login_cookie.startswith("pa_login=")
    assert "HttpOnly" in login_cookie
    assert "SameSite=strict" in login_cookie
    response = web.post_login(client, "audra", PASSWORD, "/stats")
    assert response.status_code == 303
    assert response.headers["location"] == "/stats"
    session = next(c for c in response.headers.get_list("set-cookie") if "pa_session=" in c)
    assert "HttpOnly" in session
    assert "SameSite=strict" in session
    assert "Path=/" in session
    assert f"Max-Age={8 * 3600}" in session
    assert "Secure" not in session  # [web] secure_cookies is off by default (plain http)
    assert client.get("/stats").status_code == 200


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_login_never_redirects_off_site(web: Web, target: str) -> None:
    response = web.post_login(web.client(), "bob", PASSWORD, target)
    assert response.headers["location"] == "/search"


@pytest.mark.parametrize(
    ("name", "password"), [("bob", "wrong password"), ("nosuchuser", PASSWORD), ("", "")]
)
def test_failed_login_says_so_and_is_audited(web: Web, name: str, password: str) -> None:
    client = web.client()
    response = web.post_login(client, name, password)
    assert response.status_code == 401
    assert "Wrong user name or password." in response.text
    assert "pa_session" not in response.headers.get("set-cookie", "")
    (entry,) = web.audit("login")
    assert entry.user == (name or "-")
    assert entry.detail["ok"] is False
    assert entry.detail["reason"] == ("wrong password" if name == "bob" else "unknown user")
    assert entry.client == "testclient"


def test_successful_login_is_audited(web: Web) -> None:
    web.login("bob")
    (entry,) = web.audit("login")
    assert (entry.user, entry.detail) == ("bob", {"ok": True, "method": "local"})


def test_logout_ends_the_session(web: Web) -> None:
    client = web.login("bob")
    page = client.get("/search")
    cookie = client.cookies.get("pa_session")
    response = client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    # the old cookie value no longer opens anything, even if a client kept it
    stale = web.client()
    stale.cookies.set("pa_session", cookie)
    assert stale.get("/search").status_code == 303
    assert [e.action for e in web.audit() if e.user == "bob"][-1] == "logout"


def test_a_logged_in_visit_to_the_login_form_goes_on(web: Web) -> None:
    client = web.login("bob")
    assert client.get("/login?next=/search%3Fq%3Dx").headers["location"] == "/search?q=x"


def test_sessions_expire(web: Web, config: object, tmp_path: Path, archive: Archive) -> None:
    now = [1_000_000.0]
    with open_accounts(
        home_url(web.config.archive.home), hasher=CHEAP, clock=lambda: now[0]
    ) as accounts:
        timed = Web(web.config, archive, accounts, web.limiter, web.cast)
        try:
            client = timed.login("bob")
            assert client.get("/search").status_code == 200
            now[0] += 8 * 3600 - 1
            assert client.get("/search").status_code == 200
            now[0] += 2
            assert client.get("/search").status_code == 303
        finally:
            timed.close()


# -- search ------------------------------------------------------------------------------


def test_search_page_lists_results_with_the_columns(web: Web) -> None:
    page = web.login("audra").get("/search", params={"q": "report"})
    assert page.status_code == 200
    tags = Tags(page.text)
    headers = re.findall(r"<th(?:\s[^>]*)?>(?:<a [^>]*>)?([A-Za-z]*)", page.text)
    assert headers[:5] == ["Date", "From", "To", "Subject", "Size"]
    assert tags.find("a", href=f"/messages/{web.cast.report}?q=report&order=-date&per=50&page=1")
    assert "2025-01-07 10:00" in page.text
    assert "Alice Example &lt;alice@example.com&gt;" in page.text
    assert "Q3 report" in page.text
    assert '<span class="sr">attachments: </span>' in page.text  # the attachment mark
    assert "1–1 of 1 message" in page.text
    assert tags.find("a", href="/api/v1/export?q=report&format=mbox")
    assert tags.find("a", href="/api/v1/export?q=report&format=eml-zip")
    assert '<details class="help">' in page.text
    assert "has:attachment" in page.text


def test_search_page_pages_and_sorts(web: Web, archive: Archive) -> None:
    for n in range(60):
        raw = (
            f"From: sender{n:02d}@example.com\nTo: bob@example.com\nSubject: bulk {n:02d}\n"
            f"Date: Mon, 03 Feb 2025 10:{n:02d}:00 +0000\n\nbulk\n"
        ).encode()
        archive.ingest(raw, Envelope(f"sender{n:02d}@example.com", ("bob@example.com",)))
    archive.index_pending()
    client = web.login("bob")
    first = client.get("/search", params={"q": "bulk", "per": 25})
    assert "1–25 of 60 messages" in first.text
    assert "page 1 of 3" in first.text
    assert "bulk 59" in first.text
    assert "bulk 34" not in first.text
    third = client.get("/search", params={"q": "bulk", "per": 25, "page": 3})
    assert "51–60 of 60 messages" in third.text
    assert "bulk 09" in third.text
    oldest = client.get("/search", params={"q": "bulk", "per": 25, "order": "date"})
    assert oldest.text.index("bulk 00") < oldest.text.index("bulk 01")
    assert "bulk 30" not in oldest.text
    by_subject = client.get("/search", params={"q": "bulk", "order": "-subject", "per": 100})
    assert by_subject.text.index("bulk 59") < by_subject.text.index("bulk 58")
    sort_link = Tags(first.text).find("a", href="/search?q=bulk&order=date&per=25&page=1")
    assert sort_link  # the Date column flips to oldest first
    # nonsense paging or sorting falls back instead of failing
    odd = client.get("/search", params={"q": "bulk", "per": 7, "order": "upside-down"})
    assert odd.status_code == 200
    assert "1–50 of 60 messages" in odd.text


def test_query_errors_are_shown_in_place(web: Web) -> None:
    page = web.login("bob").get("/search", params={"q": 'invoice subject:"open'})
    assert page.status_code == 400
    assert 'role="alert"' in page.text
    assert "Bad query at position 17: unterminated quote" in page.text
    assert "invoice subject:&#34;open\n                ^</pre>" in page.text  # under the quote
    assert '<details class="help" open>' in page.text
    assert 'aria-invalid="true"' in page.text
    (entry,) = web.audit("search")
    assert entry.detail["query"] == 'invoice subject:"open'
    assert "error" in entry.detail


def test_search_results_show_snippets_with_the_terms_marked(web: Web) -> None:
    page = web.login("audra").get("/search", params={"q": "quarterly"})
    assert page.status_code == 200
    assert '<p class="snippet">Here is the <mark>quarterly</mark> report.</p>' in page.text
    # a subject-only match marks the subject itself
    page = web.login("audra").get("/search", params={"q": "subject:lunch"})
    link = f"/messages/{web.cast.lunch}?q=subject%3Alunch&amp;order=-date&amp;per=50&amp;page=1"
    assert f'<a href="{link}"><mark>Lunch</mark> on Friday</a>' in page.text


def test_snippets_show_html_from_mail_as_text(web: Web, archive: Archive) -> None:
    raw = (
        b"From: mallory@evil.example\nTo: bob@example.com\nSubject: tags\n"
        b"MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
        b"<p>Look &lt;script&gt;alert(1)&lt;/script&gt; and &lt;b onclick=x()&gt;melon&lt;/b&gt;"
        b"<script>alert(2)</script><img src=x onerror=alert(3)></p>\n"
    )
    archive.ingest(raw, Envelope("mallory@evil.example", ("bob@example.com",)))
    plain = b"From: m@evil.example\nSubject: plain\n\n<b>melon</b> <script>alert(4)</script>\n"
    archive.ingest(plain, Envelope("m@evil.example", ("bob@example.com",)))
    archive.index_pending()
    page = web.login("bob").get("/search", params={"q": "melon"})
    assert page.status_code == 200
    assert (
        '<p class="snippet">Look &lt;script&gt;alert(1)&lt;/script&gt; and '
        "&lt;b onclick=x()&gt;<mark>melon</mark>&lt;/b&gt;</p>"
    ) in page.text
    assert (
        '<p class="snippet">&lt;b&gt;<mark>melon</mark>&lt;/b&gt; '
        "&lt;script&gt;alert(4)&lt;/script&gt;</p>"
    ) in page.text
    for raw_tag in ("<script>alert", "<b>", "<b onclick", "onerror="):
        assert raw_tag not in page.text


def test_a_result_whose_blob_is_lost_is_listed_without_snippet(web: Web, archive: Archive) -> None:
    lost = archive.ingest(
        b"From: a@example.com\nSubject: gone\n\nkumquat\n",
        Envelope("a@example.com", ("bob@example.com",)),
    ).id
    archive.index_pending()
    archive.store.delete(f"m/{archive.get(lost).sha256}")
    page = web.login("bob").get("/search", params={"q": "kumquat"})
    assert page.status_code == 200
    assert (
        f'<a href="/messages/{lost}?q=kumquat&amp;order=-date&amp;per=50&amp;page=1">gone</a></td>'
        in page.text
    )
    assert 'class="snippet"' not in page.text


def test_a_user_searches_only_their_mail(web: Web) -> None:
    page = web.login("carol").get("/search")
    assert "Q3 report" in page.text
    assert "Lunch on Friday" not in page.text
    assert "Statistics" not in page.text
    assert "Audit log" not in page.text


# -- one message -------------------------------------------------------------------------


def test_message_page_shows_headers_envelope_attachments_and_body(web: Web) -> None:
    report = web.cast.report
    page = web.login("audra").get(f"/messages/{report}")
    assert page.status_code == 200
    text = page.text
    assert '<h1 class="subject">Q3 report</h1>' in text
    assert "Alice Example &lt;alice@example.com&gt;" in text
    assert "&lt;alice@example.com&gt;" in text  # envelope sender
    assert re.search(r"&lt;carol@example.com&gt;</span> <span class=\"tag\"[^>]*>Bcc</span>", text)
    assert 'queue id <span class="mono">4ABC1</span>' in text
    assert "[192.0.2.10]" in text
    assert '<td class="filename">report.pdf</td>' in text
    tags = Tags(text)
    assert tags.find("a", href=f"/api/v1/messages/{report}/attachments/1")
    assert tags.find("a", href=f"/api/v1/messages/{report}/raw")
    assert '<div class="body"><pre>Here is the quarterly report.</pre></div>' in text
    assert "Message-Id" in text or "Message-ID" in text
    assert not tags.find("iframe")  # no HTML body, no frame
    (entry,) = web.audit("view")
    assert (entry.user, entry.detail) == ("audra", {"message": report, "via": "session"})


def test_message_page_decodes_encoded_headers(web: Web, archive: Archive) -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\n"
        b"To: bob@example.com\n"
        b"Subject: =?utf-8?b?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=\n\nHallo\n"
    )
    message = archive.ingest(raw, Envelope("juergen@example.de", ("bob@example.com",))).id
    page = web.login("bob").get(f"/messages/{message}")
    assert "Grüße aus München" in page.text
    assert "Jürgen Müller &lt;juergen@example.de&gt;" in page.text


def test_html_body_is_in_a_sandboxed_frame(web: Web) -> None:
    hostile = web.cast.hostile
    client = web.login("bob")
    page = client.get(f"/messages/{hostile}")
    (frame,) = Tags(page.text).find("iframe")
    assert frame["src"] == f"/messages/{hostile}/body"
    # popups only (links in mail open a new tab): never scripts nor the archive's origin
    assert frame["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    assert frame["referrerpolicy"] == "no-referrer"
    assert "1 remote image blocked" in page.text
    body = client.get(frame["src"])
    assert body.status_code == 200
    assert "<h1>Invoice</h1>" in body.text


def test_user_sees_no_one_elses_bcc_on_the_page(web: Web) -> None:
    page = web.login("bob").get(f"/messages/{web.cast.report}")
    assert "carol@example.com" not in page.text
    assert "1 other recipient not shown." in page.text


# -- statistics, audit log, users --------------------------------------------------------


def test_stats_page_draws_the_chart_here(web: Web) -> None:
    page = web.login("audra").get("/stats?by=date")  # by arrival: test_web_stats_page
    assert page.status_code == 200
    assert '<svg class="chart"' in page.text
    bars = re.findall(r"<rect class=\"bar\"[^>]*><title>([^<]*)</title>", page.text)
    assert bars[0].startswith("2025-01-07: 1 message,")
    assert len(bars) == 4  # 7th to 10th of January, one bar a day
    assert "storage ratio" in page.text
    assert '<span class="big">4</span> messages' in page.text
    assert "http" not in page.text.split("<svg", 1)[1].split("</svg>")[0]


def test_stats_and_audit_pages_are_not_for_users(web: Web) -> None:
    client = web.login("bob")
    for path in ("/stats", "/audit", "/users"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "may not" in response.text


def test_audit_page_lists_and_filters(web: Web) -> None:
    bob = web.login("bob")
    bob.get(f"/messages/{web.cast.report}")
    bob.get(f"/api/v1/messages/{web.cast.report}/raw")
    page = web.login("audra").get("/audit")
    assert page.status_code == 200
    rows = re.findall(r"<td>(bob)</td>\s*<td class=\"mono\">testclient</td>\s*<td>(\w+)</td>",
                      page.text)  # fmt: skip
    assert [a for _, a in rows][:3] == ["download", "view", "login"]
    filtered = web.login("admin").get("/audit", params={"action": "download", "user": "bob"})
    assert filtered.text.count("<td>download</td>") == 1
    assert "<td>view</td>" not in filtered.text


def test_admin_manages_users_through_the_page(web: Web) -> None:
    # each change answers 303 back to /users, which shows its message once (test_web_admin)
    client = web.login("admin")
    page = client.get("/users")
    csrf = csrf_of(page.text)
    added = client.post(
        "/users",
        data={"csrf": csrf, "name": "frank", "role": "user", "password": "frank's password",
              "addresses": "frank@example.com, Frank2@example.com"},
    )  # fmt: skip
    assert (added.status_code, added.headers["location"]) == (303, "/users#status")
    assert "Added frank (user)." in client.get("/users").text
    frank = web.accounts.get_user("frank")
    assert frank is not None
    assert frank.addresses == ("frank@example.com", "frank2@example.com")
    saved = client.post(
        "/users/frank", data={"csrf": csrf, "role": "auditor", "addresses": "f@example.com"}
    )
    assert saved.status_code == 303
    assert "Saved frank." in client.get("/users").text
    assert web.accounts.get_user("frank") == frank.__class__(
        frank.id, "frank", "auditor", ("f@example.com",), frank.created
    )
    reset = client.post("/users/frank/password", data={"csrf": csrf, "password": "a new one!"})
    assert reset.status_code == 303
    assert "New password set for frank" in client.get("/users").text
    assert web.accounts.authenticate("frank", "a new one!") is not None
    short = client.post("/users/frank/password", data={"csrf": csrf, "password": "short"})
    assert short.status_code == 400
    assert "password too short" in short.text
    removed = client.post("/users/frank/delete", data={"csrf": csrf, "confirm": "frank"})
    assert removed.status_code == 303
    assert "Removed frank" in client.get("/users").text
    assert web.accounts.get_user("frank") is None
    actions = [e.action for e in web.audit() if e.user == "admin" and e.action.startswith("user")]
    assert actions == ["user.add", "user.update", "user.password", "user.remove"]


def test_admin_cannot_lock_everyone_out(web: Web) -> None:
    client = web.login("admin")
    csrf = csrf_of(client.get("/users").text)
    response = client.post("/users/admin", data={"csrf": csrf, "role": "user", "addresses": ""})
    assert response.status_code == 400
    assert "refusing to demote the last admin" in response.text
    removal = client.post("/users/admin/delete", data={"csrf": csrf, "confirm": "admin"})
    assert removal.status_code == 400


def test_user_form_errors_are_shown(web: Web) -> None:
    client = web.login("admin")
    csrf = csrf_of(client.get("/users").text)
    for data, message in (
        ({"name": "bob", "role": "user", "password": "long enough"}, "exists already"),
        ({"name": "../x", "role": "user", "password": "long enough"}, "bad user name"),
        ({"name": "x", "role": "root", "password": "long enough"}, "unknown role"),
        ({"name": "x", "role": "user", "password": "long enough", "addresses": "not-an-address"},
         "not a mail address"),
    ):  # fmt: skip
        response = client.post("/users", data={"csrf": csrf, **data})
        assert response.status_code == 400
        assert message in response.text
