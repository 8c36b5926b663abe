"""How Korean, Japanese and Chinese text is indexed and searched: overlapping bigrams.

These scripts put no spaces between words (Japanese, Chinese) or write particles onto nouns
(Korean ``회의는``), so a word tokenizer sees a whole run as one token and ``회의`` finds
nothing inside it. As Lucene's CJKAnalyzer does, each maximal run of Han, Hiragana, Katakana
and Hangul (scripts mixed: ``東京での`` is one run) is indexed as its overlapping pairs of
characters, and a query's run is searched as the phrase of its pairs: a query of two or more
characters then finds it wherever it stands inside a longer run, and nowhere else (``会議``
does not find ``会`` ... ``議`` apart).

Where we differ from Lucene: each run also ends with its last character on its own
(``会議は`` → ``会議 議は は``), so that every character of a run starts exactly one token.
A one-character query is then a prefix match (``会*``) that finds that character anywhere in
a run; with pairs alone, a character at the end of a run was not found. Inside a quoted
phrase, a run that something follows in the query is matched with that last character too,
so a phrase across scripts (``"会議 2024"``) still needs its parts side by side.

A run is put in NFKC first: half-width Katakana, compatibility ideographs and decomposed
Hangul or Kana (macOS file names) are then found by their ordinary form. Everything outside
the runs, Latin text included, stays exactly as it was; a run is set apart by spaces, so a
script boundary (``ABC회의``, ``2024年``) is a token boundary.

Pure functions of the text, shared by every catalog backend: the index side is applied in
``catalog.records.index_entry``, the query side where a backend turns a search term into its
full-text match.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from operator import add
from typing import NamedTuple

# Han (with the iteration and numeral marks 々〆〇〡-〩〸-〻, extension A, the unified block,
# compatibility ideographs, the supplementary planes), Hiragana (with the combining voiced
# marks, which NFKC composes), Katakana (with the prolonged sound mark ー, phonetic
# extensions, half-width forms, the Kana supplement) and Hangul (jamo, compatibility jamo,
# syllables, half-width forms), and the radicals: Kangxi radicals, which pdftotext gives for
# ideographs in many CJK fonts and NFKC maps to the ordinary ideograph (⽇ → 日), and the CJK
# radicals supplement (NFKC maps only ⺟ and ⻳; SQLite's tokenizer separates at the others, as
# it did outside a run). Not the Kana punctuation (゠ ・ ･) or the spacing marks ゛゜: SQLite's
# tokenizer separates at them, as at 、。「」.
_CJK = (
    "\u1100-\u11ff\u2e80-\u2eff\u2f00-\u2fdf"
    "\u3005-\u3007\u3021-\u3029\u3038-\u303b"
    "\u3041-\u3096\u3099\u309a\u309d-\u309f"
    "\u30a1-\u30fa\u30fc-\u30ff\u3131-\u318e\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7ff"
    "\uf900-\ufaff\uff66-\uff9f\uffa0-\uffdc"
    "\U0001b000-\U0001b16f\U00020000-\U0003134f"
)
_RUN = re.compile(f"[{_CJK}]+")
_SPLIT = re.compile(f"([{_CJK}]+)")

# UTF-8 lead bytes of the code points a run can hold (U+1xxx, U+3000-U+DFFF, U+Fxxx, beyond
# U+FFFF): a text whose UTF-8 has none has no run, and bytes.translate tells that about ten
# times faster than the regular expression's scan, which is what Latin mail would cost
_NOT_LEADS = bytes(b for b in range(256) if b not in {0xE1, *range(0xE3, 0xEE), 0xEF, 0xF0})
# and the radicals' first two bytes (U+2E80-U+2FFF): their lead byte, E2, also starts the
# punctuation of Latin mail (“ ” – …), which should not cost the scan of the text (a bytes
# search costs a tenth of it)
_RADICAL_START = re.compile(b"\xe2[\xba-\xbf]")

# runs this short are words (Korean writes a space between them) and repeat: kept made (the
# last 16,384: a few MB)
_SHORT = 16
# runs this long are paired by strided copies instead of a string per pair (4x faster)
_LONG = 48
_SPACE = " ".encode("utf-32-le")
# and in pieces this long, so that a megabyte of Han on one line costs a few pieces' memory
_CHUNK = 1 << 16


class QueryTerm(NamedTuple):
    """A search term as the full-text index is asked for it: ``text`` (the value with each
    CJK run in pairs), and ``prefix``: its last token is a lone CJK character, to be matched
    as a prefix (``会*``: every pair that starts with it, or itself at the end of a run)."""

    text: str
    prefix: bool


def index_form(text: str) -> str:
    """``text`` as the full-text index takes it: each CJK run as its pairs and last character,
    set apart by spaces; everything else unchanged."""
    if text.isascii() or not _may_have_runs(text):
        return text
    parts = _SPLIT.split(text)  # text, run, text, run, ..., text
    if len(parts) == 1:
        return text
    parts[1::2] = map(_indexed_run, parts[1::2])
    return "".join(parts)


def query_form(term: str) -> QueryTerm:
    """A word or phrase as typed, in the form that finds what ``index_form`` indexed.

    A run is its pairs; a run that a token follows in the term (a phrase such as
    ``"会議 2024"``) also ends with its last character, as every indexed run does; the run
    the term ends with does not, since the text may go on (``会議`` finds ``会議は``). A term
    that ends with a one-character run asks for a prefix match of that character."""
    runs = list(_RUN.finditer(term))
    if not runs:
        return QueryTerm(term, False)
    last_token = _last_token(term)
    out: list[str] = []
    prefix = False
    pos = 0
    for run in runs:
        out.append(term[pos : run.start()])
        chars = _normal(run.group())
        if last_token >= run.end():  # something follows it
            out.append(" " + _pairs_and_last(chars) + " ")
        elif len(chars) == 1:
            out.append(" " + chars + " ")
            prefix = True
        else:
            out.append(" " + " ".join(map(add, chars, chars[1:])) + " ")
        pos = run.end()
    out.append(term[pos:])
    return QueryTerm("".join(out), prefix)


# for code that must agree with the index on what a run is and how it is normalized (the
# snippets' marks): the character class of a run, a run, and a run's normal form
CJK_CHARS = _CJK
CJK_RUN = _RUN


def normal_run(run: str) -> str:
    """A run as it is indexed and searched: NFKC (``ｶｲｷﾞ`` is ``カイギ``)."""
    return _normal(run)


def _may_have_runs(text: str) -> bool:
    data = text.encode("utf-8", "surrogatepass")
    return bool(data.translate(None, _NOT_LEADS)) or _RADICAL_START.search(data) is not None


def _indexed_run(run: str) -> str:
    if len(run) <= _SHORT:
        return _indexed_word(run)
    return " " + _pairs_and_last(_normal(run)) + " "


@lru_cache(maxsize=16384)
def _indexed_word(run: str) -> str:
    return " " + _pairs_and_last(_normal(run)) + " "


def _pairs_and_last(chars: str) -> str:
    if len(chars) == 1:
        return chars
    if len(chars) < _LONG:
        return " ".join(map(add, chars, chars[1:])) + " " + chars[-1]
    last = len(chars) - 1
    pieces = (chars[start : start + _CHUNK + 1] for start in range(0, last, _CHUNK))
    return "".join(map(_pairs, pieces)) + chars[-1]


def _pairs(chars: str) -> str:
    """Each character but the last with the next one, each pair followed by a space: three
    characters per pair, written lane by lane into UTF-32 (4 bytes a character)."""
    data = chars.encode("utf-32-le")
    out = bytearray(_SPACE * (3 * (len(chars) - 1)))
    for lane in range(4):
        out[lane::12] = data[lane : len(data) - 4 : 4]
        out[4 + lane :: 12] = data[4 + lane :: 4]
    return out.decode("utf-32-le")


def _normal(run: str) -> str:
    # the quick check costs far less than normalizing: most runs are already NFKC
    return run if unicodedata.is_normalized("NFKC", run) else unicodedata.normalize("NFKC", run)


def _last_token(term: str) -> int:
    """Where the last character of a token is in ``term`` (-1: none): a letter, a digit or a
    private-use character (SQLite's unicode61 tokens), or a CJK run's."""
    for i in range(len(term) - 1, -1, -1):
        c = term[i]
        if unicodedata.category(c)[0] in "LN" or unicodedata.category(c) == "Co" or _RUN.match(c):
            return i
    return -1


__all__ = ["CJK_CHARS", "CJK_RUN", "QueryTerm", "index_form", "normal_run", "query_form"]
