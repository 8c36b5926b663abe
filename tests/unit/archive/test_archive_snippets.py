"""Result snippets: the window chosen, the spans marked (as the index matches), and the
snippet of an archived message read through the read model, whatever the message."""

from __future__ import annotations

import base64
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.archive import Archive
from postfix_archiver.archive.reading import TextCache
from postfix_archiver.archive.service import (
    MAX_SNIPPETS,
    SNIPPET_BUDGET,
    SNIPPET_MAX_SIZE,
)
from postfix_archiver.archive.snippets import (
    ELLIPSIS,
    LONG_MATCH,
    SCAN_LIMIT,
    SNAP,
    WIDTH,
    Highlighter,
    Snippet,
    message_sources,
)
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import index_text_of
from postfix_archiver.search import parse_query

ENVELOPE = Envelope("alice@example.com", ("bob@example.com",))
FILLER = "Nothing to see in this sentence at all. " * 30


def snip(query: str, body: str, subject: str = "") -> Snippet | None:
    return Highlighter(parse_query(query)).snippet([("body", body), ("subject", subject)])


def marked(snippet: Snippet | None) -> list[str]:
    assert snippet is not None
    return [snippet.text[start:end] for start, end in snippet.marks]


def check_shape(snippet: Snippet) -> None:
    """Marks sorted, inside the text, not overlapping; the text one line, of window size."""
    previous = 0
    for start, end in snippet.marks:
        assert previous <= start < end <= len(snippet.text)
        previous = end
    assert "\n" not in snippet.text
    assert "  " not in snippet.text
    assert len(snippet.text) <= WIDTH + 2 * SNAP + 2


# -- marking as the index matches ------------------------------------------------------------


def test_words_are_marked_case_insensitively_in_a_window_around_them() -> None:
    body = FILLER + "The Quarterly REPORT is attached. " + FILLER
    snippet = snip("report quarterly", body)
    assert snippet is not None
    assert marked(snippet) == ["Quarterly", "REPORT"]
    check_shape(snippet)
    assert snippet.text.startswith(ELLIPSIS)
    assert snippet.text.endswith(ELLIPSIS)
    assert snippet.source == "body"
    assert snippet.to_json()["marks"] == [list(m) for m in snippet.marks]


def test_the_window_is_cut_at_word_boundaries() -> None:
    body = (
        " ".join(f"word{i}" for i in range(200)) + " needle " + " ".join("x" * 7 for _ in range(99))
    )
    snippet = snip("needle", body)
    assert snippet is not None
    inner = snippet.text.strip(ELLIPSIS)
    for piece in inner.split(" "):  # no word is cut in half
        assert piece == "needle" or piece.startswith("word") or piece == "x" * 7, piece
    assert inner.split(" ")[0] != "ord199"


def test_only_whole_words_match_unless_a_prefix_is_asked() -> None:
    body = "reports are not a report, reporting neither"
    assert marked(snip("report", body)) == ["report"]
    assert marked(snip("report*", body)) == ["report", "report", "report"]
    assert marked(snip("rep*", "a reply, a REPLAY")) == ["rep", "REP"]


def test_diacritics_do_not_count_either_way() -> None:
    assert marked(snip("resume", "Mon résumé, ton RÉSUMÉ")) == ["résumé", "RÉSUMÉ"]
    assert marked(snip("café", "un cafe, deux CAFES")) == ["cafe"]
    # decomposed text (e + combining accent), as some mail programs send it
    snippet = snip("cafe", "un cafe\u0301 noir")
    assert marked(snippet) == ["café"]


def test_phrases_mark_consecutive_words_whatever_separates_them() -> None:
    body = "the q3, report; and the report q3 and q3\n\n  report"
    snippet = snip('"q3 report"', body)
    assert marked(snippet) == ["q3, report", "q3 report"]  # newlines made one space
    assert marked(snip("e-mail", "send an e-mail or an email or e mail")) == ["e-mail", "e mail"]


def test_negated_terms_are_never_marked() -> None:
    body = "invoice and draft and invoice"
    assert marked(snip("invoice -draft", body)) == ["invoice", "invoice"]
    assert marked(snip("invoice NOT (draft OR x)", body)) == ["invoice", "invoice"]


def test_or_marks_each_alternative() -> None:
    assert marked(snip("invoice OR bill", "a bill, an invoice")) == ["bill", "invoice"]


def test_korean_japanese_chinese_terms_match_inside_runs() -> None:
    assert marked(snip("회의", "오늘 정기회의는 3시입니다")) == ["회의"]
    assert marked(snip("보고서", "보고서를 보냈습니다")) == ["보고서"]
    assert marked(snip("会議", "東京での会議は")) == ["会議"]
    assert marked(snip("会议", "北京会议纪要")) == ["会议"]
    # Latin next to them stays whole-word
    assert marked(snip("q3", "Q3회의 q35")) == ["Q3"]


def test_the_window_with_most_different_terms_wins() -> None:
    body = "alpha " + FILLER + " alpha alpha alpha " + FILLER + " alpha beta " + FILLER
    snippet = snip("alpha beta", body)
    assert marked(snippet) == ["alpha", "beta"]


def test_subject_terms_are_marked_only_in_the_subject() -> None:
    snippet = snip("subject:budget", "the budget is in the body", "Budget 2025")
    assert snippet is not None
    assert snippet.source == "subject"
    assert marked(snippet) == ["Budget"]
    # a free word found in the body shows the body
    assert snip("budget", "the budget is in the body", "Budget 2025").source == "body"  # type: ignore[union-attr]


def test_without_free_text_the_start_of_the_body_unmarked() -> None:
    snippet = snip("from:alice after:2020-01-01", "\n\n   Hello Bob,\n\nthe minutes. " + FILLER)
    assert snippet is not None
    assert snippet.text.startswith("Hello Bob, the minutes.")
    assert snippet.marks == ()
    assert snippet.text.endswith(ELLIPSIS)
    assert snip("", "   \n\t ") is None  # nothing to show
    assert snip("", "") is None


def test_a_term_found_elsewhere_leaves_the_start_of_the_body() -> None:
    # the index found it in an address or an attachment name
    snippet = snip("alice", "Hello there")
    assert snippet is not None
    assert (snippet.text, snippet.marks) == ("Hello there", ())


def test_control_characters_and_escapes_become_spaces() -> None:
    snippet = snip("bell", "a\x1b[31m bell\x07\x00 \r\nrang")
    assert snippet is not None
    assert snippet.text == "a [31m bell rang"
    assert marked(snippet) == ["bell"]


def test_html_in_text_is_text() -> None:
    snippet = snip("bold", "<script>alert(1)</script> <b>bold</b>")
    assert snippet is not None
    assert snippet.pieces() == [
        ("<script>alert(1)</script> <b>", False),
        ("bold", True),
        ("</b>", False),
    ]


# -- hostile queries and text ----------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        '".*(" "[a-" "\\\\" "$^|+?{1}"',
        "x" * 3000,
        " ".join(f"w{i}* -n{i}" for i in range(250)),
        '"\x00\x01\udcff\xff"',
        "٣٤ ²",
        "*",
        '"!!!" a',
    ],
)
def test_hostile_queries_mark_only_what_they_say(query: str) -> None:
    body = ("Text .*( [a- \\ $^|+?{1} ÿ ٣٤ ² " + FILLER) * 3
    started = time.perf_counter()
    snippet = Highlighter(parse_query(query)).snippet([("body", body)])
    assert time.perf_counter() - started < 1
    assert snippet is not None
    check_shape(snippet)
    for piece in marked(snippet):
        # a mark begins and ends with a letter or digit: never punctuation taken as a pattern
        assert piece[0].isalnum(), piece
        assert piece[-1].isalnum(), piece


def test_many_terms_over_a_large_text_stay_fast() -> None:
    body = "wörd ünïcode " * 50_000
    query = " ".join(f"ü{i}* wörd{i}" for i in range(250))
    started = time.perf_counter()
    Highlighter(parse_query(query)).snippet([("body", body)])
    assert time.perf_counter() - started < 1


def test_many_long_phrases_over_a_large_body_stay_fast() -> None:
    # every term is tried at each place one may start: 64 phrases of 28 tokens at each "a"
    # of 100,000 characters took 3-5 s a message, minutes a page
    phrases = ['"' + " ".join(["a"] * (28 - i % 7)) + f' z{i}"' for i in range(64)]
    highlighter = Highlighter(parse_query(" OR ".join(phrases)))
    body = "z0 " + "a " * 50_000
    started = time.perf_counter()
    snippet = highlighter.snippet([("body", body)])
    assert time.perf_counter() - started < 0.5
    assert snippet is not None
    check_shape(snippet)
    # a long phrase has its start marked
    assert marked(snippet)[0] == " ".join(["a"] * 8)


def test_a_phrase_whose_words_are_far_apart_shows_their_ends() -> None:
    # the index ignores what separates a phrase's words: 9,000 hyphens too
    snippet = snip('"foo bar"', "intro foo" + "-" * 9000 + "bar and more")
    assert snippet is not None
    assert snippet.text == "intro foo" + ELLIPSIS + "bar and more"
    assert marked(snippet) == ["foo", "bar"]
    snippet = snip('"one two three four"', "one two " + "= " * 3000 + "three four")
    assert snippet is not None
    assert marked(snippet) == ["one two", "three four"]
    check_shape(snippet)
    # a shorter match is shown whole
    body = "one two " + "= " * (LONG_MATCH // 2 - 10) + "three four"
    assert marked(snip('"one two three four"', body)) == [body]


@pytest.mark.parametrize(
    ("body", "query", "found"),
    [
        ("회의자료", '"회의 자료"', False),  # one run: its pairs are 회의 의자 자료
        ("회의 자료", '"회의 자료"', True),
        ("東京2024年", '"東京 2024"', True),  # a script change is a token break
        ("a会議b", '"a 会議 b"', True),
        ("会議は", "会議", True),
        ("ｶｲｷﾞ です", "カイギ", True),  # half-width Katakana: NFKC, as the index
        ("カイギ です", "ｶｲｷﾞ", True),
        ("ㅎㅚ의", "회의", True),  # compatibility jamo
        ("各々", "々", True),
        ("ゟ の", "より", True),  # one character, two in NFKC
        ("がいこく", "かいこく", False),  # the voiced mark is not a diacritic to the index
        ("έργο", "εργο", False),  # nor Greek accents
        ("résumé", "resume", True),
        ("do_not", '"do not"', True),
    ],
)
def test_marks_agree_with_what_the_index_finds(
    archive: Archive, body: str, query: str, found: bool
) -> None:
    raw = "From: a@example.com\nSubject: x\nContent-Type: text/plain; charset=utf-8\n\n"
    message = ingest(archive, (raw + body + "\n").encode())
    assert [r.id for r in archive.search(query).results] == ([message] if found else [])
    (snippet,) = archive.snippets([archive.get(message)], query)
    assert snippet is not None
    assert snippet.text == body  # as written, not as normalized
    assert bool(snippet.marks) is found, snippet.pieces()


@pytest.mark.parametrize("body", ["ｶ" + "ﾞ" * 30_000, "ㄱ" + "ㅏ" * 30_000, "ｶｲｷﾞ" * 8_000])
def test_text_that_normalization_joins_stays_fast(body: str) -> None:
    started = time.perf_counter()
    snippet = snip("カ OR 가", body)
    assert time.perf_counter() - started < 1
    assert snippet is not None
    check_shape(snippet)


def test_marks_of_normalized_text_are_where_it_is_written() -> None:
    snippet = snip("カイギ OR 회의", "x ｶｲｷﾞ y ㅎㅚ의 z ゟ")
    assert marked(snippet) == ["ｶｲｷﾞ", "ㅎㅚ의"]
    assert marked(snip("よ", "ゟ ゟ")) == ["ゟ", "ゟ"]  # inside a character: all of it


def test_a_match_past_the_scan_limit_is_not_looked_for() -> None:
    body = "a " * SCAN_LIMIT + "needle"
    started = time.perf_counter()
    snippet = snip("needle", body * 25)  # 10 MB of text
    assert time.perf_counter() - started < 1
    assert snippet is not None
    assert snippet.marks == ()
    assert snippet.text.startswith("a a a")


# -- through the archive ---------------------------------------------------------------------


def ingest(archive: Archive, raw: bytes) -> int:
    """Archive and index ``raw`` (the index lags behind ingest: searching needs it made)."""
    message = archive.ingest(raw, ENVELOPE).id
    archive.index_pending()
    return message


def snippet_of(archive: Archive, query: str, message: int) -> Snippet | None:
    page = archive.search(query)
    assert [r.id for r in page.results] == [message]
    (snippet,) = archive.snippets(page.results, query)
    return snippet


def test_a_query_typed_in_a_latin_1_terminal_is_marked_as_it_is_searched(
    archive: Archive,
) -> None:
    message = ingest(archive, "From: a@example.com\nSubject: x\n\nun café noir\n".encode())
    query = "caf\udce9"  # "café" in Latin-1 from argv: a surrogate escape
    (snippet,) = archive.snippets(archive.search(query).results, query)
    assert marked(snippet) == ["café"]
    assert [r.id for r in archive.search(query).results] == [message]


def test_a_query_without_terms_to_mark_reads_no_message(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    message = ingest(archive, b"From: a@example.com\nSubject: Budget\n\nthe budget\n")
    row = archive.get(message)
    archive.store.delete(f"m/{row.sha256}")  # had it been read, a warning would say so
    assert archive.snippets([row], "from:a@example.com") == [None]
    assert archive.snippets([row], "") == [None]
    (snippet,) = archive.snippets([row], "subject:budget")  # the subject is enough
    assert snippet is not None
    assert (snippet.source, marked(snippet)) == ("subject", ["Budget"])
    assert "no snippet" not in caplog.text


def test_a_page_of_snippets_keeps_to_its_time_budget(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SNIPPET_BUDGET <= 0.25
    messages = [
        ingest(archive, b"From: a@example.com\nSubject: s\n\nkiwi %d\n" % n) for n in range(12)
    ]
    rows = [archive.get(m) for m in messages]
    assert all(s is not None for s in archive.snippets(rows, "kiwi"))
    archive._texts = TextCache(SCAN_LIMIT)  # read each again
    slow_get = archive.store.get

    def slow_store(key: str) -> bytes:  # a store on a slow disk or network
        time.sleep(0.3)
        return slow_get(key)

    monkeypatch.setattr(archive.store, "get", slow_store)
    started = time.perf_counter()
    first, *rest = archive.snippets(rows, "kiwi", budget=0.1)
    # the first result has its snippet (a loaded machine alone never leaves a page without
    # any), the rest none: the budget was spent, and the page did not wait for them (12
    # reads take 3.6 s)
    assert time.perf_counter() - started < 1.5
    assert marked(first) == ["kiwi"]
    assert rest == [None] * len(rest)


def test_archived_message_gets_its_snippet_from_the_blob(archive: Archive) -> None:
    raw = (
        "From: a@example.com\nSubject: Minutes\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\n\n" + FILLER + "Le résumé de la réunion.\n"
    ).encode()
    message = ingest(archive, raw)
    assert marked(snippet_of(archive, "resume reunion", message)) == ["résumé", "réunion"]


def test_html_only_mail_is_snipped_from_its_visible_text(archive: Archive) -> None:
    raw = (
        b"From: a@example.com\nSubject: html\nMIME-Version: 1.0\n"
        b"Content-Type: text/html; charset=utf-8\n\n"
        b"<html><head><script>var hidden = 'secretword';</script></head>"
        b"<body><p>Visible &lt;b&gt;kiwi&lt;/b&gt; <b>fruit</b></p></body></html>\n"
    )
    message = ingest(archive, raw)
    snippet = snippet_of(archive, "kiwi", message)
    assert snippet is not None
    assert snippet.text == "Visible <b>kiwi</b> fruit"
    assert "secretword" not in snippet.text


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("euc-kr", "정기회의는 세 시입니다"),
        ("iso-2022-jp", "東京での会議は三時です"),
        ("gb2312", "北京会议纪要"),
    ],
)
def test_cjk_mail_in_its_charsets(archive: Archive, charset: str, text: str) -> None:
    raw = (
        f"From: a@example.com\nSubject: x\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset={charset}\n\n"
    ).encode() + text.encode(charset)
    message = ingest(archive, raw)
    # the index finds these words once the CJK work is in; the snippet marks them already
    (snippet,) = archive.snippets([archive.get(message)], text[2:4])
    assert marked(snippet) == [text[2:4]]


def test_undecodable_charsets_still_give_a_snippet(archive: Archive) -> None:
    raw = (
        b"From: a@example.com\nSubject: x\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\n\n"
        b"caf\xe9 \xff\xfe\x80 plum \xc3\x28 end\n"
    )
    message = ingest(archive, raw)
    snippet = snippet_of(archive, "plum", message)
    assert marked(snippet) == ["plum"]
    assert snippet is not None
    check_shape(snippet)


def test_a_ten_megabyte_body_is_quick(archive: Archive) -> None:
    body = b"lead needle line\n" + b"filler text line of the body\n" * (10_000_000 // 29)
    raw = b"From: a@example.com\nSubject: big\n\n" + body
    message = ingest(archive, raw)
    row = archive.get(message)
    archive.snippets([row], "needle")  # the first read parses it
    started = time.perf_counter()
    (snippet,) = archive.snippets([row], "needle")  # then the parse cache has it
    assert time.perf_counter() - started < 0.5
    assert marked(snippet) == ["needle"]


def test_an_unreadable_message_has_no_snippet(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    good = ingest(archive, b"From: a@example.com\nSubject: one\n\nfind me\n")
    lost = ingest(archive, b"From: a@example.com\nSubject: two\n\nfind me too\n")
    archive.store.delete(f"m/{archive.get(lost).sha256}")
    page = archive.search("find")
    snippets = dict(
        zip([r.id for r in page.results], archive.snippets(page.results, "find"), strict=True)
    )
    assert snippets[lost] is None
    assert marked(snippets[good]) == ["find"]
    assert f"no snippet for message {lost}" in caplog.text


def test_only_the_first_results_of_a_huge_page_get_snippets(archive: Archive) -> None:
    message = ingest(archive, b"From: a@example.com\nSubject: one\n\nfind me\n")
    rows = [archive.get(message)] * (MAX_SNIPPETS + 1)
    snippets = archive.snippets(rows, "find")
    assert snippets[0] is not None
    assert snippets[-1] is None


def test_shortened_keeps_the_first_mark_in_view() -> None:
    snippet = snip("budget", FILLER + " the travel budget is over " + FILLER)
    assert snippet is not None
    short = snippet.shortened(40)
    assert len(short.text) == 40
    assert short.text.startswith(ELLIPSIS)
    assert short.text.endswith(ELLIPSIS)
    assert marked(short) == ["budget"]
    assert snippet.shortened(len(snippet.text)) is snippet


def test_snippets_use_a_kept_parse_and_keep_the_parses_of_message_pages(
    archive: Archive,
) -> None:
    viewed = ingest(archive, b"From: a@example.com\nSubject: v\n\nviewed kiwi\n")
    others = [
        ingest(archive, b"From: a@example.com\nSubject: o\n\nother kiwi %d\n" % n)
        for n in range(20)
    ]
    archive.read(viewed)  # the message page: its parse is kept
    rows = [archive.get(m) for m in others]
    assert all(s is not None for s in archive.snippets(rows, "kiwi"))
    # the blob is gone: what is shown now comes from what was kept
    archive.store.delete(f"m/{archive.get(viewed).sha256}")
    (snippet,) = archive.snippets([archive.get(viewed)], "kiwi")
    assert marked(snippet) == ["kiwi"]
    assert archive.read(viewed).parsed.subject == "v"  # 20 snippets did not push it out


def test_a_page_shown_again_reads_no_blob(archive: Archive) -> None:
    message = ingest(archive, b"From: a@example.com\nSubject: s\n\nshown twice\n")
    rows = [archive.get(message)]
    archive.snippets(rows, "twice")
    archive.store.delete(f"m/{archive.get(message).sha256}")
    (snippet,) = archive.snippets(rows, "shown")
    assert marked(snippet) == ["shown"]


def test_a_message_past_the_size_limit_is_not_read(archive: Archive) -> None:
    filler = b"x" * 76 + b"\n"
    body = b"melon\n" + filler * (SNIPPET_MAX_SIZE // len(filler) + 1)
    message = ingest(archive, b"From: a@example.com\nSubject: Big melon\n\n" + body)
    row = archive.get(message)
    assert row.size > SNIPPET_MAX_SIZE
    archive.store.delete(f"m/{row.sha256}")  # it is not read: its subject is enough
    (snippet,) = archive.snippets([row], "melon")
    assert snippet is not None
    assert (snippet.source, marked(snippet)) == ("subject", ["melon"])
    assert archive.snippets([row], "kiwi") == [None]  # nothing else to show


# -- matches in attachment text --------------------------------------------------------------


def _with_attachment(note: str, body: str = "Please see the attached notes.") -> bytes:
    return (
        "From: a@example.com\nSubject: notes\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
        "Content-Type: text/plain; charset=utf-8\n\n"
        f"{body}\n--B\n"
        'Content-Type: text/plain; charset=utf-8; name="notes.txt"\n'
        'Content-Disposition: attachment; filename="notes.txt"\n\n'
        f"{FILLER}{note}{FILLER}\n--B--\n"
    ).encode()


def test_a_match_only_in_an_attachment_is_shown_from_its_text(archive: Archive) -> None:
    message = ingest(archive, _with_attachment("The zucchini harvest was late."))
    archive.index_pending()
    for query in ("zucchini", "attachment:zucchini", "zucchini harvest"):
        (row,) = archive.search(query).results
        assert row.id == message
        (snippet,) = archive.snippets([row], query)
        assert snippet is not None
        assert snippet.source == "attachment", query
        assert "zucchini" in [m.lower() for m in marked(snippet)], query
        check_shape(snippet)


def test_the_body_is_preferred_when_it_matches_too(archive: Archive) -> None:
    message = ingest(archive, _with_attachment("zucchini in the notes", "zucchini in the body"))
    archive.index_pending()
    (snippet,) = archive.snippets([archive.get(message)], "zucchini")
    assert snippet is not None
    assert (snippet.source, marked(snippet)) == ("body", ["zucchini"])
    # attachment: terms are marked in attachment text only
    (only,) = archive.snippets([archive.get(message)], "attachment:zucchini")
    assert only is not None
    assert only.source == "attachment"


def test_an_attachment_not_extracted_or_lost_leaves_the_body_start(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    message = archive.ingest(_with_attachment("The zucchini harvest was late."), ENVELOPE).id
    row = archive.get(message)
    # not indexed yet: no extracted text to show, the body's start instead
    (snippet,) = archive.snippets([row], "zucchini")
    assert snippet is not None
    assert (snippet.source, snippet.marks) == ("body", ())
    archive.index_pending()
    # extracted now: shown from it at once (nothing was kept of the text not there before)
    (snippet,) = archive.snippets([row], "zucchini")
    assert snippet is not None
    assert snippet.source == "attachment"
    (attachment,) = archive.attachments(message)
    archive._texts = TextCache(SCAN_LIMIT)
    archive.store.delete(f"t/{attachment.sha256}")  # the extraction cache lost
    (snippet,) = archive.snippets([row], "zucchini")
    assert snippet is not None
    assert (snippet.source, snippet.marks) == ("body", ())


# -- read from the stored skeleton: the attachments a snippet does not need are not read -----


def _attached_pdf(body: bytes, charset: str = "utf-8") -> bytes:
    pdf = base64.encodebytes(b"%PDF-1.4 " + bytes(range(256)) * 40)
    return (
        b"From: a@example.com\nSubject: report\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\n\n" + body + b"\n--B\n"
        b'Content-Type: application/pdf; name="r.pdf"\n'
        b'Content-Disposition: attachment; filename="r.pdf"\n'
        b"Content-Transfer-Encoding: base64\n\n" + pdf + b"--B--\n"
    )


def test_a_body_snippet_does_not_read_the_attachments(
    archive: Archive, caplog: pytest.LogCaptureFixture
) -> None:
    message = ingest(archive, _attached_pdf(b"the durian budget is late"))
    (attachment,) = archive.attachments(message)
    archive.store.delete(f"p/{attachment.sha256}")  # had it been read, the snippet would fail
    (snippet,) = archive.snippets([archive.get(message)], "durian")
    assert snippet is not None
    assert (snippet.source, marked(snippet)) == ("body", ["durian"])
    assert "no snippet" not in caplog.text


def _full_path_snippet(archive: Archive, query: str, message: int) -> Snippet | None:
    """The snippet as it was made before: from the whole message, rebuilt and parsed."""
    row = archive.get(message)
    body = index_text_of(archive.read_blob(row.sha256))
    return Highlighter(parse_query(query)).snippet(message_sources(body, row.subject))


_NOTE = "Content-Type: text/plain; charset={cs}\nX-Note: filename=none\n"
_NOTE += "Content-Transfer-Encoding: base64\n\n{b64}\n"


@pytest.mark.parametrize(
    ("raw", "query"),
    [
        # the match only in a later text part
        (
            b"From: a@example.com\nSubject: s\nMIME-Version: 1.0\n"
            b'Content-Type: multipart/mixed; boundary="B"\n\n--B\n'
            b"Content-Type: text/plain\n\n" + FILLER.encode() + b"\n--B\n"
            b"Content-Type: text/html; charset=utf-8\n\n<p>the <b>lychee</b> order</p>\n--B--\n",
            "lychee order",
        ),
        # Korean, Japanese, Chinese and 8-bit charsets beside an attachment
        (_attached_pdf("정기회의는 세 시입니다".encode("euc-kr"), "euc-kr"), "회의"),
        (_attached_pdf("東京での会議は三時です".encode("iso-2022-jp"), "iso-2022-jp"), "会議"),
        (_attached_pdf("北京会议纪要".encode("gb2312"), "gb2312"), "会议"),
        (_attached_pdf("Crème brûlée für Müller".encode("iso-8859-1"), "iso-8859-1"), "creme"),
        (_attached_pdf(b"caf\xe9 \xff\xfe plum", "x-no-such-charset"), "plum"),
        # a text part the skeleton took for an attachment (a "filename=" it reads): read
        (
            _attached_pdf(b"nothing here").replace(
                b"--B--\n",
                b"--B\n"
                + _NOTE.format(
                    cs="euc-kr",
                    b64=base64.encodebytes("회의록 ".encode("euc-kr") * 1000).decode(),
                ).encode()
                + b"--B--\n",
            ),
            "회의",
        ),
        # malformed MIME: no close delimiter, a stray delimiter, a part without headers
        (_attached_pdf(b"the fig crate").rsplit(b"--B--", 1)[0], "fig"),
        (_attached_pdf(b"the fig crate").replace(b"\n\n--B\n", b"\n\n--B\n--B\n", 1), "fig"),
        (_attached_pdf(b"the fig crate").replace(b"Content-Type: text/plain", b"X: y"), "fig"),
    ],
)
def test_the_snippet_is_the_one_of_the_whole_message(
    archive: Archive, raw: bytes, query: str
) -> None:
    message = ingest(archive, raw)
    archive._texts = TextCache(SCAN_LIMIT)
    (snippet,) = archive.snippets([archive.get(message)], query)
    assert snippet is not None
    assert snippet.marks
    assert snippet == _full_path_snippet(archive, query, message)


_PIECES = st.sampled_from(
    [
        *("kiwi", "Kiwi", "word", "café", "会議", "회의는", " ", "  ", "\n", "\t", "\xa0"),
        *("\u3000", "\x00", "\x85", "\u2028", "\xad", "—", ".", "ｶｲｷﾞ", "e\u0301"),
    ]
)


@given(st.lists(_PIECES, max_size=120))
@settings(max_examples=300, deadline=None)
def test_any_blank_is_one_plain_space_in_a_snippet(pieces: list[str]) -> None:
    text = "".join(pieces)
    snippet = snip("kiwi", text)
    if snippet is None:  # nothing visible to show
        assert all(c.isspace() or unicodedata.category(c) == "Cc" for c in text)
        return
    check_shape(snippet)
    shown = snippet.text.strip(ELLIPSIS)
    assert shown == shown.strip()
    assert all(c == " " or not (c.isspace() or unicodedata.category(c) == "Cc") for c in shown)
    assert all(m.lower() == "kiwi" for m in marked(snippet))


_WORDS = st.sampled_from(["a", "ab", "abc", "b", "ba", "x1", "1"])


@given(
    st.lists(
        st.tuples(st.lists(_WORDS, min_size=1, max_size=3), st.sampled_from(["", "*", '"'])),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.sampled_from(["a", "ab", "b", "ba", "abc", "x1", "1", " ", "-", "_", "é", "会"])),
)
@settings(max_examples=400, deadline=None)
def test_latin_terms_searched_one_by_one_match_as_one_expression(
    terms: list[tuple[list[str], str]], pieces: list[str]
) -> None:
    from postfix_archiver.archive.snippets import _merged, _Normal

    query = " ".join(
        f'"{" ".join(words)}"' if how == '"' else " ".join(words) + how for words, how in terms
    )
    marker = Highlighter(parse_query(query))
    pattern = marker._anywhere
    assert pattern is not None
    assert pattern.each  # all Latin: searched term by term
    text = _Normal("".join(pieces)).latin
    expected = [(m.start(), m.end(), m.lastindex) for m in pattern.expression.finditer(text)]
    assert _merged(pattern.each, text) == expected
