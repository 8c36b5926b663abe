"""A message's retention date where people look: show, show --json, the API's message
document and the web message page; and ``retained-until:`` in the query language, through the
CLI, the API and the web search page, hostile values included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import make_config
from tests.unit.web.web_helpers import Web, admin_web

from postfix_archiver.archive import Archive
from postfix_archiver.cli import main
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import QueryError
from postfix_archiver.rules import compile_policy
from postfix_archiver.search import RetainedUntil, parse_query

RULES = """
[[rules]]
name = "finance"
sender = "cfo@example.com"
action = "archive"
retention = "7y"

[[rules]]
name = "chatter"
sender = "chat@example.com"
action = "archive"
retention = "90d"
"""
T0 = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)


def mail(sender: str, n: int) -> bytes:
    return f"From: {sender}\r\nTo: b@example.com\r\nSubject: m{n}\r\n\r\nbody {n}\r\n".encode()


class Kept:
    """An archive of three messages: kept 7 years (until 2031-01-31), 90 days (until
    2024-04-30) and forever (the default)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.config = make_config(home, RULES)
        home.mkdir(parents=True)
        (home / "config.toml").write_text(f'[archive]\nhome = "{home}"\n{RULES}')
        policy = compile_policy(self.config)
        with Archive(self.config) as archive:
            self.seven, self.ninety, self.forever = (
                archive.ingester.ingest(
                    mail(s, n), Envelope(s, ("b@example.com",), received=T0), policy=policy
                ).archive_id
                for n, s in enumerate(("cfo@example.com", "chat@example.com", "x@example.com"))
            )

    def cli(self, *args: str) -> tuple[int, str, str]:
        env = {"POSTFIX_ARCHIVER_HOME": str(self.home), "POSTFIX_ARCHIVER_CONFIG": None}
        result = CliRunner().invoke(main, [*args[:1], "--config", str(self.home / "config.toml"),
                                           *args[1:]], env=env)  # fmt: skip
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    def found(self, query: str) -> set[int]:
        code, out, err = self.cli("search", "--json", "--", query)
        assert code == 0, err
        return {r["id"] for r in json.loads(out)["results"]}


@pytest.fixture
def kept(tmp_path: Path) -> Kept:
    return Kept(tmp_path / "home")


def test_show_gives_the_date_or_forever(kept: Kept) -> None:
    _, out, _ = kept.cli("show", str(kept.seven))
    assert "Retained until: 2031-01-31T09:30:00+00:00" in out
    assert "retention 7y" in out  # the envelope still names the rule's period
    _, out, _ = kept.cli("show", str(kept.forever))
    assert "Retained until: forever" in out


def test_show_json_gives_the_date_or_null(kept: Kept) -> None:
    doc = json.loads(kept.cli("show", "--json", str(kept.ninety))[1])
    assert doc["retain_until"] == "2024-04-30T09:30:00+00:00"
    assert doc["envelopes"][0]["retention"] == "90d"
    assert json.loads(kept.cli("show", "--json", str(kept.forever))[1])["retain_until"] is None


@pytest.mark.parametrize(
    ("query", "which"),
    [
        ("retained-until:<2027-01-01", {"ninety"}),
        ("retained-until:<2024-04-30", set()),  # the day it ends is not before that day
        ("retained-until:<2024-05", {"ninety"}),
        ("retained-until:>2030", {"seven", "forever"}),  # forever is later than any date
        ("retained-until:>2031", {"forever"}),
        ("retained-until:>2024-04-29", {"seven", "ninety", "forever"}),
        ("retained-until:>2024-04-30", {"seven", "forever"}),
        ("retained-until:>2024-04-30T09:29:59", {"seven", "ninety", "forever"}),
        ("retained-until:>2024-04-30T09:30:00", {"seven", "forever"}),
        ("retained-until:forever", {"forever"}),
        ("retained-until:FOREVER", {"forever"}),
        ("-retained-until:forever", {"seven", "ninety"}),
        # NOT is the complement, forever included on the right side
        ("-retained-until:<2027", {"seven", "forever"}),
        ("-retained-until:>2030", {"ninety"}),
        ("retained-until:>2030 -retained-until:forever", {"seven"}),
        ("retained-until:<0001 OR retained-until:>9999", {"forever"}),
    ],
)
def test_retained_until_finds_by_the_date(kept: Kept, query: str, which: set[str]) -> None:
    assert kept.found(query) == {getattr(kept, name) for name in which}


HOSTILE = [
    "retained-until:<99999",
    "retained-until:>99999-01-01",
    "retained-until:<0000",
    "retained-until:<２０３０",
    "retained-until:>٢٠٣٠-01-01",
    "retained-until:<2030-13",
    "retained-until:<2030-02-30",
    "retained-until:>2030-01-01T24:00",
    "retained-until:2030",
    "retained-until:<",
    "retained-until:=2030",
    "retained-until:<" + "9" * 3000,
    "retained-until:never",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_values_are_query_errors(query: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("x " + query)
    assert caught.value.position == 2
    assert caught.value.reason.startswith("retained-until: needs <WHEN, >WHEN or forever")
    assert len(caught.value.reason) < 200  # the value is cut, not echoed whole


def test_the_ends_of_the_calendar_parse() -> None:
    assert parse_query("retained-until:>9999") == RetainedUntil("after", 253402300800)
    assert parse_query("retained-until:<0001") == RetainedUntil("before", -62135596800)


@pytest.mark.parametrize("query", HOSTILE[:6])
def test_hostile_values_through_the_cli_are_one_line(kept: Kept, query: str) -> None:
    code, out, err = kept.cli("search", "--", query)
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("error: bad query at position 1: retained-until: needs")


@pytest.fixture
def web(kept: Kept) -> Iterator[Web]:
    with admin_web(kept.config) as (_, web):
        yield web


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_values_through_the_api_and_the_search_page(web: Web, query: str) -> None:
    client = web.login("admin")
    api = client.get("/api/v1/messages", params={"q": query})
    assert api.status_code == 400, api.text
    assert api.json()["reason"].startswith("retained-until: needs")
    page = client.get("/search", params={"q": query})
    assert page.status_code == 400
    assert "retained-until: needs" in page.text


def test_the_api_and_the_message_page_show_the_retention(kept: Kept, web: Web) -> None:
    client = web.login("admin")
    assert client.get(f"/api/v1/messages/{kept.seven}").json()["retain_until"] == (
        "2031-01-31T09:30:00+00:00"
    )
    assert client.get(f"/api/v1/messages/{kept.forever}").json()["retain_until"] is None
    found = client.get("/api/v1/messages", params={"q": "retained-until:forever"}).json()
    assert [r["id"] for r in found["results"]] == [kept.forever]
    page = client.get(f"/messages/{kept.seven}").text
    assert "<th>Retained until</th>" in page
    assert '<time datetime="2031-01-31T09:30:00+00:00">' in page
    page = client.get(f"/messages/{kept.forever}").text
    assert "<th>Retained until</th><td>forever</td>" in page
