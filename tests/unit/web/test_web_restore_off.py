"""Restore with no [restore] in the config: no button anywhere, and every restore route a
404 that says why, after the same checks as ever (log in, CSRF). The real restores, into a
real Dovecot: tests/integration/test_web_restore.py."""

from __future__ import annotations

from .web_helpers import Web, csrf_of


def test_no_buttons_without_a_restore_target(web: Web) -> None:
    bob = web.login("bob")
    assert "/restore" not in bob.get(f"/messages/{web.cast.report}").text
    assert "/restore" not in bob.get("/search", params={"q": ""}).text


def test_the_routes_say_restore_is_not_configured(web: Web) -> None:
    token = web.token_client("admin")
    for url, body in (
        (f"/api/v1/messages/{web.cast.report}/restore", None),
        ("/api/v1/restore", {"q": ""}),
    ):
        answer = token.post(url, json=body)
        assert answer.status_code == 404
        assert "not configured" in answer.json()["error"]
    bob = web.login("bob")
    csrf = csrf_of(bob.get("/search").text)
    page = bob.post(f"/messages/{web.cast.report}/restore", data={"csrf": csrf})
    assert page.status_code == 404
    assert "restoring to mailboxes is not configured" in page.text
    assert not [e for e in web.audit() if e.action.startswith("restore")]


def test_logging_in_and_csrf_come_first(web: Web) -> None:
    anonymous = web.client()
    assert anonymous.post("/api/v1/restore", json={"q": ""}).status_code == 401
    assert anonymous.post(f"/messages/{web.cast.report}/restore").status_code == 303  # to log in
    bob = web.login("bob")
    assert bob.post(f"/messages/{web.cast.report}/restore", data={}).status_code == 403
    assert bob.post("/api/v1/restore", json={"q": ""}).status_code == 403
