"""Result snippets: a short piece of a message's text with the query's terms marked.

Nothing is stored for them: a snippet is cut from the text the index was made from (the
subject and the body text as ``ParsedMessage.index_text`` gives it), read from the blob
through the read model's parse cache, and only for the page of results shown.

Matching mirrors the full-text index (SQLite FTS5, ``unicode61 remove_diacritics 2``):
letters and digits make tokens, anything else separates them; case and the diacritics of
Latin letters do not count (``Resume`` marks ``résumé``); a word matches whole tokens,
``foo*`` the start of one, a phrase (or a word with punctuation inside, ``e-mail``)
consecutive tokens. Korean, Japanese and Chinese runs are indexed as overlapping bigrams in
NFKC (``bigrams``, whose definition of a run and normal form this uses): a term matches
anywhere inside a run (``회의`` in ``회의는``, ``カイギ`` in ``ｶｲｷﾞ``), a change of script
is a token break (``"東京 2024"`` marks ``東京2024``) and two runs of a phrase are two runs
of the text (``"회의 자료"`` does not mark ``회의자료``). Negated terms are never marked;
``subject:`` terms only in the subject. A match only in an attachment's text (free words,
``attachment:`` terms) is shown from that text, read from its extraction cache blob. A match
the index found but a snippet cannot show (in an address, an attachment's name, past
``SCAN_LIMIT``) leaves the start of the body, unmarked.

The work is bounded whatever the query and the text: ``MAX_TOKENS`` tokens of marked terms
(``PHRASE_TOKENS`` of one phrase), ``SCAN_LIMIT`` characters, and a match longer than
``LONG_MATCH`` is shown by its ends.

``Snippet.marks`` are ``[start, end)`` offsets in code points (Python ``str`` indices) into
``Snippet.text``, sorted and not overlapping.
"""

from __future__ import annotations

import bisect
import heapq
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import islice

from ..bigrams import CJK_CHARS, CJK_RUN, normal_run
from ..search import And, Field, Node, Not, Or, Text

# how much of each source is looked at: matches past it are not shown (the start of the body
# is), and a 50 MB body costs what its first characters cost (marking is a regular expression
# tried at each place a term may start: this bounds the places)
SCAN_LIMIT = 20_000
# the window shown, before it is stretched (at most SNAP each side) to whole words
WIDTH = 200
SNAP = 20
# matches of one source considered when choosing the window
MAX_MATCHES = 2000
# terms of one query that are marked (a query holds up to search.MAX_TERMS), and the longest
# (folded) term marked: past these a term is still searched, just not marked
MAX_TERMS = 64
MAX_TERM_CHARS = 256
# the tokens of all marked terms together, and of one phrase: the expression tries each term
# at each place, so its cost grows with their tokens (64 phrases of 28 tokens took 5 s on one
# message); a longer phrase has its first PHRASE_TOKENS marked, later terms past MAX_TOKENS none
MAX_TOKENS = 64
PHRASE_TOKENS = 8
# a match longer than this (a phrase's words far apart: the index ignores what separates
# them, 90,000 hyphens included) shows HEAD characters of each end, "…" between
LONG_MATCH = 80
HEAD = 30

ELLIPSIS = "…"

# Hangul, Kana, Han: indexed as bigrams, so matched inside runs; the index's own definition
# of a run and of its normal form (NFKC), so that marks agree with what it finds
_CJK = CJK_CHARS
_SPLIT = re.compile(f"([{_CJK}]+)")
# a token of a query: a CJK run, or letters and digits of other scripts (Python's \w without
# "_", which FTS5 separates on); a change of script is a token break ("a会" is two tokens)
_TOKEN = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")
# a letter or digit that is not CJK: what must not touch a Latin term for it to be a word
_WORD_EDGE = f"[^\\W_{_CJK}]"
# what separates tokens in text (possessive: a long run of it is never backtracked into)
_SEPARATORS = f"(?:_|[^\\w{_CJK}])++"
_MAYBE_SEPARATORS = f"(?:_|[^\\w{_CJK}])*+"
# The same for terms of Latin tokens only (almost every query), matched in a copy of the text
# whose CJK characters are all one of them (``_Normal.latin``): there the edge and the
# separators need no class of every CJK character, which took Python's ``re`` 10-35 ms to
# compile per use, most of a page's snippets; they read every character as the above do
_ONE_CJK = "\u4e00"
_LATIN_WORD_EDGE = f"[^\\W_{_ONE_CJK}]"
_LATIN_SEPARATORS = "(?:_|\\W)++"
_VISIBLE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]")
_GAP = r"[\s\x00-\x1f\x7f-\x9f]"
# what a snippet tidies: a run of spaces or control characters at either end, or inside
# unless it is one plain space already
_SPACE_OR_CONTROL = re.compile(f"^{_GAP}+|{_GAP}+$|(?! (?!{_GAP})){_GAP}+")


@dataclass(frozen=True, slots=True)
class Snippet:
    """``text`` from the source called ``source`` (``"body"``, ``"subject"``,
    ``"attachment"``: text extracted from one), with the
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


def message_sources(
    body: str, subject: str, attachments: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The texts of a message a snippet may come from, in order of preference: the body text
    as the index sees it (``ParsedMessage.index_text``), the subject, then the text
    extracted from its attachments (as indexed)."""
    return [("body", body), ("subject", subject), *(("attachment", a) for a in attachments)]


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
    # the index removes diacritics from Latin letters only: "ά" is not "α", "が" not "か"
    if bare != ch and not all(c.isascii() or "LATIN" in unicodedata.name(c, "") for c in bare):
        bare = ch
    for candidate in (bare.lower(), ch.lower()):
        if len(candidate) == 1:
            return candidate
    return ch


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """``text`` lower-cased and without Latin diacritics, the same length as ``text``."""
    return text.lower() if text.isascii() else text.translate(_FOLD)


# -- normal form: NFC, and each CJK run in NFKC as the index has it ------------------------


class _Normal:
    """``text`` composed (NFC: some mail programs send ``e`` and a combining accent, which the
    index folds like ``é``) is what a snippet shows; ``matched`` is that with each CJK run in
    NFKC, as the index takes it (``ｶｲｷﾞ`` is ``カイギ``), and folded. ``shown(start, end)`` is
    a span of ``matched`` as a span of ``text``."""

    def __init__(self, text: str) -> None:
        self.text = unicodedata.normalize("NFC", text)
        # each piece whose NFKC form differs: where it starts in matched and in text, and
        # its lengths in both (sorted; none for almost all text)
        self._at: list[int] = []
        self._moved: list[tuple[int, int, int]] = []
        # what text gained (+) or lost over matched up to the end of each piece
        self._shift: list[int] = []
        self._no_cjk = _without_cjk(self.text)
        if self._no_cjk:  # most mail: no run to put in NFKC (splitting costs a scan)
            self.matched = fold(self.text)
        else:
            parts = _SPLIT.split(self.text)  # text, run, text, run, ..., text
            at = 0
            for i, part in enumerate(parts):
                if i % 2 and not unicodedata.is_normalized("NFKC", part):
                    parts[i] = self._run(part, at)
                at += len(part)
            self.matched = fold("".join(parts))
        self._latin: str | None = None

    @property
    def latin(self) -> str:
        """``matched`` with each CJK character as ``_ONE_CJK`` (same offsets), for the
        expressions of Latin terms."""
        if self._latin is None:
            self._latin = (
                self.matched
                if self._no_cjk
                else CJK_RUN.sub(lambda run: _ONE_CJK * len(run.group()), self.matched)
            )
        return self._latin

    def _run(self, run: str, at: int) -> str:
        normal = normal_run(run)
        pieces = _pieces(run)
        if "".join(p for p, _ in pieces) != normal:  # not cut where it can be: one piece
            pieces = [(normal, len(run))]
        shift = self._shift[-1] if self._shift else 0
        for piece, length in pieces:
            if len(piece) != length or piece != run[:length]:
                self._at.append(at - shift)
                self._moved.append((at, len(piece), length))
                shift += length - len(piece)
                self._shift.append(shift)
            at += length
            run = run[length:]
        return normal

    @property
    def moved(self) -> bool:
        """Whether an offset into ``matched`` may differ from one into ``text``."""
        return bool(self._at)

    def shown(self, start: int, end: int) -> tuple[int, int]:
        if not self._at:
            return start, end
        return self._back(start, False), self._back(end, True)

    def _back(self, at: int, is_end: bool) -> int:
        i = bisect.bisect_left(self._at, at) - 1  # the last piece starting before it
        if i < 0:
            return at
        m_at, (t_at, m_len, t_len) = self._at[i], self._moved[i]
        if at < m_at + m_len:  # inside a piece that changed: out to its edge
            return t_at + (t_len if is_end else 0)
        return at + self._shift[i]


# below the first character of a CJK run (the Hangul jamo, U+1100): a text whose largest
# character is below it has no run, which max() tells far sooner than a scan with the class
_BELOW_CJK = "\u1100"


def _without_cjk(text: str) -> bool:
    """Whether ``text`` certainly holds no CJK character (False: it may)."""
    return text.isascii() or max(text) < _BELOW_CJK


def _pieces(run: str) -> list[tuple[str, int]]:
    """``run`` in NFKC piece by piece: ``(normal form, characters of run)``, a piece being a
    character and what composes with it (a voiced mark, a Hangul vowel or final)."""
    out: list[tuple[str, int]] = []
    for ch in run:
        normal = normal_run(ch)
        # a piece is short (a syllable is three jamo): a run of 20,000 voiced marks must not
        # make a piece normalized 20,000 times; a piece cut too soon fails the caller's check
        if out and normal and _joins(normal[0]) and out[-1][1] < 4:
            piece, length = out[-1]
            joined = normal_run(piece + normal)
            if joined != piece + normal:  # it composed: one piece
                out[-1] = (joined, length + 1)
                continue
        out.append((normal, 1))
    return out


def _joins(ch: str) -> bool:
    # combining marks (the voiced marks) and Hangul medial vowels and finals compose with
    # what comes before them
    return (
        unicodedata.combining(ch) != 0 or "\u1160" <= ch <= "\u11ff" or "\ud7b0" <= ch <= "\ud7ff"
    )


# -- the terms of a query ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Term:
    pattern: str  # without the check that a word starts here
    # the same for ``_Normal.latin``, for a term of ASCII tokens only; else ""
    latin: str
    first: str  # the character it starts with
    word: bool  # starts at a word's start (a Latin term), not anywhere (a CJK one)
    tokens: int
    head: int = 0  # the length of the first token of ``latin`` (0 without it)
    # a field's term (subject:, attachment:) is marked in that source only; None: anywhere
    only: str | None = None


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
        case Field(name="subject" | "attachment" as name, value=value, phrase=phrase):
            term = _term(value, phrase)
            if term is not None:
                out.append(replace(term, only=name))
        case _:
            return


def _term(value: str, phrase: bool) -> _Term | None:
    """One word or phrase as a regular expression over normal, folded text, matching what
    the index matches; None when it has no token to mark."""
    prefix = not phrase and value.endswith("*")
    tokens = _TOKEN.findall(_Normal(value.rstrip("*") if prefix else value).matched)
    if not tokens or sum(len(t) for t in tokens) > MAX_TERM_CHARS:
        return None
    if len(tokens) > PHRASE_TOKENS:  # its start marked: the cost is in the tokens
        tokens, prefix = tokens[:PHRASE_TOKENS], False
    if all(t.isascii() for t in tokens):
        latin = _LATIN_SEPARATORS.join(re.escape(t) for t in tokens)
        latin += "" if prefix else f"(?!{_LATIN_WORD_EDGE})"
    else:
        latin = ""
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if i:
            # the index sets each CJK run apart: two runs of the query are two runs of the
            # text (something between them), a run and a Latin word may touch ("東京2024")
            both_cjk = _is_cjk(tokens[i - 1][-1]) and _is_cjk(token[0])
            both_latin = not _is_cjk(tokens[i - 1][-1]) and not _is_cjk(token[0])
            parts.append(_SEPARATORS if both_cjk or both_latin else _MAYBE_SEPARATORS)
        parts.append(re.escape(token))
    first, last = tokens[0][0], tokens[-1][-1]
    # a Latin term is whole tokens; a CJK edge is inside a run, like its bigrams
    after = "" if prefix or _is_cjk(last) else f"(?!{_WORD_EDGE})"
    head = len(tokens[0]) if latin else 0
    return _Term("".join(parts) + after, latin, first, not _is_cjk(first), len(tokens), head)


def _is_cjk(ch: str) -> bool:
    return CJK_RUN.match(ch) is not None


class Highlighter:
    """A query's markable terms, compiled once for a page of results."""

    def __init__(self, node: Node) -> None:
        terms: list[_Term] = []
        _terms(node, terms)
        unique: list[_Term] = []
        tokens = 0
        for term in list(dict.fromkeys(terms))[:MAX_TERMS]:
            tokens += term.tokens
            if tokens > MAX_TOKENS:
                break
            unique.append(term)
        self._anywhere = _compile([t for t in unique if t.only is None])
        self._subject = _compile([t for t in unique if t.only in (None, "subject")])
        self._attachment = _compile([t for t in unique if t.only in (None, "attachment")])
        self._any = bool(unique)

    @property
    def has_terms(self) -> bool:
        """Whether the query has a term to mark (else every snippet is the body's start)."""
        return self._any

    @property
    def marks_body(self) -> bool:
        """Whether a term may be marked in the body (not only ``subject:`` terms)."""
        return self._anywhere is not None

    @property
    def marks_attachments(self) -> bool:
        """Whether a term may be marked in attachment text (free words, ``attachment:``)."""
        return self._attachment is not None

    def snippet(self, sources: Sequence[tuple[str, str]]) -> Snippet | None:
        """The best snippet of ``sources`` (``(label, text)``, in order of preference): the
        window with the most different terms, then the most matches; without any match,
        the start of the body (None if it is blank or not among them)."""
        best: tuple[tuple[int, int], str, _Normal, list[tuple[int, int, int]]] | None = None
        for label, text in sources:
            pattern = self._pattern(label)
            if pattern is None or not text:
                continue
            normal = _Normal(text[:SCAN_LIMIT])
            matches = _matches(pattern, normal)
            if not matches:
                continue
            score, window = _best_window(matches)
            if best is None or score > best[0]:
                best = (score, label, normal, window)
        if best is not None:
            _, label, normal, window = best
            return _cut(label, normal.text, [(s, e) for s, e, _ in window])
        for label, text in sources:
            if label == "body":
                shown = unicodedata.normalize("NFC", text[:SCAN_LIMIT])
                found = _VISIBLE.search(shown)
                return None if found is None else _cut(label, shown[found.start() :], [])
        return None

    def _pattern(self, label: str) -> _Pattern | None:
        if label == "subject":
            return self._subject
        return self._attachment if label == "attachment" else self._anywhere


@dataclass(frozen=True, slots=True)
class _Pattern:
    expression: re.Pattern[str]
    latin: bool  # matched in ``_Normal.latin``, not ``_Normal.matched``
    # for Latin terms: each term alone, in the expression's order, as ``_merged`` takes them
    each: tuple[re.Pattern[str], ...] = ()


def _compile(terms: list[_Term]) -> _Pattern | None:
    """All ``terms`` as one expression, a group per term (to count different terms in a
    window), the longer first (where two start at one place, the longer is marked)."""
    if not terms:
        return None
    ordered = sorted(range(len(terms)), key=lambda i: -len(terms[i].pattern))
    if all(t.latin for t in terms):  # all words: the same expression without the CJK class
        words = "|".join(f"(?P<t{i}>{terms[i].latin})" for i in ordered)
        firsts = re.escape("".join(sorted({t.first for t in terms})))
        expression = f"(?=[{firsts}])(?<!{_LATIN_WORD_EDGE})(?:{words})"
        # each term alone starts with its first word as written, which the engine looks for
        # as a string (the expression starts with a lookahead: tried at every character);
        # the check that a word starts there comes after it, looking back past it
        each = tuple(
            re.compile(
                terms[i].latin[: terms[i].head]
                + f"(?<!{_LATIN_WORD_EDGE}.{{{terms[i].head}}})"
                + terms[i].latin[terms[i].head :],
                re.DOTALL,
            )
            for i in ordered
        )
        return _Pattern(re.compile(expression), latin=True, each=each)
    words = "|".join(f"(?P<t{i}>{terms[i].pattern})" for i in ordered if terms[i].word)
    inside = "|".join(f"(?P<t{i}>{terms[i].pattern})" for i in ordered if not terms[i].word)
    choices = [f"(?<!{_WORD_EDGE})(?:{words})"] if words else []
    choices += [inside] if inside else []
    # the set of first characters in front lets the engine skip ahead to where a term may
    # start, instead of trying every term at every character (64 terms: 100 times faster)
    firsts = re.escape("".join(sorted({t.first for t in terms})))
    return _Pattern(re.compile(f"(?=[{firsts}])(?:{'|'.join(choices)})"), latin=False)


def _matches(pattern: _Pattern, normal: _Normal) -> list[tuple[int, int, int]]:
    """``(start, end, term)`` of each match in ``normal.text``, at most ``MAX_MATCHES``."""
    text = normal.latin if pattern.latin else normal.matched
    if pattern.each:
        found = _merged(pattern.each, text)
    else:
        spans = (
            (m.start(), m.end(), m.lastindex or 0)
            for m in pattern.expression.finditer(text)
            if m.end() > m.start()
        )
        found = list(islice(spans, MAX_MATCHES))
    if normal.moved:  # a CJK run changed length in NFKC: offsets into what is shown
        found = [(*normal.shown(start, end), term) for start, end, term in found]
    return found


def _merged(each: tuple[re.Pattern[str], ...], text: str) -> list[tuple[int, int, int]]:
    """What ``finditer`` of the terms ``each`` as one alternation finds (``(start, end,
    term)``, the term as the alternation's group number), from searches for each alone: the
    earliest match next, the earlier term of two at one place; a term's next match that
    starts inside the one taken is searched for again after it."""
    found: list[tuple[int, int, int]] = []
    heap = [(m.start(), i, m) for i, term in enumerate(each) if (m := term.search(text))]
    heapq.heapify(heap)
    pos = 0
    while heap and len(found) < MAX_MATCHES:
        start, i, m = heap[0]
        if start >= pos:
            found.append((start, m.end(), i + 1))
            pos = m.end()
        again = each[i].search(text, pos)
        if again is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (again.start(), i, again))
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


def _cut(label: str, text: str, marks: list[tuple[int, int]]) -> Snippet:
    """The window around ``marks`` in ``text``, stretched to whole words, with its spaces and
    control characters made single spaces and "…" where text was left out; a mark longer
    than ``LONG_MATCH`` shows its ends, "…" between."""
    shown: list[tuple[int, int]] = []  # the marks as shown
    gaps: list[tuple[int, int]] = []  # what is left out inside long marks
    for start, end in marks:
        if end - start > LONG_MATCH:
            head, tail = _head(text, start), _tail(text, end)
            if head < tail:
                shown += [(start, head), (tail, end)]
                gaps.append((head, tail))
                continue
        shown.append((start, end))
    first, last = (marks[0][0], marks[-1][1]) if marks else (0, 0)
    length = last - first - sum(b - a for a, b in gaps)
    room = max(0, WIDTH - length)
    start = max(0, first - min(room // 2, 60))
    end = min(len(text), max(last, start + WIDTH + sum(b - a for a, b in gaps)))
    if end - start - sum(b - a for a, b in gaps) < WIDTH:
        start = max(0, min(start, end - WIDTH))
    if start > 0:
        space = text.rfind(" ", max(0, start - SNAP), start)
        start = space + 1 if space >= 0 else start
    if end < len(text):
        space = text.find(" ", end, end + SNAP)
        end = space if space >= 0 else end
    bounds = [start, *(x for gap in gaps for x in gap), end]
    out_text = ""
    out_marks: list[tuple[int, int]] = []
    for i in range(0, len(bounds), 2):
        a, b = bounds[i], bounds[i + 1]
        piece = _tidy(label, text[a:b], a, i == 0 and start > 0, False, shown)
        if i:
            out_text += ELLIPSIS
        out_marks += [(s + len(out_text), e + len(out_text)) for s, e in piece.marks]
        out_text += piece.text
    if end < len(text):
        out_text += ELLIPSIS
    return Snippet(out_text, tuple(out_marks), label)


_WORD = re.compile(r"[^\W_]+")


def _head(text: str, start: int) -> int:
    """Where a long match starting at ``start`` is cut: after its last word that ends within
    ``HEAD`` characters (or at ``HEAD``, inside a longer word)."""
    limit = start + HEAD
    cut = limit
    for word in _WORD.finditer(text, start, limit):
        if word.end() < limit or _WORD.match(text, limit) is None:
            cut = word.end()
    return cut


def _tail(text: str, end: int) -> int:
    """Where a long match ending at ``end`` resumes (as ``_head``, from the end)."""
    limit = end - HEAD
    for word in _WORD.finditer(text, limit, end):
        if word.start() > limit or limit == 0 or _WORD.match(text, limit - 1) is None:
            return word.start()
    return limit


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
    if piece.isprintable() and "  " not in piece and piece[:1] != " " and piece[-1:] != " ":
        # no gap (a printable piece's only blank is the plain space): most windows, told
        # without trying the expression at each character
        gaps: list[tuple[int, int, int]] = []
        body = piece
    else:
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
