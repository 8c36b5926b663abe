"""Conversations: recorded at ingest from Message-ID / In-Reply-To / References (and for mail
archived before, by the indexer from its headers), shown on the message page with only the
messages the reader may see; quoted text collapsed in the text body."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.config import Config
from postfix_archiver.conversation import thread_key
from postfix_archiver.envelope import Envelope
from postfix_archiver.web.quoting import MAX_BLOCKS, split_quoted

from .test_web_pages import Tags
from .web_helpers import Web


def mail(
    n: int,
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    in_reply_to: str = "",
    references: str = "",
) -> bytes:
    head = (
        f"From: {sender}\nTo: {to}\nSubject: {subject}\n"
        f"Date: Mon, 03 Feb 2025 1{n}:00:00 +0000\nMessage-ID: <t{n}@example.com>\n"
    )
    if in_reply_to:
        head += f"In-Reply-To: {in_reply_to}\n"
    if references:
        head += f"References: {references}\n"
    return (head + "\n" + body + "\n").encode()


QUOTING_REPLY = (
    "Works for me.\n\n"
    "On Mon, 3 Feb 2025 at 10:00, Alice Example\n<alice@example.com> wrote:\n"
    "> Shall we meet on Friday?\n> Bring the numbers.\n\nThanks"
)


def thread(archive: Archive) -> dict[str, int]:
    """Alice -> Bob, Bob's reply (References), Alice's reply to Carol only (In-Reply-To of
    Bob's reply, no References), and an unrelated message with the same subject."""
    items = {
        "start": (mail(0, "alice@example.com", "bob@example.com", "Budget", "Shall we meet?"),
                  "alice@example.com", ("bob@example.com",)),
        "reply": (mail(1, "bob@example.com", "alice@example.com", "Re: Budget", QUOTING_REPLY,
                       in_reply_to="<t0@example.com>", references="<t0@example.com>"),
                  "bob@example.com", ("alice@example.com",)),
        "aside": (mail(2, "alice@example.com", "carol@example.com", "Re: Budget", "FYI",
                       in_reply_to="<t1@example.com>"),
                  "alice@example.com", ("carol@example.com",)),
        "stranger": (mail(3, "dave@example.org", "bob@example.com", "Re: Budget", "Other"),
                     "dave@example.org", ("bob@example.com",)),
    }  # fmt: skip
    ids = {k: archive.ingest(raw, Envelope(s, r)).id for k, (raw, s, r) in items.items()}
    archive.index_pending()
    return ids


def listed(html: str) -> list[str]:
    """The conversation's entries: links to the others, and the current one's marker."""
    tags = Tags(html)
    if not tags.find("ol", **{"class": "conversation"}):
        return []
    start = html.index('<ol class="conversation">')
    part = html[start : html.index("</ol>", start)]
    return [a["href"] or "" for a in Tags(part).find("a")] + (
        ["current"] if 'aria-current="page"' in part else []
    )


def test_thread_key_names_the_root() -> None:
    assert thread_key("<c@x>", "<b@x>", "<a@x> <b@x>").key == "a@x"
    # In-Reply-To only: the parent, which the catalog may resolve to its conversation
    key = thread_key("<c@x>", "<b@x>", None)
    assert (key.key, key.parent) == ("b@x", "b@x")
    assert thread_key("<a@x>", None, None).key == "a@x"
    assert thread_key("", None, None).key == ""
    assert thread_key("not an id with spaces", "garbage", "no brackets").key == ""
    assert thread_key("<" + "x" * 5000 + ">", None, None).key == ""
    # bytes left escaped (not UTF-8) are read as Latin-1: a key is always storable text
    escaped = thread_key("<a@x>", None, "<\udcff\u202e@x> <b@x>").key
    assert escaped.startswith("\u00ff")
    escaped.encode("utf-8")


def test_the_conversation_is_on_the_message_page(web: Web, archive: Archive) -> None:
    ids = thread(archive)
    page = web.login("audra").get(f"/messages/{ids['reply']}")
    assert page.status_code == 200
    assert "Conversation (3 messages)" in page.text
    assert listed(page.text) == [f"/messages/{ids['start']}", f"/messages/{ids['aside']}",
                                 "current"]  # fmt: skip
    # the In-Reply-To-only reply joined through its parent's conversation
    aside = web.login("audra").get(f"/messages/{ids['aside']}")
    assert f"/messages/{ids['start']}" in listed(aside.text)
    # the same subject from someone else is not the conversation
    stranger = web.login("audra").get(f"/messages/{ids['stranger']}")
    assert listed(stranger.text) == []
    assert "Conversation" not in stranger.text


def test_a_user_sees_only_their_own_part_of_the_conversation(web: Web, archive: Archive) -> None:
    ids = thread(archive)
    page = web.login("bob").get(f"/messages/{ids['reply']}")
    assert listed(page.text) == [f"/messages/{ids['start']}", "current"]
    assert f"/messages/{ids['aside']}" not in page.text  # Alice to Carol: not Bob's
    assert "Conversation (2 messages)" in page.text
    carol = web.login("carol").get(f"/messages/{ids['aside']}")
    assert listed(carol.text) == []  # the only message of it she may see is this one


def test_quoted_text_is_collapsed(web: Web, archive: Archive) -> None:
    ids = thread(archive)
    page = web.login("bob").get(f"/messages/{ids['reply']}")
    (details,) = Tags(page.text).find("details", **{"class": "quoted"})
    assert details.get("open") is None
    assert "<summary>Quoted text (4 lines)</summary>" in page.text
    assert "<pre>Works for me.\n</pre>" in page.text
    assert "&gt; Shall we meet on Friday?" in page.text  # kept, only folded


def test_split_quoted_keeps_every_line() -> None:
    text = (
        "Hi\n> a\n>b\n  > c\nmine\n-----Original Message-----\nFrom: x\n> y\n"
        "Le 3 févr. 2025, Jean a écrit :\n"
    )
    blocks = split_quoted(text)
    assert "\n".join(b.text for b in blocks) == text
    assert [(b.text.split("\n")[0], b.quoted) for b in blocks] == [
        ("Hi", False),
        ("> a", True),
        ("mine", False),
        ("-----Original Message-----", True),
    ]
    fr = split_quoted("Bien.\nLe lun. 3 févr. 2025, Jean <j@x> a écrit :\n> oui")
    assert [b.quoted for b in fr] == [False, True]
    assert fr[1].text.startswith("Le lun.")
    # an attribution with no quote under it is the writer's own text
    assert [b.quoted for b in split_quoted("On Monday Alice wrote:\nnothing quoted")] == [False]
    # a blank line above the attribution stays the writer's
    blocks = split_quoted("Yes.\n\nOn Tue, Bob wrote:\n> Friday?\n")
    assert [(b.text, b.quoted) for b in blocks] == [
        ("Yes.\n", False),
        ("On Tue, Bob wrote:\n> Friday?", True),
        ("", False),
    ]
    assert split_quoted("") == [split_quoted("")[0]]


def _catalog(config: Config) -> Path:
    return Path(config.archive.home) / "catalog.sqlite"


def test_mail_archived_before_gets_its_conversation_from_the_indexer(
    config: Config, web: Web, archive: Archive
) -> None:
    ids = thread(archive)
    path = _catalog(config)
    assert path.exists()
    conn = sqlite3.connect(path)
    with conn:  # as migration 6 leaves mail archived before it
        conn.execute("UPDATE messages SET thread = NULL")
    conn.close()
    before = web.login("audra").get(f"/messages/{ids['reply']}")
    assert listed(before.text) == []  # not known yet: none shown, no error
    archive.index_pending()  # the queue is empty: the indexer fills conversations in
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM messages WHERE thread IS NULL").fetchone() == (0,)
    conn.close()
    after = web.login("audra").get(f"/messages/{ids['reply']}")
    assert listed(after.text) == [f"/messages/{ids['start']}", f"/messages/{ids['aside']}",
                                  "current"]  # fmt: skip


@pytest.mark.parametrize("message", [0, -1, 2**70, 10**6])
def test_conversation_of_bogus_ids_is_nothing(archive: Archive, message: int) -> None:
    thread(archive)
    assert archive.conversation(message) == []
    assert archive.threads([message]) == {}


def test_search_results_grouped_by_conversation(web: Web, archive: Archive) -> None:
    ids = thread(archive)
    client = web.login("audra")
    flat = client.get("/search", params={"q": "budget"})
    assert flat.text.count('<td class="date">') == 4
    grouped = client.get("/search", params={"q": "budget", "group": "1"})
    assert grouped.status_code == 200
    # newest first: the stranger's, then the aside leading its conversation of three
    assert grouped.text.count('<td class="date">') == 2
    assert "2 more in this conversation" in grouped.text
    start = grouped.text.index('<details class="thread">')
    inside = grouped.text[start : grouped.text.index("</details>", start)]
    hrefs = [a["href"] or "" for a in Tags(inside).find("a")]
    assert [h.split("?")[0] for h in hrefs] == [
        f"/messages/{ids['reply']}",
        f"/messages/{ids['start']}",
    ]
    assert all("group=1" in h for h in hrefs)  # back from the message: grouped again
    toggle = Tags(grouped.text).find("a", href="/search?q=budget&order=-date&per=50&page=1")
    assert toggle  # "Ungroup"
    # a user's groups hold their own mail only
    bob = web.login("bob").get("/search", params={"q": "budget", "group": "1"})
    assert f"/messages/{ids['aside']}?" not in bob.text


@pytest.mark.parametrize("group", ["0", "2", "-1", "\u0661", "x" * 11, "1\x00"])
def test_odd_group_values_are_not_grouped_or_refused(
    web: Web, archive: Archive, group: str
) -> None:
    thread(archive)
    page = web.login("audra").get("/search", params={"q": "budget", "group": group})
    assert page.status_code in (200, 400)
    assert "more in this conversation" not in page.text


def test_eight_bit_references_get_the_same_key_at_ingest_and_in_the_backfill(
    config: Config, archive: Archive
) -> None:
    raws = [
        b"From: a@example.com\nMessage-ID: <r\xff\xfe@x>\nSubject: one\n\nfirst\n",
        b"From: b@example.com\nMessage-ID: <s@x>\nIn-Reply-To: <r\xff\xfe@x>\n"
        b"References: <r\xff\xfe@x>\nSubject: two\n\nsecond\n",
    ]
    ids = [archive.ingest(r, Envelope("a@example.com", ("b@example.com",))).id for r in raws]
    archive.index_pending()
    at_ingest = archive.threads(ids)
    assert len(set(at_ingest.values())) == 1
    conn = sqlite3.connect(_catalog(config))
    with conn:
        conn.execute("UPDATE messages SET thread = NULL")
    conn.close()
    archive.index_pending()
    assert archive.threads(ids) == at_ingest
    assert [r.id for r in archive.conversation(ids[1])] == ids


def test_a_body_alternating_quoted_lines_makes_few_blocks() -> None:
    # one <details> per line of "a / > b / a / > b ..." made a 1 MB mail an 18 MB page
    text = "mine\n> quoted\n" * 50_000
    blocks = split_quoted(text)
    assert len(blocks) == MAX_BLOCKS
    assert "\n".join(b.text for b in blocks) == text  # every line still shown
    assert not blocks[-1].quoted
