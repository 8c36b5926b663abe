"""Legal holds on the web: the /holds page and /api/v1/holds, who may see and change them,
CSRF, hostile names and queries, and retention and holds on the message page and document."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from postfix_archiver.archive import holds

from .web_helpers import Web, csrf_of


def place(web: Web, name: str = "case-17", query: str = "from:alice@example.com") -> None:
    holds.add_hold(web.archive, name, query, "subpoena", "admin")


def test_admin_places_and_releases_a_hold_through_the_page(web: Web) -> None:
    client = web.login("admin")
    page = client.get("/holds")
    assert page.status_code == 200
    assert "No holds." in page.text
    added = client.post(
        "/holds",
        data={"csrf": csrf_of(page.text), "name": "case-17", "query": "from:alice@example.com",
              "reason": "subpoena 17"},
    )  # fmt: skip
    assert added.status_code == 200, added.text
    assert "Hold case-17 placed: 1 messages held." in added.text
    assert web.archive.catalog.held([web.cast.report]) == {web.cast.report}
    released = client.post("/holds/case-17/release", data={"csrf": csrf_of(added.text)})
    assert "Hold case-17 released." in released.text
    assert web.archive.catalog.held([web.cast.report]) == set()
    [add, release] = [(e.user, e.action, e.detail) for e in web.audit("hold")]
    assert add[:2] == ("admin", "hold.add")
    assert add[2]["query"] == "from:alice@example.com"
    assert add[2]["count"] == 1
    assert release[:2] == ("admin", "hold.release")


def test_the_page_refuses_without_the_csrf_token(web: Web) -> None:
    client = web.login("admin")
    refused = client.post("/holds", data={"name": "x", "query": "a"})
    assert refused.status_code == 403
    place(web)
    refused = client.post("/holds/case-17/release", data={"csrf": "forged"})
    assert refused.status_code == 403
    assert holds.get_hold(web.archive, "case-17").active


def test_auditors_see_holds_read_only_and_users_not_at_all(web: Web) -> None:
    place(web)
    auditor = web.login("audra")
    page = auditor.get("/holds")
    assert page.status_code == 200
    assert "case-17" in page.text
    assert "Place a hold" not in page.text
    assert "Release" not in page.text
    assert auditor.get("/api/v1/holds").json()["holds"][0]["name"] == "case-17"
    token = web.token_client("audra")
    assert token.post("/holds/case-17/release").status_code == 403
    assert token.post("/api/v1/holds/case-17/release").status_code == 403
    assert token.post("/api/v1/holds", json={"name": "x", "query": "a"}).status_code == 403
    user = web.login("bob")
    assert user.get("/holds").status_code == 403
    assert "/holds" not in user.get("/search").text
    for client in (user, web.token_client("bob")):
        assert client.get("/api/v1/holds").status_code == 403
        assert client.get("/api/v1/holds/case-17").status_code == 403
    bob = web.token_client("bob")
    assert bob.post("/api/v1/holds", json={"name": "x", "query": "a"}).status_code == 403
    assert bob.post("/api/v1/holds/case-17/release").status_code == 403
    assert holds.get_hold(web.archive, "case-17").active
    assert web.archive.catalog.holds()[0].name == "case-17"
    assert len(web.archive.catalog.holds()) == 1


def test_nobody_signed_in_gets_nothing(web: Web) -> None:
    client = web.client()
    assert client.get("/api/v1/holds").status_code == 401
    assert client.post("/api/v1/holds", json={"name": "x", "query": "a"}).status_code in (
        401,
        303,
    )
    assert client.get("/holds").status_code == 303  # to the login form
    assert web.archive.catalog.holds() == []


def test_the_api_places_lists_shows_and_releases(web: Web) -> None:
    admin = web.token_client("admin")
    made = admin.post("/api/v1/holds", json={"name": "case-17", "query": "to:bob", "reason": "why"})
    assert made.status_code == 201, made.text
    doc = made.json()
    assert (doc["name"], doc["query"], doc["reason"], doc["active"]) == (
        "case-17", "to:bob", "why", True,
    )  # fmt: skip
    assert doc["messages"] == 2  # the report and the hostile message, both to Bob
    assert admin.get("/api/v1/holds").json() == {"holds": [doc]}
    assert admin.get("/api/v1/holds/CASE-17").json() == doc
    again = admin.post("/api/v1/holds", json={"name": "Case-17", "query": "x"})
    assert again.status_code == 409
    assert "exists already" in again.json()["error"]
    released = admin.post("/api/v1/holds/case-17/release").json()
    assert released["active"] is False
    assert released["released_by"] == "admin"
    assert admin.post("/api/v1/holds/nope/release").status_code == 404
    assert admin.get("/api/v1/holds/nope").status_code == 404


def test_a_session_needs_the_csrf_header_to_post_to_the_api(web: Web) -> None:
    client = web.login("admin")
    refused = client.post("/api/v1/holds", json={"name": "x", "query": "a"})
    assert refused.status_code == 403
    csrf = csrf_of(client.get("/holds").text)
    ok = client.post("/api/v1/holds", json={"name": "x", "query": "a"},
                     headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert ok.status_code == 201


HOSTILE_NAMES = ["", " ", "a b", "../etc", "<script>", "x" * 65, "cäse", "١٢", "a\x00b", "é" * 150]
HOSTILE_QUERIES = ["after:99999-01-01", "retained-until:<٢٠٣٠", "(", "larger:" + "9" * 30, '"']


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_clear_errors(web: Web, name: str) -> None:
    admin = web.token_client("admin")
    answer = admin.post("/api/v1/holds", json={"name": name, "query": "a"})
    assert answer.status_code == 400, answer.text
    assert "bad hold name" in answer.json()["error"]
    page = admin.post("/holds", data={"name": name, "query": "a"})
    assert page.status_code == 400
    assert "bad hold name" in page.text
    segment = quote(name, safe="") or "%20"
    assert admin.get(f"/api/v1/holds/{segment}").status_code == 404
    assert admin.post(f"/api/v1/holds/{segment}/release").status_code == 404
    assert admin.post(f"/holds/{segment}/release").status_code in (400, 404)
    assert web.archive.catalog.holds() == []


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_queries_are_clear_errors(web: Web, query: str) -> None:
    admin = web.token_client("admin")
    answer = admin.post("/api/v1/holds", json={"name": "ok", "query": query})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("bad query at position")
    page = admin.post("/holds", data={"name": "ok", "query": query})
    assert page.status_code == 400
    assert "bad query at position" in page.text
    assert web.archive.catalog.holds() == []


def test_the_message_page_and_document_show_holds_to_auditors_only(web: Web) -> None:
    place(web)
    report = web.cast.report
    for name in ("admin", "audra"):
        client = web.login(name)
        page = client.get(f"/messages/{report}").text
        assert "<th>Legal holds</th>" in page
        assert "case-17" in page
        assert "<th>Retained until</th><td>forever</td>" in page
        doc = client.get(f"/api/v1/messages/{report}").json()
        assert [h["name"] for h in doc["holds"]] == ["case-17"]
        assert doc["retain_until"] is None
    bob = web.login("bob")  # Bob sees the message, not the matter it is held for
    page = bob.get(f"/messages/{report}").text
    assert "case-17" not in page
    assert "Legal holds" not in page
    doc = bob.get(f"/api/v1/messages/{report}").json()
    assert "holds" not in doc
    assert doc["retain_until"] is None
