"""Benchmark: Korean, Japanese and Chinese bigram indexing (``bigrams.index_form``).

Run: ``.venv/bin/python bench/cjk_index.py [--messages N]``

Prints
- the throughput of ``index_form`` (MB/s of UTF-8 text in) on message bodies of each kind:
  ASCII English (``bench/ingest.py``'s text corpus), Latin with accents and typographic
  quotes, Korean, Japanese and Chinese business mail (sentences drawn at random from a pool,
  so words repeat as they do in mail), and a worst case of random Han runs that never repeat;
  beside it, the time ``parse_message`` takes on the same messages, for scale;
- the size of the full-text index (the catalog's own FTS5 table, pages counted by ``dbstat``)
  for N messages of each kind, with the text as it was indexed before (``INDEX_TEXT_VERSION``
  1: unchanged) and as it is now (``catalog.index_entry``): Latin mail must not change at all;
- the time of a pair query, a longer word, a phrase and a one-character (prefix) query on the
  N Korean and N Japanese messages.
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from email.utils import formataddr
from functools import partial
from pathlib import Path
from typing import TypeVar

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest import TextCorpus  # the Latin corpus

from postfix_archiver.bigrams import index_form
from postfix_archiver.catalog import IndexEntry, index_entry
from postfix_archiver.catalog.sqlite import MIGRATIONS, fts_term
from postfix_archiver.message import ParsedMessage, parse_message
from postfix_archiver.search import Text

T = TypeVar("T")

KOREAN = """\
내일 오전 열 시에 주간 회의가 있습니다. 회의록은 회의가 끝난 뒤 공유하겠습니다.
지난 분기 매출 보고서를 첨부합니다. 검토하신 뒤 의견을 보내 주시기 바랍니다.
예산 집행 현황을 정리했습니다. 부서별 사용 내역은 별첨 자료를 참고해 주세요.
다음 주 월요일까지 계약서 초안을 검토해 주시면 감사하겠습니다.
서버 점검으로 인해 토요일 새벽 두 시부터 네 시까지 메일 서비스가 중단됩니다.
신규 프로젝트 일정이 변경되었습니다. 자세한 내용은 회의에서 논의하겠습니다.
고객 문의에 대한 답변을 오늘 중으로 부탁드립니다. 담당자는 김철수 과장입니다.
출장 경비 정산서를 제출해 주십시오. 영수증 원본은 총무팀으로 보내 주세요.
보안 교육이 이번 주 목요일 오후 두 시에 대회의실에서 진행됩니다.
견적서를 확인했습니다. 단가 조정이 가능한지 검토 부탁드립니다.
인사 평가 일정 안내드립니다. 자기 평가서는 금요일까지 작성해 주세요.
배송 지연에 대해 사과드립니다. 새로운 발송 일정은 아래와 같습니다."""

JAPANESE = """\
明日の午前十時から定例会議を行います。議事録は会議の後で共有します。
前四半期の売上報告書を添付いたします。ご確認のうえ、ご意見をお願いいたします。
予算の執行状況をまとめました。部署ごとの内訳は別紙をご参照ください。
来週月曜日までに契約書の草案をご確認いただけますと幸いです。
サーバーメンテナンスのため、土曜日の午前二時から四時までメールが使えません。
新規プロジェクトのスケジュールが変更になりました。詳細は会議で説明します。
お客様からのお問い合わせへの回答を本日中にお願いします。担当は山田です。
出張旅費の精算書をご提出ください。領収書の原本は総務部へお送りください。
情報セキュリティ研修を木曜日の午後二時から大会議室で実施します。
お見積書を拝見しました。単価の調整が可能かご検討ください。
東京本社での打ち合わせは来月に延期となりました。ご了承ください。
納品の遅れについてお詫び申し上げます。新しい出荷日は以下のとおりです。"""

CHINESE = """\
明天上午十点召开例会，会议纪要将在会后发送给大家。
附件是上季度的销售报告，请审阅后提出意见。
预算执行情况已经整理完毕，各部门的明细请参阅附件。
请于下周一之前审核合同草案，谢谢配合。
由于服务器维护，周六凌晨两点至四点邮件服务将暂停。
新项目的进度安排有所调整，具体内容将在会议上讨论。
请在今天之内回复客户的咨询，负责人是王小明经理。
请提交出差费用报销单，发票原件请交给行政部。
信息安全培训将于本周四下午两点在大会议室举行。
报价单已收到，请确认单价是否可以调整。
北京总部的会议推迟到下个月举行，敬请谅解。
对于发货延迟我们深表歉意，新的发货日期如下。"""

NAMES = {
    "ko": ["김철수", "이영희", "박민수", "최지은", "정현우"],
    "ja": ["山田太郎", "佐藤花子", "鈴木一郎", "高橋美咲", "田中健"],
    "zh": ["王小明", "李娜", "张伟", "刘洋", "陈静"],
}


def cjk_message(rng: random.Random, lang: str, sentences: list[str]) -> bytes:
    """A message of 1-10 KB: a subject of one sentence's start, 4-40 sentences of body."""
    subject = rng.choice(sentences)[:16]
    body = "\n".join(rng.choices(sentences, k=rng.randint(4, 40)))
    sender = formataddr((rng.choice(NAMES[lang]), f"user{rng.randrange(100)}@example.com"))
    return (
        f"From: {sender}\nTo: team@example.com\nSubject: {subject}\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}\n"
    ).encode()


def random_han(rng: random.Random) -> bytes:
    """The worst case: runs of 5-30 Han characters that never repeat, between punctuation."""
    runs = [
        "".join(chr(0x4E00 + rng.randrange(20000)) for _ in range(rng.randint(5, 30)))
        for _ in range(rng.randint(20, 200))
    ]
    body = "".join(r + rng.choice("，。、\n") for r in runs)
    return f"Subject: x\nContent-Type: text/plain; charset=utf-8\n\n{body}\n".encode()


def latin_accents(raw: bytes) -> bytes:
    """A text corpus message with accents and typographic quotes (not ASCII, no CJK)."""
    text = raw.decode()
    head, _, body = text.partition("\n\n")
    body = body.replace("e", "é").replace(" the ", " “the” ").replace("a", "ä")
    return f"{head}\n\n{body}".encode()


def corpora(n: int, seed: int = 7) -> dict[str, list[bytes]]:
    rng = random.Random(seed)
    latin = TextCorpus(seed)
    english = [latin.message(i)[0] for i in range(n)]
    return {
        "english (ASCII)": english,
        "latin (accents, quotes)": [latin_accents(m) for m in english],
        "korean": [cjk_message(rng, "ko", KOREAN.splitlines()) for _ in range(n)],
        "japanese": [cjk_message(rng, "ja", JAPANESE.splitlines()) for _ in range(n)],
        "chinese": [cjk_message(rng, "zh", CHINESE.splitlines()) for _ in range(n)],
        "random han (worst case)": [random_han(rng) for _ in range(n)],
    }


def before(parsed: ParsedMessage) -> IndexEntry:
    """The entry as INDEX_TEXT_VERSION 1 made it: the same values, no pairs."""
    names = " ".join(x.filename for x in parsed.attachments if x.filename)
    addrs = " ".join(str(x) for x in (*parsed.from_, *parsed.to, *parsed.cc))
    return IndexEntry(parsed.subject, parsed.index_text(), names, addrs)


def now(parsed: ParsedMessage) -> IndexEntry:
    return index_entry(
        parsed.subject,
        parsed.index_text(),
        parsed.attachments,
        parsed.from_,
        parsed.to,
        parsed.cc,
    )


def fts_schema() -> str:
    """The catalog's full-text table, as its latest migration creates it."""
    pattern = re.compile(r"CREATE VIRTUAL TABLE fts USING fts5\(.*?\);", re.S)
    creates: list[str] = pattern.findall("\n".join(MIGRATIONS))
    return creates[-1].rstrip(";")


def fts_bytes(path: Path, entries: list[IndexEntry]) -> tuple[int, sqlite3.Connection]:
    conn = sqlite3.connect(path)
    conn.execute(fts_schema())
    with conn:
        conn.executemany(
            "INSERT INTO fts (rowid, subject, body, names, addrs) VALUES (?, ?, ?, ?, ?)",
            [(i + 1, e.subject, e.body, e.names, e.addrs) for i, e in enumerate(entries)],
        )
        conn.execute("INSERT INTO fts (fts) VALUES ('optimize')")
    size = conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'fts%'").fetchone()[0]
    return int(size), conn


def each(fn: Callable[[T], object], items: list[T]) -> None:
    for item in items:
        fn(item)


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def throughput(kinds: dict[str, list[bytes]]) -> None:
    print("index_form on message bodies (best of 3; parse_message on the same messages for scale)")
    print(f"  {'corpus':<26} {'MB':>6} {'index_form':>12} {'parse':>10}")
    for kind, raws in kinds.items():
        parsed = [parse_message(r) for r in raws]
        texts = [p.index_text() for p in parsed]
        mb = sum(len(t.encode()) for t in texts) / 1e6
        form = best(partial(each, index_form, texts))
        parse = best(partial(each, parse_message, raws), rounds=1)
        print(f"  {kind:<26} {mb:6.1f} {mb / form:8.0f} MB/s {mb / parse:6.1f} MB/s")


def sizes(kinds: dict[str, list[bytes]], work: Path) -> dict[str, sqlite3.Connection]:
    print("\nfull-text index size (FTS5 pages after optimize; raw = the messages' bytes)")
    print(f"  {'corpus':<26} {'raw MB':>7} {'before MB (/raw)':>17} {'now MB (/raw)':>15}")
    kept: dict[str, sqlite3.Connection] = {}
    for kind, raws in kinds.items():
        parsed = [parse_message(r) for r in raws]
        slug = re.sub(r"\W+", "-", kind)
        old, old_conn = fts_bytes(work / f"{slug}-before.sqlite", [before(p) for p in parsed])
        new, new_conn = fts_bytes(work / f"{slug}-now.sqlite", [now(p) for p in parsed])
        old_conn.close()
        kept[kind] = new_conn
        raw = sum(map(len, raws))
        print(
            f"  {kind:<26} {raw / 1e6:7.1f} {old / 1e6:9.2f} ({old / raw:4.2f})"
            f" {new / 1e6:7.2f} ({new / raw:4.2f})"
        )
    return kept


def query_times(conns: dict[str, sqlite3.Connection]) -> None:
    print("\nquery time on the index (ms: median of 20, all matching ids read)")
    queries = {
        "korean": [
            ("pair", "회의"),
            ("word", "보고서"),
            ("phrase", '"회의록은 회의가"'),
            ("one", "회"),
        ],
        "japanese": [
            ("pair", "会議"),
            ("word", "報告書"),
            ("phrase", '"定例会議を"'),
            ("one", "会"),
        ],
    }
    for kind, items in queries.items():
        conn = conns[kind]
        for label, value in items:
            phrase = value.startswith('"')
            term = fts_term(Text(value.strip('"'), phrase=phrase))
            times, hits = [], 0
            for _ in range(20):
                started = time.perf_counter()
                hits = len(
                    conn.execute("SELECT rowid FROM fts WHERE fts MATCH ?", (term,)).fetchall()
                )
                times.append(time.perf_counter() - started)
            median = statistics.median(times) * 1000
            print(f"  {kind:<9} {label:<7} {value:<18} {hits:6d} hits {median:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000, help="messages of each kind")
    args = parser.parse_args()
    kinds = corpora(args.messages)
    throughput(kinds)
    with tempfile.TemporaryDirectory() as work:
        conns = sizes(kinds, Path(work))
        query_times(conns)
        for conn in conns.values():
            conn.close()


if __name__ == "__main__":
    main()
