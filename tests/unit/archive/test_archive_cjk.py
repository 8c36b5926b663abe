"""Korean, Japanese and Chinese mail found again through the real archive.

Real MIME messages in UTF-8, EUC-KR, ISO-2022-JP and GB2312 (subjects and display names as
encoded words, bodies and attachment names in those charsets) are archived, then searched:
every query lists exactly the messages it must find, so each also says which it must not
(``회의`` does not find a mail with ``회`` and ``의`` apart, nor ``会議`` one with ``会`` and
``議`` apart). Then hostile input: 8-bit bytes in a query, lone surrogates, combining marks,
undeclared 8-bit mail, a megabyte of Han on one line; and an erasure that must leave none of
a message's pairs in any file.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from email.header import Header
from email.utils import formataddr
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from tests.conftest import make_config

from postfix_archiver.archive import Archive
from postfix_archiver.archive.removal import ERASE, remove
from postfix_archiver.archive.service import INDEX_TEXT_VERSION
from postfix_archiver.cli import main
from postfix_archiver.config import Config
from postfix_archiver.envelope import Envelope


def words(text: str, charset: str) -> str:
    """A header value as encoded words in ``charset`` (what mail programs send)."""
    return Header(text, charset).encode()


def mail(
    subject: str,
    body: str,
    charset: str,
    *,
    sender: tuple[str, str] = ("", "someone@example.com"),
    encoding: str = "8bit",
    filename: str | None = None,
) -> bytes:
    """A message with the subject and the display name as encoded words in ``charset``, the
    body in ``charset`` (8bit, 7bit or base64), and maybe an attachment named ``filename``
    (RFC 2231, UTF-8)."""
    data = body.encode(charset)
    if encoding == "base64":
        data = base64.encodebytes(data)
    head = (
        f"From: {formataddr(sender, charset)}\r\nTo: team@example.com\r\n"
        f"Subject: {words(subject, charset)}\r\nMIME-Version: 1.0\r\n"
    ).encode()
    text = (
        f"Content-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode() + data
    if filename is None:
        return head + text
    return (
        head
        + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        + text
        + b"\r\n--B\r\nContent-Type: application/pdf\r\n"
        + f"Content-Disposition: attachment; filename*=UTF-8''{quote(filename)}\r\n".encode()
        + b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"
    )


MAILS = {
    "ko_utf8": mail(
        "회의록 공유",
        "내일 회의는 오후 세 시입니다. 보고서를 준비해 주세요.",
        "utf-8",
        sender=("김철수", "kim@example.kr"),
        filename="회의록_2024.pdf",
    ),
    "ko_euckr": mail(
        "예산 보고서 검토",
        "예산 회의록을 첨부합니다. 보고서를 검토해 주십시오.",
        "euc-kr",
        sender=("이영희", "lee@example.kr"),
    ),
    # 회 and 의 both there, never side by side
    "ko_apart": mail("회사 소식", "회사 의견을 들었습니다.", "utf-8"),
    "ja_2022": mail(
        "東京での会議について",
        "東京での会議は午後三時からです。資料を準備してください。2024年度の予算",
        "iso-2022-jp",
        sender=("山田太郎", "yamada@example.jp"),
        encoding="7bit",
        # decomposed Kana, as a Mac names files: ガ is カ and a combining mark
        filename="カ\u3099イド.pdf",
    ),
    # 会 and 議 both there, never side by side
    "ja_apart": mail("会社の案内", "会社の議事は明日です。", "iso-2022-jp", encoding="7bit"),
    "zh_gb2312": mail(
        "北京会议纪要",
        "会议于下午三点开始，请准备好报告。",
        "gb2312",
        sender=("王小明", "wang@example.cn"),
        encoding="base64",
    ),
    "latin": mail(
        "Quarterly meeting minutes",
        "The meeting is at 3pm in Tokyo; the report follows.",
        "us-ascii",
        sender=("Alice Smith", "alice@example.com"),
    ),
}


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, dict[int, str]]]:
    config = make_config(tmp_path_factory.mktemp("cjk") / "data")
    with Archive(config) as archive:
        names = {
            archive.ingest(raw, Envelope("s@example.com", ("team@example.com",))).id: name
            for name, raw in MAILS.items()
        }
        archive.index_pending()
        yield archive, names


def found(archived: tuple[Archive, dict[int, str]], query: str) -> set[str]:
    archive, names = archived
    return {names[row.id] for row in archive.search(query, limit=100).results}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Korean: a noun finds it with its particle, and inside a compound
        ("회의", {"ko_utf8", "ko_euckr"}),
        ("회의는", {"ko_utf8"}),
        ("회의록", {"ko_utf8", "ko_euckr"}),
        ("보고서", {"ko_utf8", "ko_euckr"}),
        ("보고서를", {"ko_utf8", "ko_euckr"}),
        ("검토", {"ko_euckr"}),
        ("회의 -회의는", {"ko_euckr"}),
        ("회", {"ko_utf8", "ko_euckr", "ko_apart"}),  # one character: anywhere in a run
        ("의견", {"ko_apart"}),
        # Japanese: no spaces between words
        ("会議", {"ja_2022"}),
        ("東京", {"ja_2022"}),
        ("京での", {"ja_2022"}),
        ("年度", {"ja_2022"}),
        ("2024年度", {"ja_2022"}),
        ("議事", {"ja_apart"}),
        ("会", {"ja_2022", "ja_apart", "zh_gb2312"}),  # 会 is Chinese too (会议)
        # Chinese (simplified 议, not 議)
        ("会议", {"zh_gb2312"}),
        ("北京", {"zh_gb2312"}),
        ("纪要", {"zh_gb2312"}),
        ("三点", {"zh_gb2312"}),
        ("会議 OR 会议", {"ja_2022", "zh_gb2312"}),
        # fields
        ("subject:会议", {"zh_gb2312"}),
        ("subject:三点", set()),  # in the body only
        ("subject:회의", {"ko_utf8"}),
        ("subject:보고서", {"ko_euckr"}),
        # display names: free text (the index) and from: (the address rows)
        ("김철수", {"ko_utf8"}),
        ("철수", {"ko_utf8"}),
        ("from:김철수", {"ko_utf8"}),
        ("from:철수", {"ko_utf8"}),
        ("from:이영희", {"ko_euckr"}),
        ("山田", {"ja_2022"}),
        ("from:山田太郎", {"ja_2022"}),
        ("from:王小明", {"zh_gb2312"}),
        ("from:王小", {"zh_gb2312"}),
        ("from:김영희", set()),
        # attachment names
        ("회의록_2024", {"ko_utf8"}),
        ("filename:회의록*", {"ko_utf8"}),
        ("filename:*회의*", {"ko_utf8"}),
        ("ガイド", {"ja_2022"}),  # the decomposed name, found by its ordinary form
        ("filename:*.pdf", {"ko_utf8", "ja_2022"}),
        # phrases, across scripts too
        ('"会議は午後"', {"ja_2022"}),
        ('"会議 午後"', set()),
        ('"회의는 오후"', {"ko_utf8"}),
        ('"회의 오후"', set()),
        ('"2024年度の予算"', {"ja_2022"}),
        ('"2024 年度"', {"ja_2022"}),
        ('"2024 度"', set()),
        # Latin search as before, and never a CJK result for it
        ("meeting", {"latin"}),
        ("tokyo", {"latin"}),
        ('"meeting minutes"', {"latin"}),
        ("from:alice", {"latin"}),
        ("pdf", {"ko_utf8", "ja_2022"}),
    ],
)
def test_queries_find_exactly_their_messages(
    archived: tuple[Archive, dict[int, str]], query: str, expected: set[str]
) -> None:
    assert found(archived, query) == expected


# --- hostile input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "\udcea\udcb0",  # 가 in EUC-KR, typed in an EUC-KR terminal: bytes, not UTF-8
        "회의\udcff",
        "\ud800",  # a lone surrogate, escaping nothing
        '"회의 \ud800"',
        "from:\udcea\udcb0",
        "subject:\udcff*",
        "회의\u0301",  # combining marks on a run
        "\u0301\u0302회",
        "\u3099",
        "゛゜・",  # Kana punctuation only: no token
        "会" * 600,
        "会*",
        "*会",
    ],
)
def test_hostile_queries_answer(archived: tuple[Archive, dict[int, str]], query: str) -> None:
    archive, _ = archived
    assert archive.search(query).total >= 0


def test_a_query_of_8bit_bytes_on_the_command_line_is_no_traceback(config: Config) -> None:
    with Archive(config) as archive:
        archive.ingest(MAILS["ko_utf8"], Envelope("s@example.com", ("t@example.com",)))
        archive.index_pending()
    runner = CliRunner()
    env = {"POSTFIX_ARCHIVER_HOME": str(config.archive.home)}
    # argv bytes that are no UTF-8 (EUC-KR 회의) arrive as surrogate escapes
    result = runner.invoke(main, ["search", "\udcc8\udcb8\udcc0\udcc7"], env=env)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    # UTF-8 bytes escaped the same way (a C locale) are read as the text they are
    utf8_escapes = "".join(chr(0xDC00 + b) for b in "회의".encode())
    result = runner.invoke(main, ["search", utf8_escapes], env=env)
    assert result.exit_code == 0, result.output
    assert "1-1 of 1 messages" in result.output


def test_hostile_cjk_mail_is_archived_and_searchable(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data")
    han = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(400_000))  # 1.2 MB of UTF-8
    line = han[:200_000] + "会議" + han[200_000:]
    # marks on Hangul, none composes; a mark that composes (ガ); one on a Kana it cannot
    marks = "회\u0301의\u0302 회의\u0301 カ\u3099イド \u3099漢\u3099イ\u3099"
    head = "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    raws = {
        "han line": f"Subject: long\r\n{head}{line}\r\n",
        "marks": f"Subject: m\r\n{head}{marks}",
    }
    with Archive(config) as archive:
        ids = {
            name: archive.ingest(raw.encode(), Envelope("s@example.com", ("t@example.com",))).id
            for name, raw in raws.items()
        }
        # EUC-KR bytes with no charset said, and bytes no charset reads
        undeclared = archive.ingest(
            b"Subject: \xc8\xb8\xc0\xc7\r\n\r\n"
            + "회의 자료".encode("euc-kr")
            + b" \xff\xfe\x80\r\n",
            Envelope("s@example.com", ("t@example.com",)),
        ).id
        broken = archive.ingest(
            b"Subject: =?euc-kr?B?yLjAxw==?= =?euc-kr?B?/w==?=\r\n"
            b"Content-Type: text/plain; charset=euc-kr\r\n\r\n"
            + "회의 자료".encode("euc-kr")
            + b" \xff\xc8\r\n",
            Envelope("s@example.com", ("t@example.com",)),
        ).id
        archive.index_pending()

        def ids_of(query: str) -> set[int]:
            return {r.id for r in archive.search(query, limit=100).results}

        assert ids_of("会議") == {ids["han line"]}
        # pairs on both sides of the pieces long runs are paired in (65,536 characters)
        assert ids_of(han[65_530:65_540]) == {ids["han line"]}
        assert ids_of(f'"{han[131_070:131_075]}"') == {ids["han line"]}
        assert ids_of(han[-3:]) == {ids["han line"]}
        assert ids_of("ガイド") == {ids["marks"]}
        assert ids["marks"] in ids_of("회의")
        assert ids_of("자료") == {broken}  # the undeclared one reads as Latin-1, not EUC-KR
        assert undeclared not in ids_of("회의")
        assert broken in ids_of("subject:회의")


# --- erasure --------------------------------------------------------------------------------


def files_holding(home: Path, needle: bytes) -> list[str]:
    return [
        str(p.relative_to(home))
        for p in sorted(home.rglob("*"))
        if p.is_file() and needle in p.read_bytes()
    ]


def test_an_erased_cjk_message_leaves_none_of_its_pairs(tmp_path: Path) -> None:
    """The index forgets an entry only given the exact values indexed: the erasure must
    recompute the pairs, or they stay in the catalog file for anyone to read."""
    config = make_config(tmp_path / "data")
    secret = mail("極秘の件", "極秘の買収計画について", "utf-8")
    with Archive(config) as archive:
        gone = archive.ingest(secret, Envelope("s@example.com", ("t@example.com",))).id
        kept = archive.ingest(MAILS["ja_2022"], Envelope("s@example.com", ("t@example.com",))).id
        archive.index_pending()
        assert archive.search("買収").total == 1
        outcome = remove(archive, [archive.get(gone)], why=ERASE, reason="r", who="w")
        assert not outcome.reindexed
        assert archive.search("買収").total == 0
        assert [r.id for r in archive.search("会議").results] == [kept]
    for pair in ("買収", "収計", "極秘"):
        assert files_holding(config.archive.home, pair.encode()) == [], pair


def test_mail_indexed_before_pairs_is_reindexed_when_mail_is_erased(tmp_path: Path) -> None:
    """An entry made by the text version before pairs cannot be forgotten by its values:
    an erasure rebuilds the index, after which the kept CJK mail is found by its pairs."""
    config = make_config(tmp_path / "data")
    with Archive(config) as archive:
        gone = archive.ingest(MAILS["latin"], Envelope("s@example.com", ("t@example.com",))).id
        kept = archive.ingest(MAILS["zh_gb2312"], Envelope("s@example.com", ("t@example.com",))).id
        archive.index_pending()
    db = sqlite3.connect(config.archive.home / "catalog.sqlite")
    with db:
        old = f"text-v{INDEX_TEXT_VERSION};"
        changed = db.execute(
            "UPDATE messages SET indexed_with = replace(indexed_with, ?, 'text-v1;')", (old,)
        ).rowcount
        assert changed == 2
    db.close()
    with Archive(config) as archive:
        outcome = remove(archive, [archive.get(gone)], why=ERASE, reason="r", who="w")
        assert outcome.reindexed
        archive.index_pending()
        assert [r.id for r in archive.search("会议").results] == [kept]
        assert archive.search("meeting").total == 0
