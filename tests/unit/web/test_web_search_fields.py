"""Unknown ``field:`` names refused alike by the search page, the API and the command line;
``filename:pdf`` and ``date:`` finding what they mean."""

from __future__ import annotations

import html
from pathlib import Path

from tests.unit.test_cli import Cli, one_line

from .web_helpers import Web


def test_the_search_page_shows_the_unknown_field_with_a_caret_and_a_hint(web: Web) -> None:
    client = web.login("bob")
    response = client.get("/search", params={"q": "invoice is:unread"})
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert "Bad query at position 9: unknown field 'is:'" in text
    assert "no read, unread or starred state" in text
    assert "invoice is:unread\n" + " " * 8 + "^" in text
    assert 'aria-invalid="true"' in response.text


def test_the_search_page_suggests_the_field_meant(web: Web) -> None:
    response = web.login("audra").get("/search", params={"q": "form:alice"})
    assert response.status_code == 400
    assert "did you mean from:?" in html.unescape(response.text)


def test_the_api_refuses_an_unknown_field_with_its_position(web: Web) -> None:
    client = web.token_client("audra")
    for path in ("/api/v1/messages", "/api/v1/export"):
        response = client.get(path, params={"q": "a foo:bar"})
        assert response.status_code == 400, path
        body = response.json()
        assert body["position"] == 2
        assert body["reason"].startswith("unknown field 'foo:'")


def test_quoted_the_text_is_searched(web: Web) -> None:
    response = web.token_client("audra").get("/api/v1/messages", params={"q": '"is:unread"'})
    assert response.status_code == 200
    assert response.json()["total"] == 0


def test_filename_extension_and_date_find_the_report(web: Web) -> None:
    client = web.token_client("audra")

    def ids(q: str) -> list[int]:
        response = client.get("/api/v1/messages", params={"q": q})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["results"]]

    assert ids("filename:pdf") == [web.cast.report]
    assert ids("filename:PDF") == [web.cast.report]
    assert ids('filename:"pdf"') == []
    assert ids("filename:doc") == []
    assert web.cast.report in ids("date:2025-01-07")
    assert web.cast.report in ids("date:2025")
    assert ids("date:2024") == []
    assert ids("date:2025-01-07 -date:2025-01-07") == []


def test_the_command_line_says_it_in_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.archive().close()
    result = cli("search", "in:inbox")
    assert result.returncode == 1
    assert one_line(result).startswith(
        "error: bad query at position 1: unknown field 'in:' (the archive keeps no folders"
    )
