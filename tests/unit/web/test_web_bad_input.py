"""Bad input to the API and the pages: a clear 400 or 404 (JSON under /api), never a 500.

Issue 9 item 5: ids that ``str.isdigit`` takes but ``int`` refuses, ids past 64 bits, queries
too deep for SQLite, offsets past SQLite's integers. Item 8: one list of sort orders.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner

from postfix_archiver.cli import main
from postfix_archiver.search import MAX_DEPTH, MAX_INT, MAX_TERMS, ORDERS

from .web_helpers import Web

# ids a path may carry that name no message: each must be a plain 404, like an unknown id
BAD_IDS = [
    "²",  # str.isdigit() says yes, int() raises
    "١",  # int() reads it as 1: an Arabic-Indic digit is no archive id
    "9" * 5000,  # int() refuses more than 4300 digits
    "9" * 20,  # past SQLite's 64 bits
    str(MAX_INT + 1),
    "0",
    "-1",
    "1.0",
    "1_0",
    "0x1",
    "a" * 64,  # the length of a SHA-256, not hex
]
TOO_DEEP = "-a " * 1333  # 3999 characters: within the API's length limit
HOSTILE_DATES = [
    "after:99999-01-01",
    "before:0000-00-00",
    "after:2024-13-45",
    "after:２０２４-01-01",
    "before:2024-02-30T25:61",
    "after:9999-12-31T23:59-01:00",
]


def client(web: Web, name: str = "admin") -> Any:
    """A token client that answers 500 instead of raising the server's exception."""
    _, secret = web.accounts.create_token(name, "test")
    c = web.client(raise_server_exceptions=False)
    c.headers["Authorization"] = f"Bearer {secret}"
    return c


def session(web: Web, name: str = "admin") -> Any:
    return web.login(name, raise_server_exceptions=False)


def json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert isinstance(doc["error"], str)
    assert doc["error"]
    assert "Traceback" not in response.text
    return doc  # type: ignore[no-any-return]


# -- ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("ident", BAD_IDS)
@pytest.mark.parametrize("suffix", ["", "/raw", "/attachments", "/attachments/1"])
def test_api_bad_ids_are_404(web: Web, ident: str, suffix: str) -> None:
    response = client(web).get(f"/api/v1/messages/{ident}{suffix}")
    assert json_error(response, 404) == {"error": "not found"}


@pytest.mark.parametrize("ident", BAD_IDS)
@pytest.mark.parametrize("suffix", ["", "/body"])
def test_page_bad_ids_are_404(web: Web, ident: str, suffix: str) -> None:
    response = session(web).get(f"/messages/{ident}{suffix}")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "Traceback" not in response.text


def test_good_ids_still_work(web: Web) -> None:
    c = client(web)
    report = web.cast.report
    assert c.get(f"/api/v1/messages/{report}").json()["id"] == report
    assert c.get(f"/api/v1/messages/ {report} ").status_code == 200  # spaces around: stripped
    assert c.get(f"/api/v1/messages/000{report}").status_code == 200
    sha = c.get(f"/api/v1/messages/{report}").json()["sha256"]
    assert c.get(f"/api/v1/messages/{sha.upper()}/raw").content == web.cast.raws[report]


@pytest.mark.parametrize("index", ["99999999999999999999", "9" * 5000, "-1", "²", "x"])
def test_api_bad_attachment_index_is_a_clear_4xx(web: Web, index: str) -> None:
    response = client(web).get(f"/api/v1/messages/{web.cast.report}/attachments/{index}")
    assert response.status_code in (400, 404)
    json_error(response, response.status_code)


# -- offsets and limits -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "99999999999999999999999"},
        {"offset": str(MAX_INT + 1)},
        {"offset": "9" * 5000},
        {"offset": "-1"},
        {"limit": "99999999999999999999999"},
        {"limit": "²"},
    ],
)
def test_api_audit_offsets_past_64_bits_are_400(web: Web, params: dict[str, str]) -> None:
    doc = json_error(client(web).get("/api/v1/audit", params=params), 400)
    assert doc["error"].startswith("bad request: ")
    assert next(iter(params)) in doc["error"]


def test_api_audit_largest_offset_is_an_empty_page(web: Web) -> None:
    response = client(web).get("/api/v1/audit", params={"offset": str(MAX_INT)})
    assert response.status_code == 200
    assert response.json()["entries"] == []


@pytest.mark.parametrize(
    "params",
    [{"offset": "99999999999999999999999"}, {"limit": "9" * 30}, {"offset": "9" * 5000}],
)
def test_api_search_offsets_past_the_limit_are_400(web: Web, params: dict[str, str]) -> None:
    doc = json_error(client(web).get("/api/v1/messages", params=params), 400)
    assert doc["error"].startswith("bad request: ")


@pytest.mark.parametrize(
    "query",
    ["page=99999999999999999999", "page=0", "page=²", "per=99999999999999999999", "per=-5"],
)
def test_page_bad_numbers_are_not_500(web: Web, query: str) -> None:
    s = session(web)
    for path in ("/search", "/audit"):
        response = s.get(f"{path}?{query}")
        assert response.status_code in (200, 400), (path, response.status_code)
        assert "Traceback" not in response.text


# -- queries ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/export"])
def test_api_query_too_deep_for_sqlite_is_400(web: Web, path: str) -> None:
    assert len(TOO_DEEP) <= 4000
    doc = json_error(client(web).get(path, params={"q": TOO_DEEP}), 400)
    assert doc["reason"] == (
        f"too many terms: at most {MAX_TERMS} words, phrases and field:value terms"
    )
    assert doc["position"] == 3 * MAX_TERMS + 1  # the "a" of the first "-a" too many
    assert doc["error"] == f"bad query at position {3 * MAX_TERMS + 2}: {doc['reason']}"


def test_page_query_too_deep_for_sqlite_is_400(web: Web) -> None:
    response = session(web).get("/search", params={"q": TOO_DEEP})
    assert response.status_code == 400
    assert f"too many terms: at most {MAX_TERMS}" in response.text


@pytest.mark.parametrize(
    "query",
    [
        " ".join(f"-to:x{i}@example.com" for i in range(MAX_TERMS)),
        " OR ".join(f"-from:x{i}" for i in range(MAX_TERMS)),
        "(" * (MAX_DEPTH - 1)
        + " OR ".join(f"-w{i}" for i in range(MAX_TERMS))
        + ")" * (MAX_DEPTH - 1),
        "".join(f"-from:a{i} (" for i in range(MAX_DEPTH - 1))
        + " OR ".join(f"-to:y{i}" for i in range(MAX_TERMS - MAX_DEPTH + 1))
        + ")" * (MAX_DEPTH - 1),
    ],
    ids=["and", "or", "deep-or", "staircase"],
)
@pytest.mark.parametrize("user", ["admin", "bob"])  # bob: his own addresses join the SQL
def test_the_largest_queries_the_parser_allows_run(web: Web, query: str, user: str) -> None:
    # the term limit is only right if the worst shapes at the limit stay inside SQLite's
    # expression depth (run through the API, not the 4000-character limit of ?q=)
    response = web.archive.search(query, visible_to=web.accounts.require_user(user).visible_to)
    assert response.total >= 0


@pytest.mark.parametrize("query", HOSTILE_DATES)
def test_api_hostile_dates_are_query_errors(web: Web, query: str) -> None:
    doc = json_error(client(web).get("/api/v1/messages", params={"q": query}), 400)
    assert doc["position"] == 0
    assert "needs a date like 2024-01-31" in doc["reason"]


@pytest.mark.parametrize("query", HOSTILE_DATES)
def test_page_hostile_dates_are_query_errors(web: Web, query: str) -> None:
    response = session(web).get("/search", params={"q": query})
    assert response.status_code == 400
    assert "needs a date like 2024-01-31" in response.text


# -- one list of sort orders (item 8) ---------------------------------------------------


def test_api_page_and_cli_offer_the_same_orders(web: Web) -> None:
    schema = client(web).get("/api/v1/openapi.json").json()
    (order,) = [
        p for p in schema["paths"]["/api/v1/messages"]["get"]["parameters"] if p["name"] == "order"
    ]
    assert order["schema"]["enum"] == list(ORDERS)
    assert order["schema"]["default"] == ORDERS[0]

    html = session(web).get("/search").text
    # the page's sort links, one per order (a link each: a change applies at once)
    offered = re.findall(r"order=([^&\"]+)", html.split('class="orders"')[1].split("</nav>")[0])
    assert [o.replace("%2D", "-") for o in offered] == list(ORDERS)

    option = next(p for p in main.commands["search"].params if p.name == "order")
    assert list(option.type.choices) == list(ORDERS)  # type: ignore[attr-defined]
    assert option.default == ORDERS[0]


@pytest.mark.parametrize("order", ["from", "-from"])
def test_sender_order_everywhere(web: Web, order: str, monkeypatch: pytest.MonkeyPatch) -> None:
    want = [r.id for r in web.archive.search("", order=order).results]
    senders = [web.archive.get(i).from_.lower() for i in want]
    assert senders == sorted(senders, reverse=order.startswith("-"))
    api = client(web).get("/api/v1/messages", params={"order": order}).json()
    assert [r["id"] for r in api["results"]] == want
    assert session(web).get("/search", params={"order": order}).status_code == 200
    monkeypatch.setenv("POSTFIX_ARCHIVER_HOME", str(web.config.archive.home))
    monkeypatch.delenv("POSTFIX_ARCHIVER_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["search", "--json", "--order", order])
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)["results"]] == want


def test_accounts_take_numbers_past_64_bits(web: Web) -> None:
    # below the parameter checks of the API and the CLI, the accounts answer such numbers
    # as what they are (past the end, no such token) instead of raising OverflowError
    web.accounts.record("admin", "local", "login")
    total, entries = web.accounts.audit(offset=2**64, limit=2**64)
    assert total == 1
    assert entries == []
    assert web.accounts.audit(limit=2**64)[1]
    assert web.accounts.revoke_token("bob", 2**64) == 0
    assert web.accounts.revoke_token("bob", -1) == 0
