"""Queries of Latin words are marked by an expression without the class of every CJK
character (it cost most of a page's snippets to compile), over a copy of the text whose
CJK characters are all one: it marks exactly what the general expression marks."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from postfix_archiver.archive import snippets
from postfix_archiver.search import parse_query

# what decides a Latin term's edges and a phrase's separators: CJK characters (BMP and
# beyond, a combining voiced mark that is no word character, half-width Kana that NFKC
# changes), underscores, other word characters, ligatures and letters that fold
PIECES = [
    "foo", "bar", "Foo", "résumé", "resume", "2024", "x", "_", " ", "-", "\n", "ß", "ss",
    "İ", "ﬁ", "fi", "é", "e\u0301", "東京", "京", "一", "\u3099", "カ", "ｶ", "회의",
    "\U00020000", "\uffff", "\x00",
]  # fmt: skip
QUERIES = [
    "foo", "bar*", '"foo bar"', "fo*", "foo baz", '"resume foo"', "2024", "x", "fi", "ss",
    "subject:foo bar", '"foo_bar"', "foo -bar", "attachment:x 2024", "résumé", '"2024 x"',
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.sampled_from(PIECES), max_size=30).map("".join), query=st.sampled_from(QUERIES)
)
def test_latin_expression_marks_what_the_general_one_marks(text: str, query: str) -> None:
    terms: list[snippets._Term] = []
    snippets._terms(parse_query(query), terms)
    fast = snippets._compile(terms)
    general = snippets._compile([replace(t, latin="") for t in terms])
    assert fast is not None
    assert general is not None
    assert fast.latin
    assert not general.latin
    normal = snippets._Normal(text)
    assert len(normal.latin) == len(normal.matched)
    assert snippets._matches(fast, normal) == snippets._matches(general, normal)


def test_a_query_with_a_cjk_term_keeps_the_general_expression() -> None:
    terms: list[snippets._Term] = []
    snippets._terms(parse_query("foo 東京"), terms)
    compiled = snippets._compile(terms)
    assert compiled is not None
    assert not compiled.latin
    marked = snippets.Highlighter(parse_query("foo 東京")).snippet([("body", "foo東京 x")])
    assert marked is not None
    assert marked.marks == ((0, 3), (3, 5))
