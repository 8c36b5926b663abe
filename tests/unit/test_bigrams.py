"""``bigrams``: the index form and the query form of Korean, Japanese and Chinese text.

The forms are checked as strings, and then as what they are for: a real SQLite catalog
indexes random text made of CJK runs, and a query made of CJK characters must find a message
exactly when its characters stand side by side in one run (hypothesis, against that plain
substring oracle). Everything that is not CJK must reach the index unchanged.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.catalog_helpers import make_arrival

from postfix_archiver.archive.events import seal
from postfix_archiver.bigrams import QueryTerm, index_form, query_form
from postfix_archiver.catalog import Catalog, Indexed, index_entry, open_catalog
from postfix_archiver.search import And, IdIs, Text

# a few characters of each script, so that random runs share pairs and queries hit and miss
HANGUL = "회의록보고서"
KANA = "での会はカイギ"
HAN = "東京会議北纪要"
ALPHABET = HANGUL + KANA + HAN
# code points of every CJK block index_form knows, as they are (NFKC leaves them alone)
CJK_CHARS = st.one_of(
    st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),  # Hangul syllables
    st.characters(min_codepoint=0x3041, max_codepoint=0x3096),  # Hiragana
    st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA),  # Katakana
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # Han
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),  # Han extension A
    st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF),  # Han extension B
)
# text of any other script: Latin, Greek, Cyrillic, Arabic, Thai and the rest below U+1100,
# Ethiopic to the symbols (punctuation such as “ ” – … included) but not the CJK radicals,
# the ideographic description characters, Yi, private use, presentation and full-width
# forms, emoji, control characters, and lone surrogates (which a codec can leave in text)
NOT_CJK = st.text(
    st.one_of(
        st.characters(max_codepoint=0x10FF),
        st.characters(min_codepoint=0x1200, max_codepoint=0x2E7F),
        st.characters(min_codepoint=0x2FE0, max_codepoint=0x2FFF),
        st.characters(min_codepoint=0xA000, max_codepoint=0xA95F),
        st.characters(min_codepoint=0xE000, max_codepoint=0xF8FF),
        st.characters(min_codepoint=0xFB00, max_codepoint=0xFF65),
        st.characters(min_codepoint=0x1F000, max_codepoint=0x1FAFF),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),
    )
)


# --- the index form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("회의는", ["회의", "의는", "는"]),
        ("東京での会議は", ["東京", "京で", "での", "の会", "会議", "議は", "は"]),
        ("北京会议纪要", ["北京", "京会", "会议", "议纪", "纪要", "要"]),
        ("회의 자료", ["회의", "의", "자료", "료"]),
        ("一", ["一"]),  # a one-character run stays as it is
        ("ABC회의", ["ABC", "회의", "의"]),  # a script boundary is a token boundary
        ("2024年度", ["2024", "年度", "度"]),
        ("会議、資料。", ["会議", "議", "、", "資料", "料", "。"]),  # punctuation ends a run
        ("ｶｲｷﾞ", ["カイ", "イギ", "ギ"]),  # half-width Katakana, as the full-width form
        ("\u1112\u116c\u110b\u1174", ["회의", "의"]),  # Hangul decomposed (macOS names)
        ("カ\u3099イ", ["ガイ", "イ"]),  # Kana with a combining voiced mark
        ("\uf9d1\u4e00", ["六一", "一"]),  # a compatibility ideograph, as the unified one
        # Kangxi radicals (pdftotext's text of many CJK fonts) as the ordinary ideographs
        ("\u2f47\u672c\u306e\u2f9e", ["日本", "本の", "の車", "車"]),
        ("\u2e9f\u8a9e", ["母語", "語"]),  # of the radicals supplement, the one NFKC maps
        ("“\u2f00\u2f06”", ["“", "一二", "二", "”"]),  # radicals alone, beside punctuation
    ],
)
def test_index_form(text: str, tokens: list[str]) -> None:
    assert index_form(text).split() == tokens


@settings(max_examples=300)
@given(NOT_CJK)
def test_text_without_cjk_is_unchanged(text: str) -> None:
    assert index_form(text) == text
    assert query_form(text) == QueryTerm(text, False)


def paired(run: str) -> str:
    return " ".join([*map("".join, pairwise(run)), run[-1]])


@settings(max_examples=100)
@given(before=NOT_CJK, run=st.text(CJK_CHARS, min_size=1, max_size=80), after=NOT_CJK)
def test_only_the_run_changes(before: str, run: str, after: str) -> None:
    """What surrounds a run is kept byte for byte; the run is its pairs and last character."""
    assert index_form(before + run + after) == before + " " + paired(run) + " " + after


@pytest.mark.parametrize("length", [47, 48, 49, 65536, 65537, 65538, 2 * 65536 + 3, 300_000])
def test_long_runs_are_paired_like_short_ones(length: int) -> None:
    """Runs of 48 characters and more take another way (strided copies, in pieces)."""
    run = "".join(HAN[i * 7 % len(HAN)] + chr(0x4E00 + i % 20000) for i in range(length))[:length]
    assert index_form("x" + run + "y") == "x " + paired(run) + " y"


# --- the query form ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "form"),
    [
        ("회의", QueryTerm(" 회의 ", False)),
        ("보고서", QueryTerm(" 보고 고서 ", False)),  # the text may go on after it: no last
        ("会", QueryTerm(" 会 ", True)),  # one character: a prefix
        ("2024年", QueryTerm("2024 年 ", True)),
        ("会議 2024", QueryTerm(" 会議 議  2024", False)),  # followed: the run ends there
        ("会 ABC", QueryTerm(" 会  ABC", False)),
        ("会議!", QueryTerm(" 会議 !", False)),  # no token follows
        ("ｶｲｷﾞ", QueryTerm(" カイ イギ ", False)),
        ("invoice", QueryTerm("invoice", False)),
    ],
)
def test_query_form(term: str, form: QueryTerm) -> None:
    assert query_form(term) == form


def test_a_long_query_costs_its_length() -> None:
    """Each run asks whether a token follows it: once for the whole term, not once per run
    (a term of 200,000 one-character runs would take hours)."""
    term = "会 " * 200_000 + "x"
    started = time.perf_counter()
    form = query_form(term)
    assert time.perf_counter() - started < 10
    assert form.text.split() == ["会"] * 200_000 + ["x"]
    assert not form.prefix
    assert query_form("会 " * 3 + "!") == QueryTerm(" 会  " * 2 + " 会  !", True)


# --- what a query finds, in a real catalog --------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    home: Path = tmp_path_factory.mktemp("bigrams")
    c = open_catalog(f"sqlite://{home / 'catalog.sqlite'}")
    yield c
    c.close()


_added = 0


def add(catalog: Catalog, body: str, subject: str = "") -> int:
    """Index a message with this body and subject; its id."""
    global _added
    _added += 1
    arrival = make_arrival(_added)
    sha = hashlib.sha256(f"{_added}:{subject}:{body}".encode("utf-8", "surrogatepass")).hexdigest()
    a = replace(arrival, sha256=sha, subject=subject, body_text=body)
    [result] = catalog.add_batch([a], seal)
    # the entry as the indexer makes it (index_entry: every column in index_form)
    entry = index_entry(a.subject, a.body_text, a.attachments, a.from_, a.to, a.cc)
    catalog.index([Indexed(result.id, entry)], "test")
    return result.id


def finds(catalog: Catalog, message: int, query: str, *, phrase: bool = False) -> bool:
    page = catalog.search(And((IdIs(message), Text(query, phrase))), limit=1, offset=0)
    return page.total == 1


runs = st.lists(st.text(st.sampled_from(ALPHABET), min_size=1, max_size=12), min_size=1, max_size=4)
separators = st.sampled_from([" ", "\n", "、", "。", " x ", "ABC", "2024", "「", "\t-\t"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=runs, glue=separators, query=st.text(st.sampled_from(ALPHABET), min_size=1, max_size=4))
def test_a_cjk_query_finds_exactly_the_runs_holding_it(
    catalog: Catalog, runs: list[str], glue: str, query: str
) -> None:
    """The oracle: the query's characters side by side inside one run (a one-character
    query: anywhere in a run); never across a separator, never apart."""
    message = add(catalog, glue.join(runs))
    assert finds(catalog, message, query) == any(query in run for run in runs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=st.text(CJK_CHARS, min_size=2, max_size=40), data=st.data())
def test_any_substring_of_a_run_finds_it(catalog: Catalog, run: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(run) - 1))
    end = data.draw(st.integers(start + 1, len(run)))
    assert unicodedata.is_normalized("NFKC", run)
    message = add(catalog, f"lorem {run} ipsum", subject="x")
    assert finds(catalog, message, run[start:end])
    assert finds(catalog, message, run[start:end], phrase=True)
    assert finds(catalog, message, run[start:end] + "*")


def test_phrases_across_scripts(catalog: Catalog) -> None:
    message = add(catalog, "請求書 2024年度 会議は ABC회의록 보고서를 제출")
    for found in ("2024年度", "2024年", "2024 年", "ABC회의", "회의록 보고서", "会議は ABC회"):
        assert finds(catalog, message, found, phrase=True), found
    for missed in ("2024 度", "会議 ABC", "회의 보고서를", "ABC 의록", "年度会議"):
        assert not finds(catalog, message, missed, phrase=True), missed


def test_kangxi_radicals_from_a_pdf_are_found_by_the_ordinary_ideographs(
    catalog: Catalog,
) -> None:
    # 東京の⽇本⾞ as pdftotext gives it for a font that maps 日 and 車 to Kangxi radicals
    text = "\u6771\u4eac\u306e\u2f47\u672c\u2f9e \u2f00\u2f06"
    assert index_form(text) == index_form("東京の日本車 一二")
    message = add(catalog, f"attached: {text}")
    for found in ("日本", "日本車", "の日", "車", "一二"):
        assert finds(catalog, message, found), found
        assert finds(catalog, message, found, phrase=True), found
    assert not finds(catalog, message, "本日")


def test_latin_search_is_unchanged_beside_cjk(catalog: Catalog) -> None:
    message = add(catalog, "Quarterly report für München, 会議 attached", subject="Re: Q3")
    for found in ("quarterly", "report*", "munchen", "FÜR", "attached", "q3"):
        assert finds(catalog, message, found), found
    assert finds(catalog, message, "munchen 会議 attached", phrase=True)
    assert not finds(catalog, message, "report quarterly", phrase=True)
