"""The users pages: redirect after every change with a one-time message, forms that keep what
was typed after an error, removal only after a confirmation, last login, API tokens."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from .web_helpers import PASSWORD, Web, csrf_of

FRANK = {"name": "frank", "role": "auditor", "addresses": "frank@example.com\nf2@example.com",
         "password": "frank's password"}  # fmt: skip


def _admin(web: Web) -> tuple[Any, str]:
    client = web.login("admin")
    return client, csrf_of(client.get("/users").text)


def _message(html: str) -> str | None:
    found = re.search(r'<p (?:id="status" )?class="(?:notice|error)" role="\w+">([^<]*)</p>', html)
    return unescape(found.group(1)) if found else None


def test_a_change_redirects_and_its_message_shows_once(web: Web) -> None:
    client, csrf = _admin(web)
    added = client.post("/users", data={"csrf": csrf, **FRANK})
    assert added.status_code == 303
    assert added.headers["location"] == "/users#status"
    first = client.get("/users")
    assert _message(first.text) == "Added frank (auditor)."
    # shown once: the page deleted it, a reload says nothing
    assert _message(client.get("/users").text) is None
    assert web.accounts.require_user("frank").role == "auditor"


def test_the_message_cannot_be_made_up_or_moved_to_another_session(web: Web) -> None:
    client, csrf = _admin(web)
    client.post("/users", data={"csrf": csrf, **FRANK})
    cookie = client.cookies.get("pa_flash")
    assert cookie
    other = web.login("admin")
    other.cookies.set("pa_flash", cookie)
    assert _message(other.get("/users").text) is None  # signed for the first session only
    payload, _, signature = cookie.partition(".")
    forged = "eyJraW5kIjogIm5vdGljZSIsICJ0ZXh0IjogIkhBQ0tFRCJ9"  # {"kind":"notice","text":"HACKED"}
    for value in (f"{forged}.{signature}", forged, "x" * 9000, "%C3%A9.%FF", f"{payload}."):
        client.cookies.set("pa_flash", value)
        page = client.get("/users")
        assert page.status_code == 200
        assert _message(page.text) is None
    # nothing in the address is shown either
    page = client.get("/users", params={"notice": "HACKED", "error": "HACKED"})
    assert "HACKED" not in page.text


def test_a_script_with_a_token_gets_the_redirect_alone(web: Web) -> None:
    response = web.token_client("admin").post("/users", data=FRANK)
    assert response.status_code == 303
    assert "set-cookie" not in response.headers


def test_a_refused_add_keeps_what_was_typed_but_the_password(web: Web) -> None:
    client, csrf = _admin(web)
    sent = {**FRANK, "addresses": "frank@example.com\nnot-an-address"}
    response = client.post("/users", data={"csrf": csrf, **sent})
    assert response.status_code == 400
    assert "not a mail address" in (_message(response.text) or "")
    form = response.text.split('<form method="post" action="/users#add"', 1)[1].split("</form>")[0]
    assert 'name="name" required pattern="[A-Za-z0-9][A-Za-z0-9._@\\-]{0,63}" value="frank"' in form
    assert '<option value="auditor" selected>' in form
    assert "frank@example.com\nnot-an-address</textarea>" in form
    assert "frank&#39;s password" not in response.text
    assert "frank's password" not in response.text
    assert web.accounts.get_user("frank") is None


def test_an_existing_name_is_refused_without_sending_the_admin_to_the_shell(web: Web) -> None:
    client, csrf = _admin(web)
    response = client.post("/users", data={"csrf": csrf, **FRANK, "name": "BOB"})
    assert response.status_code == 400
    assert _message(response.text) == (
        "A user 'BOB' exists already: choose another name, or change theirs in the list above."
    )
    page = client.get("/users").text
    assert "postfix-archiver" not in page.split("<main", 1)[1]  # no command lines to type


def test_a_refused_row_change_keeps_that_rows_values(web: Web) -> None:
    client, csrf = _admin(web)
    response = client.post(
        "/users/bob", data={"csrf": csrf, "role": "auditor", "addresses": "bob@example.com x@"}
    )
    assert response.status_code == 400
    assert (_message(response.text) or "").startswith("bob: ")
    assert 'placeholder="one address per line">bob@example.com x@</textarea>' in response.text
    assert web.accounts.require_user("bob").role == "user"


def test_remove_asks_first(web: Web) -> None:
    client, csrf = _admin(web)
    # the list links to a confirmation page; a bare POST only leads there
    assert 'href="/users/bob/remove"' in client.get("/users").text
    bare = client.post("/users/bob/delete", data={"csrf": csrf})
    assert (bare.status_code, bare.headers["location"]) == (303, "/users/bob/remove")
    wrong = client.post("/users/bob/delete", data={"csrf": csrf, "confirm": "carol"})
    assert wrong.status_code == 303
    assert web.accounts.get_user("bob") is not None
    web.accounts.create_token("bob", "laptop")
    confirm = client.get("/users/bob/remove")
    assert confirm.status_code == 200
    assert "Remove bob?" in confirm.text
    assert "their 1 API token is revoked" in confirm.text
    assert '<input type="hidden" name="confirm" value="bob">' in confirm.text
    assert '<a href="/users">Cancel</a>' in confirm.text
    done = client.post("/users/bob/delete", data={"csrf": csrf_of(confirm.text), "confirm": "bob"})
    assert (done.status_code, done.headers["location"]) == (303, "/users")
    assert web.accounts.get_user("bob") is None
    assert _message(client.get("/users").text) == (
        "Removed bob with their sessions and API tokens."
    )


def test_remove_refusals_are_clear(web: Web) -> None:
    client, _ = _admin(web)
    self_page = client.get("/users/admin/remove")
    assert self_page.status_code == 400
    assert "You cannot remove yourself: another admin can." in self_page.text
    assert client.get("/users/ghost/remove").status_code == 404
    assert "no user &#39;ghost&#39;" in client.get("/users/ghost/remove").text


@pytest.mark.parametrize(
    "name", ["x" * 201, "%00", "%ff%fe", "b%C3%B6b", "١٢٣", "..%2F..%2Fetc", "bob%0d%0aX:%20y"]
)
def test_hostile_names_in_user_paths_are_not_500(web: Web, name: str) -> None:
    client, csrf = _admin(web)
    for tail, data in (
        ("/remove", None),
        ("/tokens", None),
        ("", {"csrf": csrf, "role": "user", "addresses": ""}),
        ("/password", {"csrf": csrf, "password": "long enough!"}),
        ("/delete", {"csrf": csrf, "confirm": "x"}),
        ("/tokens", {"csrf": csrf, "label": "x"}),
        ("/tokens/1/revoke", {"csrf": csrf}),
    ):
        url = f"/users/{name}{tail}"
        response = client.get(url) if data is None else client.post(url, data=data)
        assert response.status_code in (303, 400, 404), (tail, response.status_code)
        assert "Traceback" not in response.text


@pytest.mark.parametrize("token", ["0", "-1", "99999999999999999999", "١", "x"])
def test_bad_token_ids_are_400(web: Web, token: str) -> None:
    client, csrf = _admin(web)
    response = client.post(f"/users/bob/tokens/{token}/revoke", data={"csrf": csrf})
    assert response.status_code == 400


def test_last_login_is_shown(web: Web) -> None:
    client, _ = _admin(web)

    def last_login() -> str:
        found = re.search(r"<strong>bob</strong>.*?<td class=\"lastlogin\">(.*?)</td>",
                          client.get("/users").text, re.S)  # fmt: skip
        assert found
        return found.group(1)

    assert last_login() == '<span class="hint">never</span>'
    fresh = web.client()
    assert web.post_login(fresh, "bob", "wrong password").status_code != 303
    assert web.accounts.require_user("bob").last_login is None  # a failed login is no login
    web.login("bob")
    when = web.accounts.require_user("bob").last_login
    assert when is not None
    assert last_login() == when[:16].replace("T", " ") + " UTC"


def test_api_tokens_are_made_shown_once_and_revoked_in_the_page(web: Web) -> None:
    client, csrf = _admin(web)
    assert 'href="/users/bob/tokens">API tokens (0)</a>' in client.get("/users").text
    made = client.post("/users/bob/tokens", data={"csrf": csrf, "label": "backup script"})
    assert (made.status_code, made.headers["location"]) == (303, "/users/bob/tokens")
    page = client.get("/users/bob/tokens").text
    secret = re.search(r'class="secret" readonly value="(pa_[^"]+)"', page)
    assert secret, page
    assert "shown only this once" in page
    assert "pa_" not in client.get("/users/bob/tokens").text
    script = web.client()
    script.headers["Authorization"] = f"Bearer {secret.group(1)}"
    assert script.get("/api/v1/me").json()["name"] == "bob"
    (info,) = web.accounts.tokens("bob")
    assert info.label == "backup script"
    assert "backup script" in client.get("/users/bob/tokens").text
    revoked = client.post(f"/users/bob/tokens/{info.id}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 303
    assert _message(client.get("/users/bob/tokens").text) == f"Revoked token {info.id} of bob."
    assert script.get("/api/v1/me").status_code == 401
    again = client.post(f"/users/bob/tokens/{info.id}/revoke", data={"csrf": csrf})
    assert again.status_code == 303
    assert _message(client.get("/users/bob/tokens").text) == f"bob has no token {info.id}."
    actions = [(e.action, e.detail["name"]) for e in web.audit() if e.action.startswith("token")]
    assert actions == [("token.create", "bob"), ("token.revoke", "bob")]
    assert secret.group(1) not in str([e.detail for e in web.audit()])


def test_users_pages_are_for_admins_only(web: Web) -> None:
    audra = web.login("audra")
    csrf = csrf_of(audra.get("/search").text)
    for path, data in (
        ("/users/bob/remove", None),
        ("/users/bob/tokens", None),
        ("/users/bob/tokens", {"csrf": csrf, "label": "x"}),
        ("/users/bob/tokens/1/revoke", {"csrf": csrf}),
        ("/users/bob/delete", {"csrf": csrf, "confirm": "bob"}),
    ):
        response = audra.get(path) if data is None else audra.post(path, data=data)
        assert response.status_code == 403, path
    admin = web.login("admin")
    for path in ("/users/bob/tokens", "/users/bob/tokens/1/revoke", "/users/bob/delete"):
        assert admin.post(path, data={"csrf": "forged", "confirm": "bob"}).status_code == 403
    assert web.accounts.tokens("bob") == []
    assert web.accounts.get_user("bob") is not None


def test_password_is_never_echoed(web: Web) -> None:
    client, csrf = _admin(web)
    response = client.post("/users/bob/password", data={"csrf": csrf, "password": "short"})
    assert response.status_code == 400
    assert 'value="short"' not in response.text
    assert PASSWORD not in response.text
