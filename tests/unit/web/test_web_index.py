"""The index's lag and extraction outcomes in the API and the pages: searches say when their
results may be incomplete, stats show the lag, an attachment whose text could not be
extracted says so (hostile details escaped, never a 500)."""

from __future__ import annotations

from postfix_archiver.archive import Archive
from postfix_archiver.archive.indexer import extract_version, signature_of
from postfix_archiver.catalog import ExtractRecord
from postfix_archiver.envelope import Envelope

from .web_helpers import Web

HOSTILE_DETAIL = "<script>window.__pwned=1</script> \u00e9\x00 " + "x" * 5000


def late(archive: Archive, n: int) -> int:
    raw = f"From: zed@example.com\r\nTo: bob@example.com\r\nSubject: late {n}\r\n\r\nzqxlate\r\n"
    env = Envelope("zed@example.com", ("bob@example.com",), queue_id=f"L{n}")
    return archive.ingest(raw.encode(), env).id


def test_search_says_how_many_messages_are_not_indexed_yet(web: Web, archive: Archive) -> None:
    api = web.token_client("audra")
    assert api.get("/api/v1/messages", params={"q": "zqxlate"}).json()["not_indexed"] == 0
    late(archive, 1)
    late(archive, 2)
    doc = api.get("/api/v1/messages", params={"q": "zqxlate"}).json()
    assert (doc["total"], doc["not_indexed"]) == (0, 2)
    page = web.login("audra").get("/search", params={"q": "zqxlate"})
    assert page.status_code == 200
    assert "2 messages are not indexed yet: results may be incomplete." in page.text
    stats = api.get("/api/v1/stats").json()
    assert stats["index"]["queued"] == 2
    assert stats["index"]["lag_seconds"] >= 0
    assert "2</span> not indexed yet" in web.login("admin").get("/stats").text
    archive.index_pending()
    doc = api.get("/api/v1/messages", params={"q": "zqxlate"}).json()
    assert (doc["total"], doc["not_indexed"]) == (2, 0)
    assert (
        "not indexed yet: results"
        not in web.login("audra").get("/search", params={"q": "zqxlate"}).text
    )


def test_a_failed_extraction_shows_escaped_everywhere(web: Web, archive: Archive) -> None:
    report = web.cast.report
    [att] = archive.attachments(report)
    # as the indexer records a timed-out extraction (the extractor's detail may hold anything)
    archive.catalog.index(
        [],
        signature_of(archive),
        [
            ExtractRecord(
                att.sha256, extract_version(archive.extract_limits), "timeout", HOSTILE_DETAIL
            )
        ],
    )
    api = web.token_client("audra")
    doc = api.get(f"/api/v1/messages/{report}").json()
    assert doc["attachments"][0]["extraction"] == {"status": "timeout", "detail": HOSTILE_DETAIL}
    listed = api.get(f"/api/v1/messages/{report}/attachments").json()
    assert listed["attachments"][0]["extraction"]["status"] == "timeout"
    page = web.login("audra").get(f"/messages/{report}")
    assert page.status_code == 200
    assert "text not indexed: timeout" in page.text
    assert "<script>window.__pwned" not in page.text
    assert "&lt;script&gt;window.__pwned" in page.text
    assert api.get("/api/v1/stats").json()["index"]["extraction_failures"] == {"timeout": 1}
    stats = web.login("admin").get("/stats")
    assert stats.status_code == 200
    assert "1 timeout" in stats.text


def test_a_huge_queue_reads_fine(web: Web, archive: Archive) -> None:
    for n in range(300):
        late(archive, n)
    api = web.token_client("audra")
    assert (
        api.get("/api/v1/messages", params={"q": "zqxlate", "limit": 1}).json()["not_indexed"]
        == 300
    )
    assert api.get("/api/v1/stats").json()["index"]["queued"] == 300
