"""Result snippets: a short piece of a message's text with the query's terms marked.

Nothing is stored for them: a snippet is cut from the text the index was made from (the
subject and the body text as ``ParsedMessage.index_text`` gives it), read from the blob
through the read model's parse cache, and only for the page of results shown.

Matching mirrors the full-text index (SQLite FTS5, ``unicode61 remove_diacritics 2``):
letters and digits make tokens, anything else separates them; case and Latin diacritics do
not count (``Resume`` marks ``résumé``); a word matches whole tokens, ``foo*`` the start of
one, a phrase (or a word with punctuation inside, ``e-mail``) consecutive tokens. Korean,
Japanese and Chinese are indexed as overlapping bigrams, so there a term matches anywhere
inside a run (``회의`` in ``회의는``). Negated terms are never marked; ``subject:`` terms only
in the subject. A match the index found but a snippet cannot show (in an address, an
attachment name, past ``SCAN_LIMIT``) leaves the start of the body, unmarked.

``Snippet.marks`` are ``[start, end)`` offsets in code points (Python ``str`` indices) into
``Snippet.text``, sorted and not overlapping.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..search import And, Field, Node, Not, Or, Text

# how much of each source is looked at: matches past it are not shown (the start of the body
# is), and a 50 MB body costs what its first characters cost
SCAN_LIMIT = 100_000
# the window shown, before it is stretched (at most SNAP each side) to whole words
WIDTH = 200
SNAP = 20
# matches of one source considered when choosing the window
MAX_MATCHES = 2000
# terms of one query that are marked (a query holds up to search.MAX_TERMS), and the longest
# (folded) term marked: past these a term is still searched, just not marked
MAX_TERMS = 64
MAX_TERM_CHARS = 256

ELLIPSIS = "…"

# Hangul, Kana, Han (with their extensions and compatibility forms): indexed as bigrams, so
# matched as substrings; the same blocks the CJK index form (bigrams.py) treats so
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f"
)
_CJK_CHAR = re.compile(f"[{_CJK}]")
# a token character: a letter or digit (Python's \w without "_", which FTS5 separates on)
_TOKEN = re.compile(r"[^\W_]+")
# a letter or digit that is not CJK: what must not touch a Latin term for it to be a word
_WORD_EDGE = f"[^\\W_{_CJK}]"
_SEPARATOR = r"[\W_]+"
_VISIBLE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]")
_GAP = r"[\s\x00-\x1f\x7f-\x9f]"
# what a snippet tidies: a run of spaces or control characters at either end, or inside
# unless it is one plain space already
_SPACE_OR_CONTROL = re.compile(f"^{_GAP}+|{_GAP}+$|(?! (?!{_GAP})){_GAP}+")


@dataclass(frozen=True, slots=True)
class Snippet:
    """``text`` from the source called ``source`` (``"body"``, ``"subject"``), with the
    spans ``marks`` (``[start, end)`` in code points) to mark."""

    text: str
    marks: tuple[tuple[int, int], ...]
    source: str

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "marks": [list(m) for m in self.marks], "source": self.source}

    def shortened(self, width: int) -> Snippet:
        """At most ``width`` characters of it, from a little before its first mark (for a
        terminal's column); "…" where cut."""
        if len(self.text) <= width:
            return self
        first = self.marks[0][0] if self.marks else 0
        start = max(0, min(first - width // 4, len(self.text) - width))
        end = start + width
        text = self.text[start:end]
        if start > 0 and not text.startswith(ELLIPSIS):
            text = ELLIPSIS + text[1:]
        if end < len(self.text) and not text.endswith(ELLIPSIS):
            text = text[:-1] + ELLIPSIS
        inner = (1 if start > 0 else 0, len(text) - (1 if end < len(self.text) else 0))
        marks = []
        for a, b in self.marks:
            a, b = max(a - start, inner[0]), min(b - start, inner[1])
            if a < b:
                marks.append((a, b))
        return Snippet(text, tuple(marks), self.source)

    def pieces(self) -> list[tuple[str, bool]]:
        """The text cut at the marks: ``(piece, marked)`` in order (for the web page, which
        escapes each piece and puts ``<mark>`` around the marked ones)."""
        out: list[tuple[str, bool]] = []
        pos = 0
        for start, end in self.marks:
            if start > pos:
                out.append((self.text[pos:start], False))
            out.append((self.text[start:end], True))
            pos = end
        if pos < len(self.text):
            out.append((self.text[pos:], False))
        return out


def message_sources(body: str, subject: str) -> list[tuple[str, str]]:
    """The texts of a message a snippet may come from, in order of preference: the body text
    as the index sees it (``ParsedMessage.index_text``), then the subject."""
    return [("body", body), ("subject", subject)]


# -- folding: what the index does to case and diacritics, keeping every offset -------------


class _FoldTable(dict[int, str]):
    """Each character to its folded form when that is one character (so offsets into the
    folded text are offsets into the original), else to itself; filled as text needs it."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < 1 << 16:  # hostile text must not grow it without bound
            self[code] = folded
        return folded


def _fold_char(ch: str) -> str:
    bare = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    for candidate in (bare.lower(), ch.lower()):
        if len(candidate) == 1:
            return candidate
    return ch


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """``text`` lower-cased and without Latin diacritics, the same length as ``text``."""
    return text.lower() if text.isascii() else text.translate(_FOLD)


def _fold_query(text: str) -> str:
    """A query term folded as the text it is looked for in (``_scanned``, then ``fold``)."""
    return fold(unicodedata.normalize("NFC", text))


# -- the terms of a query ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Term:
    pattern: str  # without the check that a word starts here
    first: str  # the character it starts with
    word: bool  # starts at a word's start (a Latin term), not anywhere (a CJK one)
    subject_only: bool = False


def _terms(node: Node, out: list[_Term]) -> None:
    match node:
        case Not():
            return  # an excluded term is never in a result: nothing to mark
        case And(children=children) | Or(children=children):
            for child in children:
                _terms(child, out)
        case Text(value=value, phrase=phrase):
            term = _term(value, phrase)
            if term is not None:
                out.append(term)
        case Field(name="subject", value=value, phrase=phrase):
            term = _term(value, phrase)
            if term is not None:
                out.append(replace(term, subject_only=True))
        case _:
            return


def _term(value: str, phrase: bool) -> _Term | None:
    """One word or phrase as a regular expression over folded text, matching what the index
    matches; None when it has no token to mark."""
    prefix = not phrase and value.endswith("*")
    tokens = _TOKEN.findall(_fold_query(value.rstrip("*") if prefix else value))
    if not tokens or sum(len(t) for t in tokens) > MAX_TERM_CHARS:
        return None
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if i:
            both_cjk = _is_cjk(tokens[i - 1][-1]) and _is_cjk(token[0])
            # bigrams know no spaces: "회의 자료" finds "회의자료"
            parts.append(r"[\W_]*" if both_cjk else _SEPARATOR)
        parts.append(re.escape(token))
    first, last = tokens[0][0], tokens[-1][-1]
    # a Latin term is whole tokens; a CJK edge is inside a run, like its bigrams
    after = "" if prefix or _is_cjk(last) else f"(?!{_WORD_EDGE})"
    return _Term("".join(parts) + after, first, not _is_cjk(first))


def _is_cjk(ch: str) -> bool:
    return _CJK_CHAR.match(ch) is not None


class Highlighter:
    """A query's markable terms, compiled once for a page of results."""

    def __init__(self, node: Node) -> None:
        terms: list[_Term] = []
        _terms(node, terms)
        unique = list(dict.fromkeys(terms))[:MAX_TERMS]
        self._anywhere = _compile([t for t in unique if not t.subject_only])
        self._subject = _compile(unique)

    @property
    def has_terms(self) -> bool:
        return self._subject is not None

    def snippet(self, sources: Sequence[tuple[str, str]]) -> Snippet | None:
        """The best snippet of ``sources`` (``(label, text)``, in order of preference): the
        window with the most different terms, then the most matches; without any match,
        the start of the first source that is not the subject (None if it is blank)."""
        best: tuple[tuple[int, int], str, str, list[tuple[int, int, int]]] | None = None
        for label, text in sources:
            pattern = self._subject if label == "subject" else self._anywhere
            if pattern is None or not text:
                continue
            scanned = _scanned(text)
            matches = _matches(pattern, fold(scanned))
            if not matches:
                continue
            score, window = _best_window(matches)
            if best is None or score > best[0]:
                best = (score, label, scanned, window)
        if best is not None:
            _, label, text, window = best
            return _cut(label, text, window[0][0], window[-1][1], [(s, e) for s, e, _ in window])
        for label, text in sources:
            if label != "subject":
                scanned = _scanned(text)
                found = _VISIBLE.search(scanned)
                return None if found is None else _cut(label, scanned[found.start() :], 0, 0, [])
        return None


def _scanned(text: str) -> str:
    """The start of ``text`` that is looked at, composed (NFC): some mail programs send
    decomposed text (``e`` and a combining accent), which the index folds like ``é``."""
    return unicodedata.normalize("NFC", text[:SCAN_LIMIT])


def _compile(terms: list[_Term]) -> re.Pattern[str] | None:
    """All ``terms`` as one expression, a group per term (to count different terms in a
    window), the longer first (where two start at one place, the longer is marked)."""
    if not terms:
        return None
    ordered = sorted(range(len(terms)), key=lambda i: -len(terms[i].pattern))
    words = "|".join(f"(?P<t{i}>{terms[i].pattern})" for i in ordered if terms[i].word)
    inside = "|".join(f"(?P<t{i}>{terms[i].pattern})" for i in ordered if not terms[i].word)
    choices = [f"(?<!{_WORD_EDGE})(?:{words})"] if words else []
    choices += [inside] if inside else []
    # the set of first characters in front lets the engine skip ahead to where a term may
    # start, instead of trying every term at every character (64 terms: 100 times faster)
    firsts = re.escape("".join(sorted({t.first for t in terms})))
    return re.compile(f"(?=[{firsts}])(?:{'|'.join(choices)})")


def _matches(pattern: re.Pattern[str], folded: str) -> list[tuple[int, int, int]]:
    """``(start, end, term)`` of each match, at most ``MAX_MATCHES``."""
    found: list[tuple[int, int, int]] = []
    for m in pattern.finditer(folded):
        if m.end() > m.start():
            found.append((m.start(), m.end(), m.lastindex or 0))
            if len(found) >= MAX_MATCHES:
                break
    return found


def _best_window(
    matches: list[tuple[int, int, int]],
) -> tuple[tuple[int, int], list[tuple[int, int, int]]]:
    """The run of matches spanning at most ``WIDTH`` with the most different terms, then the
    most matches (the earliest such): its score and the matches."""
    counts: Counter[int] = Counter()
    best = (0, 0)
    best_at = (0, 1)
    left = 0
    for right, (_, end, term) in enumerate(matches):
        counts[term] += 1
        while end - matches[left][0] > WIDTH and left < right:
            gone = matches[left][2]
            counts[gone] -= 1
            if not counts[gone]:
                del counts[gone]
            left += 1
        score = (len(counts), right - left + 1)
        if score > best:
            best, best_at = score, (left, right + 1)
    return best, matches[best_at[0] : best_at[1]]


def _cut(label: str, text: str, first: int, last: int, marks: list[tuple[int, int]]) -> Snippet:
    """The window around ``[first, last)`` in ``text``, stretched to whole words, with its
    spaces and control characters made single spaces and "…" where text was left out."""
    room = max(0, WIDTH - (last - first))
    start = max(0, first - min(room // 2, 60))
    end = min(len(text), max(last, start + WIDTH))
    if end - start < WIDTH:
        start = max(0, min(start, end - WIDTH))
    if start > 0:
        space = text.rfind(" ", max(0, start - SNAP), start)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.find(" ", end, end + SNAP)
        end = space if space >= 0 else end
    return _tidy(label, text[start:end], start, start > 0, end < len(text), marks)


def _tidy(
    label: str,
    piece: str,
    offset: int,
    cut_before: bool,
    cut_after: bool,
    marks: list[tuple[int, int]],
) -> Snippet:
    """``piece`` (at ``offset`` in its source) with each run of spaces or control characters
    made one space, trimmed, "…" added where cut; ``marks`` moved to the new offsets."""
    n = len(piece)
    # each gap becomes one space, or none at either end; (start, end, characters dropped)
    gaps = [
        (g.start(), g.end(), g.end() - g.start() - (0 if g.start() == 0 or g.end() == n else 1))
        for g in _SPACE_OR_CONTROL.finditer(piece)
    ]
    body = _SPACE_OR_CONTROL.sub(" ", piece)
    if gaps and gaps[-1][1] == n:
        body = body[:-1]
    if gaps and gaps[0][0] == 0:
        body = body[1:]
    head = ELLIPSIS if cut_before else ""

    def moved(at: int) -> int:
        # a mark's edge is never inside a gap: it starts and ends at a letter or digit
        return len(head) + at - sum(dropped for start, end, dropped in gaps if end <= at)

    out: list[tuple[int, int]] = []
    for start, end in marks:
        s, e = start - offset, end - offset
        if 0 <= s < e <= n:
            a, b = moved(s), moved(e)
            if b > a and not (out and a < out[-1][1]):
                out.append((a, b))
    return Snippet(head + body + (ELLIPSIS if cut_after else ""), tuple(out), label)
