"""The REST API through FastAPI's test client: search, view, downloads, export, roles,
tokens, audit."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from postfix_archiver.archive import search_document
from postfix_archiver.cli import main
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope
from postfix_archiver.export import export
from postfix_archiver.search import ORDERS

from .web_helpers import ATTACHMENT, Web

API_ROUTES = (
    "/api/v1/messages",
    "/api/v1/messages/1",
    "/api/v1/messages/1/raw",
    "/api/v1/messages/1/attachments",
    "/api/v1/messages/1/attachments/1",
    "/api/v1/export",
    "/api/v1/stats",
    "/api/v1/audit",
    "/api/v1/me",
    "/api/v1/openapi.json",
)


def cli_json(config: Config, monkeypatch: pytest.MonkeyPatch, *args: str) -> object:
    monkeypatch.setenv("POSTFIX_ARCHIVER_HOME", str(config.archive.home))
    monkeypatch.delenv("POSTFIX_ARCHIVER_CONFIG", raising=False)
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- search ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "extra"),
    [
        ("", []),
        ("report", []),
        ("from:alice@example.com", ["--limit", "1"]),
        ("to:bob@example.com", ["--order", "date"]),
        ("", ["--limit", "2", "--offset", "1", "--order", "-size"]),
    ],
)
def test_search_answers_what_the_cli_prints(
    web: Web, config: Config, monkeypatch: pytest.MonkeyPatch, query: str, extra: list[str]
) -> None:
    expected = cli_json(config, monkeypatch, "search", *([query] if query else []), *extra)
    params = {"q": query}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        params[flag.lstrip("-")] = value
    response = web.token_client("audra").get("/api/v1/messages", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected


def test_search_results_carry_snippets(web: Web) -> None:
    client = web.token_client("audra")
    (found,) = client.get("/api/v1/messages", params={"q": "quarterly"}).json()["results"]
    snippet = found["snippet"]
    assert snippet == {
        "text": "Here is the quarterly report.",
        "marks": [[12, 21]],
        "source": "body",
    }
    (start, end) = snippet["marks"][0]
    assert snippet["text"][start:end] == "quarterly"
    # no free text: nothing to mark, no message read, no snippet
    (lunch,) = client.get("/api/v1/messages", params={"q": "from:dave"}).json()["results"]
    assert lunch["snippet"] is None
    # a word found elsewhere (the sender's address): the start of the body, nothing marked
    (lunch,) = client.get("/api/v1/messages", params={"q": "dave from:dave"}).json()["results"]
    assert lunch["snippet"] == {"text": "Pizza again?", "marks": [], "source": "body"}


def test_snippets_can_be_left_out(web: Web) -> None:
    client = web.token_client("audra")
    params = {"q": "quarterly", "snippets": "0"}
    (found,) = client.get("/api/v1/messages", params=params).json()["results"]
    assert found["snippet"] is None
    assert found["subject"]  # the rest of the result as always
    (found,) = client.get("/api/v1/messages", params={**params, "snippets": "1"}).json()["results"]
    assert found["snippet"]["marks"] == [[12, 21]]
    bad = client.get("/api/v1/messages", params={**params, "snippets": "maybe"})
    assert bad.status_code == 400


def test_search_snippet_offsets_count_code_points(web: Web) -> None:
    raw = "From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\n"
    body = "😀 Ünïcödé 회의는 grüße"
    web.archive.ingest(
        (raw + body + "\n").encode(), Envelope("a@example.com", ("bob@example.com",))
    )
    web.archive.index_pending()
    client = web.token_client("audra")
    (found,) = client.get("/api/v1/messages", params={"q": "grusse OR gruße"}).json()["results"]
    snippet = found["snippet"]
    assert snippet["text"] == body
    assert [snippet["text"][a:b] for a, b in snippet["marks"]] == ["grüße"]
    assert snippet["marks"] == [[len(body) - 5, len(body)]]


def test_search_paging_and_every_order(web: Web) -> None:
    client = web.token_client("audra")
    everything = client.get("/api/v1/messages", params={"limit": 100}).json()
    assert everything["total"] == 4
    ids = [r["id"] for r in everything["results"]]
    paged = []
    for offset in range(0, 4, 3):
        page = client.get("/api/v1/messages", params={"limit": 3, "offset": offset}).json()
        assert page["total"] == 4
        paged += [r["id"] for r in page["results"]]
    assert paged == ids
    for order in ORDERS:
        got = client.get("/api/v1/messages", params={"order": order}).json()
        page = web.archive.search("", order=order)
        want = search_document(page, web.archive.snippets(page.results, ""))
        assert got == want, order


@pytest.mark.parametrize(
    ("query", "position"),
    [("from:", 0), ('subject:"open', 8), ("invoice OR", 8), ("a (b", 2)],
)
def test_bad_query_is_400_with_the_position(web: Web, query: str, position: int) -> None:
    response = web.token_client("bob").get("/api/v1/messages", params={"q": query})
    assert response.status_code == 400
    doc = response.json()
    assert doc["position"] == position
    assert doc["error"].startswith(f"bad query at position {position + 1}:")
    assert doc["reason"]


@pytest.mark.parametrize(
    "params",
    [{"order": "sideways"}, {"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "x"}],
)
def test_bad_parameters_are_400(web: Web, params: dict[str, object]) -> None:
    response = web.token_client("bob").get("/api/v1/messages", params=params)
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request:")


# -- one message -------------------------------------------------------------------------


def test_message_metadata_has_the_keys_of_show_json(
    web: Web, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = web.cast.report
    shown = cli_json(config, monkeypatch, "show", str(report))
    assert isinstance(shown, dict)
    doc = web.token_client("audra").get(f"/api/v1/messages/{report}").json()
    assert doc.keys() == shown.keys()
    for key in ("id", "subject", "from", "to", "sha256", "headers", "body", "defects"):
        assert doc[key] == shown[key], key
    (envelope,) = doc["envelopes"]
    assert envelope["sender"] == "alice@example.com"
    assert envelope["recipients"] == ["bob@example.com", "carol@example.com"]  # Bcc included
    assert envelope["hidden_recipients"] == 0
    (attachment,) = doc["attachments"]
    assert attachment["filename"] == "report.pdf"
    assert attachment["url"] == f"/api/v1/messages/{report}/attachments/{attachment['index']}"


def test_message_by_sha256(web: Web) -> None:
    sha = web.archive.get(web.cast.lunch).sha256
    client = web.token_client("audra")
    assert client.get(f"/api/v1/messages/{sha}").json()["id"] == web.cast.lunch
    assert client.get(f"/api/v1/messages/{sha}/raw").content == web.cast.raws[web.cast.lunch]


def test_raw_download_is_byte_exact(web: Web) -> None:
    client = web.token_client("audra")
    for message, raw in web.cast.raws.items():
        response = client.get(f"/api/v1/messages/{message}/raw")
        assert response.status_code == 200
        assert response.content == raw
        assert response.headers["content-type"] == "message/rfc822"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="message-{message}.eml"; '
            f"filename*=UTF-8''message-{message}.eml"
        )


def test_attachment_list_and_download(web: Web) -> None:
    client = web.token_client("bob")
    report = web.cast.report
    listed = client.get(f"/api/v1/messages/{report}/attachments").json()["attachments"]
    assert [a["filename"] for a in listed] == ["report.pdf"]
    response = client.get(listed[0]["url"])
    assert response.status_code == 200
    assert response.content == ATTACHMENT
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
    )
    # the text body is a leaf part too, but not an attachment: not downloadable as one
    assert client.get(f"/api/v1/messages/{report}/attachments/0").status_code == 404
    assert client.get(f"/api/v1/messages/{report}/attachments/99").status_code == 404


# -- export ------------------------------------------------------------------------------


def test_export_mbox_is_what_the_cli_writes(web: Web, tmp_path: Path) -> None:
    response = web.token_client("audra").get("/api/v1/export", params={"format": "mbox"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/mbox"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="archive-all-')  # the empty query
    assert disposition.endswith('.mbox"')
    target = tmp_path / "cli.mbox"
    export(web.archive, web.archive.iter_search(""), "mbox", target)
    assert response.content == target.read_bytes()
    assert b"\n>From here on\n>>From there\nno final newline\n" in response.content


def test_export_eml_zip_holds_every_message_byte_exact(web: Web) -> None:
    response = web.token_client("audra").get(
        "/api/v1/export", params={"format": "eml-zip", "q": "-from:dave@example.org"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        got = {int(name.removesuffix(".eml")): zf.read(name) for name in names}
    assert names == sorted(names)
    expected = {i: raw for i, raw in web.cast.raws.items() if i != web.cast.lunch}
    assert got == expected


def test_export_is_streamed(web: Web) -> None:
    client = web.token_client("audra")
    with client.stream("GET", "/api/v1/export", params={"format": "eml-zip"}) as response:
        chunks = list(response.iter_raw())
    assert len(chunks) > 1
    assert "content-length" not in response.headers


def test_export_rejects_bad_format_and_query(web: Web) -> None:
    client = web.token_client("audra")
    bad_format = client.get("/api/v1/export", params={"format": "maildir"})
    assert bad_format.status_code == 400
    bad_query = client.get("/api/v1/export", params={"q": "from:"})
    assert bad_query.status_code == 400
    assert bad_query.json()["position"] == 0


# -- who sees what -----------------------------------------------------------------------


def visible_ids(web: Web, name: str) -> set[int]:
    doc = web.token_client(name).get("/api/v1/messages", params={"limit": 100}).json()
    return {r["id"] for r in doc["results"]}


def test_each_role_sees_its_own_mail(web: Web) -> None:
    cast = web.cast
    everything = {cast.report, cast.lunch, cast.hostile, cast.quoting}
    assert visible_ids(web, "admin") == everything
    assert visible_ids(web, "audra") == everything
    assert visible_ids(web, "bob") == {cast.report, cast.hostile}  # To and envelope
    assert visible_ids(web, "carol") == {cast.report}  # only as an envelope (Bcc) recipient
    assert visible_ids(web, "dave") == {cast.lunch, cast.quoting}  # sender and recipient
    assert visible_ids(web, "nobody") == set()


def test_others_mail_is_404_on_every_per_message_endpoint(web: Web) -> None:
    cast = web.cast
    visible = {"bob": {cast.report, cast.hostile}, "carol": {cast.report},
               "dave": {cast.lunch, cast.quoting}, "nobody": set()}  # fmt: skip
    missing = web.token_client("audra").get("/api/v1/messages/999999").json()
    for name, mine in visible.items():
        client = web.token_client(name)
        for message in cast.raws:
            sha = web.archive.get(message).sha256
            for ident in (str(message), sha):
                for suffix in ("", "/raw", "/attachments", "/attachments/1", "/attachments/2"):
                    response = client.get(f"/api/v1/messages/{ident}{suffix}")
                    if message in mine:
                        assert response.status_code in (200, 404), (name, message, suffix)
                        continue
                    assert response.status_code == 404, (name, message, suffix)
                    assert response.json() == missing  # same answer as for no such id
                page = client.get(f"/messages/{ident}")
                body = client.get(f"/messages/{ident}/body")
                expected = 200 if message in mine else 404
                assert (page.status_code, body.status_code) == (expected, expected)


def test_a_user_exports_only_their_own_mail(web: Web) -> None:
    response = web.token_client("carol").get("/api/v1/export", params={"format": "eml-zip"})
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        assert [zf.read(n) for n in zf.namelist()] == [web.cast.raws[web.cast.report]]
    assert web.token_client("nobody").get("/api/v1/export").content == b""


def test_bcc_recipients_are_shown_to_auditors_and_senders_only(web: Web) -> None:
    report = web.cast.report
    web.accounts.add_user("alice", "user", "alice password", ["alice@example.com"])

    def envelope(name: str) -> dict[str, object]:
        doc = web.token_client(name).get(f"/api/v1/messages/{report}").json()
        (env,) = doc["envelopes"]
        assert isinstance(env, dict)
        return env

    full = ["bob@example.com", "carol@example.com"]
    assert envelope("audra")["recipients"] == full
    assert envelope("alice")["recipients"] == full  # the sender knows whom she wrote to
    bob = envelope("bob")
    assert bob["recipients"] == ["bob@example.com"]
    assert bob["hidden_recipients"] == 1
    assert envelope("carol")["recipients"] == ["carol@example.com"]


def test_role_changes_apply_to_the_next_request(web: Web) -> None:
    client = web.token_client("nobody")
    assert client.get(f"/api/v1/messages/{web.cast.lunch}").status_code == 404
    web.accounts.update_user("nobody", addresses=["erin@example.org"])
    assert client.get(f"/api/v1/messages/{web.cast.lunch}").status_code == 200
    web.accounts.update_user("nobody", role="auditor")
    assert client.get("/api/v1/stats").status_code == 200


def test_statistics_and_audit_are_for_auditors_and_admins(web: Web) -> None:
    for name in ("admin", "audra"):
        client = web.token_client(name)
        stats = client.get("/api/v1/stats").json()
        assert stats["messages"] == 4
        assert sum(d["messages"] for d in stats["per_day"]) == 4
        assert client.get("/api/v1/audit").status_code == 200
    for name in ("bob", "nobody"):
        client = web.token_client(name)
        for route in ("/api/v1/stats", "/api/v1/audit"):
            response = client.get(route)
            assert response.status_code == 403
            assert "your role (user) may not" in response.json()["error"]


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("route", API_ROUTES)
def test_every_api_route_needs_authentication(web: Web, route: str) -> None:
    response = web.client().get(route)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"].startswith("authentication required")


def test_a_token_authenticates_and_revoking_it_ends_that(web: Web) -> None:
    info, secret = web.accounts.create_token("bob", "laptop")
    client = web.client()
    client.headers["Authorization"] = f"Bearer {secret}"
    me = client.get("/api/v1/me").json()
    assert me == {"name": "bob", "role": "user", "addresses": ["bob@example.com"],
                  "created": me["created"], "via": "token"}  # fmt: skip
    assert web.accounts.revoke_token("bob", info.id) == 1
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid or revoked API token"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer pa_not-a-token-anyone-was-given",
        "Bearer nonsense",
        "Bearer ",
        "Basic Ym9iOnB3",
        "pa_token-without-scheme",
        "Bearer " + "pa_" + "x" * 5000,
    ],
)
def test_unknown_or_malformed_tokens_are_401(web: Web, header: str) -> None:
    client = web.client()
    client.headers["Authorization"] = header
    response = client.get("/api/v1/messages")
    assert response.status_code == 401
    assert "error" in response.json()


def test_a_bad_token_is_not_rescued_by_a_good_cookie(web: Web) -> None:
    client = web.login("audra")
    assert client.get("/api/v1/me").json()["via"] == "session"
    client.headers["Authorization"] = "Bearer pa_wrong"
    assert client.get("/api/v1/me").status_code == 401


def test_tokens_of_a_removed_user_stop_working(web: Web) -> None:
    client = web.token_client("dave")
    assert client.get("/api/v1/me").status_code == 200
    web.accounts.remove_user("dave")
    assert client.get("/api/v1/me").status_code == 401


def test_openapi_schema_for_authenticated_callers_and_no_cdn_docs(web: Web) -> None:
    client = web.token_client("bob")
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) >= {
        "/api/v1/messages",
        "/api/v1/messages/{ident}",
        "/api/v1/messages/{ident}/raw",
        "/api/v1/messages/{ident}/attachments",
        "/api/v1/messages/{ident}/attachments/{index}",
        "/api/v1/export",
    }
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert not any(p.startswith(("/login", "/search")) for p in schema["paths"])
    for route in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(route).status_code == 404


# -- audit -------------------------------------------------------------------------------


def test_every_action_is_audited_with_user_time_and_client(web: Web) -> None:
    cast = web.cast
    client = web.token_client("bob")
    client.get("/api/v1/messages", params={"q": "quarterly report"})
    client.get("/api/v1/messages", params={"q": "from:"})
    client.get(f"/api/v1/messages/{cast.report}")
    client.get(f"/api/v1/messages/{cast.report}/raw")
    client.get(f"/api/v1/messages/{cast.report}/attachments/1")
    client.get("/api/v1/export", params={"q": "report", "format": "mbox"})
    entries = [e for e in web.audit() if e.user == "bob"]
    assert [(e.action, e.detail) for e in entries] == [
        ("search", {"query": "quarterly report", "order": "-date", "offset": 0, "total": 1,
                    "via": "token"}),
        ("search", {"query": "from:", "error": entries[1].detail["error"], "via": "token"}),
        ("view", {"message": cast.report, "via": "token"}),
        ("download", {"message": cast.report, "part": "raw",
                      "size": len(cast.raws[cast.report]), "via": "token"}),
        ("download", {"message": cast.report, "part": "attachment", "index": 1,
                      "filename": "report.pdf", "sha256": entries[4].detail["sha256"],
                      "via": "token"}),
        ("export", {"query": "report", "format": "mbox", "count": 1, "via": "token"}),
    ]  # fmt: skip
    assert all(e.client == "testclient" for e in entries)
    assert all(e.time.endswith("+00:00") for e in entries)


def test_audit_api_pages_and_filters(web: Web) -> None:
    bob = web.token_client("bob")
    for q in ("one", "two", "three"):
        bob.get("/api/v1/messages", params={"q": q})
    client = web.token_client("audra")
    doc = client.get("/api/v1/audit", params={"user": "bob", "action": "search"}).json()
    assert doc["total"] == 3
    assert [e["detail"]["query"] for e in doc["entries"]] == ["three", "two", "one"]
    page = client.get("/api/v1/audit", params={"user": "bob", "limit": 1, "offset": 1}).json()
    assert [e["detail"]["query"] for e in page["entries"]] == ["two"]
    assert set(doc["entries"][0]) == {"id", "time", "user", "client", "action", "detail", "hash"}


def test_audit_api_filters_by_time_and_text_as_the_page_does(web: Web) -> None:
    bob = web.token_client("bob")
    for q in ("alpha", "beta"):
        bob.get("/api/v1/messages", params={"q": q})
    client = web.token_client("audra")
    doc = client.get("/api/v1/audit", params={"text": "alpha"}).json()
    assert [e["detail"]["query"] for e in doc["entries"]] == ["alpha"]
    (entry,) = doc["entries"]
    at = datetime.fromisoformat(entry["time"])
    around = {"text": "alpha"}
    for since, until, found in (
        (at, at + timedelta(seconds=1), 1),  # since included
        (at - timedelta(seconds=1), at, 0),  # until excluded
        (at + timedelta(microseconds=1), None, 0),
    ):
        params = {**around, "since": since.isoformat()}
        if until is not None:
            params["until"] = until.isoformat()
        assert client.get("/api/v1/audit", params=params).json()["total"] == found, params
    # the same instant written in another zone, and with Z, and without a zone (UTC)
    seoul = at.astimezone(timezone(timedelta(hours=9))).isoformat()
    assert client.get("/api/v1/audit", params={**around, "since": seoul}).json()["total"] == 1
    zulu = at.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    assert client.get("/api/v1/audit", params={**around, "since": zulu}).json()["total"] == 1
    for bad in (
        "yesterday",
        "2026-02-30",
        "٢٠٢٦-01-01",
        "0001-01-01T00:00+14:00",
        "9999-12-31T23:00-05:00",
    ):
        response = client.get("/api/v1/audit", params={"since": bad})
        assert response.status_code == 400, bad
        assert "bad since" in response.json()["error"], bad
    assert client.get("/api/v1/audit", params={"until": "x" * 41}).status_code in (400, 422)
